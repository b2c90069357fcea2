import Alert from "@mui/material/Alert";
import AlertTitle from "@mui/material/AlertTitle";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Card from "@mui/material/Card";
import CardActionArea from "@mui/material/CardActionArea";
import CardContent from "@mui/material/CardContent";
import Typography from "@mui/material/Typography";
import { Link as RouterLink, useNavigate } from "react-router-dom";
import { useOverview, useQueues } from "../api/hooks";
import { enumName, num } from "../api/types";
import { QueueSpark } from "../components/QueueSpark";
import { EmptyState, ErrorBanner, LoadingRows } from "../components/States";
import { fmtInt, fmtMs, fmtPercent } from "../format";
import { enumLabel, useI18n, type MessageKey } from "../i18n";

function Kpi({ id, label, value, tone }: { id: string; label: string; value: string; tone?: "error" | "warning" }) {
  return (
    <Card variant="outlined" data-testid={`kpi-${id}`}>
      <CardContent sx={{ py: 1.5, "&:last-child": { pb: 1.5 } }}>
        <Typography variant="body2" color="text.secondary">
          {label}
        </Typography>
        <Typography variant="h5" component="p" color={tone ? `${tone}.main` : undefined} sx={{ fontWeight: 600 }}>
          {value}
        </Typography>
      </CardContent>
    </Card>
  );
}

export default function OverviewPage() {
  const { t } = useI18n();
  const overview = useOverview();
  const queues = useQueues();
  const navigate = useNavigate();
  const o = overview.data;

  const kpis: { id: string; key: MessageKey; value: string; tone?: "error" | "warning" }[] = o
    ? [
        { id: "waiting", key: "waiting", value: fmtInt(o.counts?.waiting) },
        { id: "active", key: "active", value: fmtInt(o.counts?.active) },
        { id: "delayed", key: "delayed", value: fmtInt(o.counts?.delayed) },
        { id: "waiting-children", key: "waitingChildren", value: fmtInt(o.counts?.waitingChildren) },
        { id: "failed", key: "failed", value: fmtInt(o.counts?.failed), tone: num(o.counts?.failed) > 0 ? "error" : undefined },
        { id: "workers-online", key: "workersOnline", value: fmtInt(o.workersOnline) },
        { id: "jobs-per-minute", key: "jobsPerMinute", value: fmtInt(o.jobsPerMinute) },
        { id: "success-rate", key: "successRate", value: fmtPercent(o.successRate24h) },
        { id: "p95", key: "p95", value: fmtMs(o.processingP95Ms15m) },
      ]
    : [];
  const incidents = o?.activeIncidents ?? [];

  return (
    <Box>
      <Typography variant="h5" component="h1" sx={{ mb: 2 }}>
        {t("overview")}
      </Typography>
      {overview.error ? <ErrorBanner error={overview.error} onRetry={() => void overview.refetch()} /> : null}
      {incidents.length > 0 ? (
        <Alert
          severity={incidents.some((i) => i.severity?.toUpperCase().includes("CRITICAL")) ? "error" : "warning"}
          sx={{ mb: 2 }}
          data-testid="incident-banner"
        >
          <AlertTitle>{t("incidentBanner", { count: incidents.length })}</AlertTitle>
          {incidents.slice(0, 5).map((i) => (
            <Box key={i.incidentId} sx={{ display: "flex", alignItems: "center", gap: 1 }}>
              <span>
                [{enumLabel(t, "sev", enumName(i.severity, "SEVERITY_").toUpperCase())}] <span lang="en">{i.title}</span>
                {i.queue ? ` — ${i.queue}` : ""}
              </span>
              <Button size="small" component={RouterLink} to={`/incidents/${i.incidentId}`}>
                {t("viewIncident")}
              </Button>
            </Box>
          ))}
        </Alert>
      ) : null}
      {overview.isPending ? (
        <LoadingRows rows={2} height={80} />
      ) : o ? (
        <Box sx={{ display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(170px, 1fr))", gap: 1.5, mb: 3 }}>
          {kpis.map((k) => (
            <Kpi key={k.id} id={k.id} label={t(k.key)} value={k.value} tone={k.tone} />
          ))}
        </Box>
      ) : null}
      {o && num(o.workersOnline) === 0 && num(o.workersOffline) === 0 ? <EmptyState>{t("noWorkers")}</EmptyState> : null}
      <Typography variant="h6" component="h2" sx={{ mb: 1 }}>
        {t("trends")}
      </Typography>
      {queues.error ? <ErrorBanner error={queues.error} onRetry={() => void queues.refetch()} /> : null}
      {queues.isPending ? (
        <LoadingRows rows={2} height={90} />
      ) : (queues.data ?? []).length === 0 ? (
        <EmptyState>{t("noQueues")}</EmptyState>
      ) : (
        <Box sx={{ display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(260px, 1fr))", gap: 1.5 }}>
          {(queues.data ?? []).slice(0, 24).map((q) => (
            <Card variant="outlined" key={q.name}>
              <CardActionArea onClick={() => navigate(`/queues/${encodeURIComponent(q.name ?? "")}`)}>
                <CardContent sx={{ py: 1.5 }}>
                  <Box sx={{ display: "flex", justifyContent: "space-between", mb: 0.5 }}>
                    <Typography variant="subtitle2">{q.displayName || q.name}</Typography>
                    <Typography variant="caption" color="text.secondary">
                      {enumLabel(t, "qs", enumName(q.status, "QUEUE_STATUS_") || "UNKNOWN")} · {t("perMinute", { count: fmtInt(q.jobsPerMinute) })}
                    </Typography>
                  </Box>
                  <QueueSpark name={q.name ?? ""} label={`${q.name} ${t("throughput")}`} />
                </CardContent>
              </CardActionArea>
            </Card>
          ))}
        </Box>
      )}
    </Box>
  );
}
