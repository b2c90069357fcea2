import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Skeleton from "@mui/material/Skeleton";
import Typography from "@mui/material/Typography";
import type { ReactNode } from "react";
import { describeError } from "../api/errors";
import { useI18n } from "../i18n";

export function LoadingRows({ rows = 5, height = 36 }: { rows?: number; height?: number }) {
  const { t } = useI18n();
  return (
    <Box role="progressbar" aria-busy="true" aria-label={t("loading")} data-testid="loading">
      {Array.from({ length: rows }, (_, i) => (
        <Skeleton key={i} variant="rectangular" height={height} sx={{ my: 0.75, borderRadius: 1 }} />
      ))}
    </Box>
  );
}

export function EmptyState({ children, action }: { children: ReactNode; action?: ReactNode }) {
  return (
    <Box data-testid="empty-state" sx={{ py: 5, px: 2, textAlign: "center", color: "text.secondary" }}>
      <Typography variant="body1">{children}</Typography>
      {action ? <Box sx={{ mt: 2 }}>{action}</Box> : null}
    </Box>
  );
}

export function ErrorBanner({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const { t } = useI18n();
  const message = describeError(error, t);
  return (
    <Alert
      severity="error"
      sx={{ my: 1 }}
      action={
        onRetry ? (
          <Button color="inherit" size="small" onClick={onRetry}>
            {t("retry")}
          </Button>
        ) : undefined
      }
    >
      <strong>{t("loadFailed")}:</strong> {message}
    </Alert>
  );
}
