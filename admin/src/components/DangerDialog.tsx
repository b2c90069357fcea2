import Alert from "@mui/material/Alert";
import Button from "@mui/material/Button";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogTitle from "@mui/material/DialogTitle";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { useEffect, useId, useState, type ReactNode } from "react";
import { useI18n } from "../i18n";

interface Props {
  open: boolean;
  title: string;
  /** What must be typed: the queue name or the worker id. */
  name: string;
  /** The confirm button's label, e.g. "Drain". */
  confirmLabel: string;
  description?: ReactNode;
  /** Extra options (e.g. clean's state and grace). */
  children?: ReactNode;
  busy?: boolean;
  error?: string | null;
  onConfirm: () => void;
  onClose: () => void;
}

/** A destructive action's dialog: it only confirms once the user typed the exact name. */
export function DangerDialog({ open, title, name, confirmLabel, description, children, busy, error, onConfirm, onClose }: Props) {
  const { t } = useI18n();
  const [typed, setTyped] = useState("");
  const titleId = useId();
  useEffect(() => {
    if (open) setTyped("");
  }, [open]);
  const matches = typed === name;
  return (
    <Dialog open={open} onClose={busy ? undefined : onClose} aria-labelledby={titleId} maxWidth="sm" fullWidth>
      <DialogTitle id={titleId}>{title}</DialogTitle>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (matches && !busy) onConfirm();
        }}
      >
        <DialogContent>
          {description ? <Typography sx={{ mb: 1 }}>{description}</Typography> : null}
          <Alert severity="warning" sx={{ mb: 2 }}>
            {t("dangerIntro", { name })}
          </Alert>
          {children}
          <TextField
            autoFocus
            fullWidth
            label={t("confirmName")}
            value={typed}
            onChange={(e) => setTyped(e.target.value)}
            placeholder={name}
            autoComplete="off"
            inputProps={{ spellCheck: false }}
            sx={{ mt: 1 }}
          />
          {error ? (
            <Alert severity="error" sx={{ mt: 2 }}>
              {error}
            </Alert>
          ) : null}
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose} disabled={busy}>
            {t("cancel")}
          </Button>
          <Button type="submit" color="error" variant="contained" disabled={!matches || busy}>
            {confirmLabel}
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}
