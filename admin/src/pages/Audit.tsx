import Box from "@mui/material/Box";
import Paper from "@mui/material/Paper";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { useEffect, useState } from "react";
import { useAuditLogs } from "../api/hooks";
import { AuditTable } from "../components/AuditTable";
import { Pager, usePageTokens } from "../components/Pager";
import { ErrorBanner, LoadingRows } from "../components/States";
import { enumLabel, useI18n } from "../i18n";

const ACTIONS = [
  "QUEUE_PAUSE",
  "QUEUE_RESUME",
  "QUEUE_DRAIN",
  "QUEUE_CLEAN",
  "QUEUE_RETRY_FAILED",
  "QUEUE_PROMOTE_DELAYED",
  "JOB_ADD",
  "JOB_RETRY",
  "JOB_PROMOTE",
  "JOB_CANCEL",
  "WORKER_QUIET",
  "WORKER_RESUME",
  "WORKER_STOP",
  "WORKER_ONLINE",
  "WORKER_OFFLINE",
  "INCIDENT_ACKNOWLEDGE",
  "INCIDENT_RESOLVE",
  "LOGIN",
  "DEDUPLICATION_RELEASE",
  "USER_ADD",
  "USER_REMOVE",
  "LOGOUT_ALL",
];

export default function AuditPage() {
  const { t } = useI18n();
  const [actorTyped, setActorTyped] = useState("");
  const [actor, setActor] = useState("");
  const [action, setAction] = useState("");
  useEffect(() => {
    const timer = window.setTimeout(() => setActor(actorTyped.trim()), 300);
    return () => window.clearTimeout(timer);
  }, [actorTyped]);
  const pager = usePageTokens(`${actor}|${action}`);
  const logs = useAuditLogs({ actor, action, pageToken: pager.token });
  return (
    <Box>
      <Typography variant="h5" component="h1" sx={{ mb: 2 }}>
        {t("audit")}
      </Typography>
      <Box sx={{ display: "flex", gap: 1.5, mb: 2 }} role="search">
        <TextField size="small" label={t("actor")} value={actorTyped} onChange={(e) => setActorTyped(e.target.value)} />
        <TextField select size="small" label={t("action")} value={action} onChange={(e) => setAction(e.target.value)} slotProps={{ select: { native: true }, inputLabel: { shrink: true } }} sx={{ minWidth: 220 }}>
          <option value="">{t("anyAction")}</option>
          {ACTIONS.map((a) => (
            <option key={a} value={`AUDIT_ACTION_${a}`}>
              {enumLabel(t, "aa", a)}
            </option>
          ))}
        </TextField>
      </Box>
      {logs.error ? <ErrorBanner error={logs.error} onRetry={() => void logs.refetch()} /> : null}
      {logs.isPending ? (
        <LoadingRows rows={8} />
      ) : (
        <Paper variant="outlined" sx={{ overflowX: "auto", opacity: logs.isPlaceholderData ? 0.6 : 1 }}>
          <AuditTable logs={logs.data?.auditLogs ?? []} />
          <Box sx={{ px: 2 }}>
            <Pager page={pager.page} hasPrev={pager.hasPrev} nextToken={logs.data?.nextPageToken} onPrev={pager.prev} onNext={pager.next} />
          </Box>
        </Paper>
      )}
    </Box>
  );
}
