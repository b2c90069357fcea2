import Button, { type ButtonProps } from "@mui/material/Button";
import Tooltip from "@mui/material/Tooltip";
import type { Role } from "../api/types";
import { hasRole, useAuth } from "../auth";
import { useI18n } from "../i18n";

interface Props extends ButtonProps {
  /** The lowest role allowed to take the action. */
  needs: Role;
  /** Another reason the action is unavailable (shown in the tooltip). */
  unavailable?: string;
}

/** A button for an action: disabled, with the reason in a tooltip, when the user's role may not take it. */
export function ActionButton({ needs, unavailable, disabled, children, ...rest }: Props) {
  const { session } = useAuth();
  const { t } = useI18n();
  const allowed = hasRole(session?.role, needs);
  const reason = !allowed ? (needs === "admin" ? t("needsAdmin") : t("needsOperator")) : unavailable;
  const button = (
    <Button size="small" variant="outlined" disabled={disabled || !allowed || !!unavailable} {...rest}>
      {children}
    </Button>
  );
  if (!reason) return button;
  return (
    <Tooltip title={reason} describeChild>
      <span style={{ display: "inline-flex" }} tabIndex={0} data-reason={reason}>
        {button}
      </span>
    </Tooltip>
  );
}
