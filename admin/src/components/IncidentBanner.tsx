import Alert from "@mui/material/Alert";
import Link from "@mui/material/Link";
import { Link as RouterLink } from "react-router-dom";
import { useOverview } from "../api/hooks";
import { useI18n } from "../i18n";

/** Under the app bar on every page while incidents are open: how many, and a link to them. */
export function IncidentBanner() {
  const { t } = useI18n();
  const overview = useOverview();
  const open = overview.data?.activeIncidents ?? [];
  if (open.length === 0) return null;
  const critical = open.some((i) => i.severity?.toUpperCase().includes("CRITICAL"));
  return (
    <Alert
      severity={critical ? "error" : "warning"}
      role="status"
      data-testid="incident-banner-global"
      sx={{ mb: 2, py: 0 }}
      action={
        <Link component={RouterLink} to="/incidents" color="inherit" underline="always" sx={{ alignSelf: "center", fontWeight: 600, pr: 1 }}>
          {t("incidentBannerLink")}
        </Link>
      }
    >
      {t("incidentBanner", { count: open.length })}
    </Alert>
  );
}

