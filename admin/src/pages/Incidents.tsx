import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Chip from "@mui/material/Chip";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogTitle from "@mui/material/DialogTitle";
import Paper from "@mui/material/Paper";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { useState } from "react";
import { useNavigate, useParams } from "react-router-dom";
import { runIncidentAction } from "../api/actions";
import { keys, useAction, useIncident, useIncidents } from "../api/hooks";
import { enumName, num, type Incident } from "../api/types";
import { ActionButton } from "../components/ActionButton";
import { Pager, usePageTokens } from "../components/Pager";
import { EmptyState, ErrorBanner, LoadingRows } from "../components/States";
import { fmtTime } from "../format";
import { describeError } from "../api/errors";
import { actorLabel, enumLabel, useI18n } from "../i18n";

const STATUSES = ["PENDING", "ACTIVE", "ACKNOWLEDGED", "RESOLVED"];
const TYPES = ["QUEUE_BACKLOG", "HIGH_FAILURE_RATE", "WORKER_DOWN", "SLOW_PROCESSING", "STATS_STALE"];
const SEVERITY_COLOR: Record<string, "error" | "warning" | "info" | "default"> = { CRITICAL: "error", WARNING: "warning", INFO: "info" };

function isOpen(i: Incident) {
  const s = enumName(i.status, "INCIDENT_STATUS_");
  return s === "ACTIVE" || s === "PENDING" || s === "ACKNOWLEDGED";
}

/** The severity, status and type of an incident, translated. */
function labels(i: Incident, t: ReturnType<typeof useI18n>["t"]) {
  const severity = enumName(i.severity, "SEVERITY_");
  return {
    severity: enumLabel(t, "sev", severity),
    severityColor: SEVERITY_COLOR[severity] ?? "default",
    status: enumLabel(t, "is", enumName(i.status, "INCIDENT_STATUS_")),
    type: enumLabel(t, "it", enumName(i.type, "INCIDENT_TYPE_")),
  };
}

/** The Alerting page's new-silence form, prefilled with what identifies this incident. */
function silenceLink(i: Incident): string {
  const q = new URLSearchParams({ new: "1", type: enumName(i.type, "INCIDENT_TYPE_") });
  if (i.queue) q.set("queue", i.queue);
  if (i.workerId) q.set("worker", i.workerId);
  return `/alerting?${q.toString()}`;
}

/** Whether each transition was notified and, if not, why. */
function Decisions({ incident }: { incident: Incident }) {
  const { t } = useI18n();
  const decisions = incident.notificationDecisions ?? [];
  if (decisions.length === 0) return null;
  return (
    <>
      <Typography variant="subtitle2" component="h3">
        {t("notifications")}
      </Typography>
      <Box component="ul" sx={{ pl: 2.5, mb: 2 }} data-testid="notification-decisions">
        {decisions.map((d) => {
          const kind = enumLabel(t, "iek", enumName(d.kind, "INCIDENT_EVENT_KIND_"));
          const channels = (d.channels ?? []).join(", ");
          const outcome = enumName(d.outcome, "NOTIFICATION_OUTCOME_");
          const text =
            outcome === "SILENCED"
              ? t("decisionSilenced", { kind, id: d.silenceId ?? "", comment: d.detail ?? "", until: fmtTime(d.untilTime) })
              : outcome === "MAINTENANCE"
                ? t("decisionMaintenance", { kind, id: d.maintenanceWindowId ?? "", comment: d.detail ?? "" })
              : outcome === "INHIBITED"
                ? t("decisionInhibited", { kind, by: d.inhibitedBy ?? "" })
                : d.detail
                ? t("decisionLate", { channels, detail: d.detail })
                : channels
                  ? t("decisionNotified", { kind, channels })
                  : t("decisionNoChannel", { kind });
          // The routes that matched say why these channels (none when no route is configured).
          const routes = (d.routes ?? []).length ? ` · ${t("decisionRoutes", { routes: (d.routes ?? []).join(", ") })}` : "";
          return (
            <li key={`${d.eventId}-${d.decideTime}`}>
              <Typography variant="body2">
                {fmtTime(d.decideTime)} · {text}
                {routes}
              </Typography>
            </li>
          );
        })}
      </Box>
    </>
  );
}

function IncidentDetail({ id, onClose, onResolve }: { id: string; onClose: () => void; onResolve: (i: Incident) => void }) {
  const { t } = useI18n();
  const navigate = useNavigate();
  const detail = useIncident(id);
  const i = detail.data?.incident;
  return (
    <Dialog open onClose={onClose} maxWidth="md" fullWidth aria-labelledby="incident-title">
      <DialogTitle id="incident-title">
        #{id} <span lang="en">{i?.title ?? ""}</span>
      </DialogTitle>
      <DialogContent>
        {detail.error ? <ErrorBanner error={detail.error} onRetry={() => void detail.refetch()} /> : null}
        {detail.isPending ? <LoadingRows rows={4} /> : null}
        {i ? (
          <>
            <Box sx={{ display: "flex", gap: 1, mb: 1, flexWrap: "wrap" }}>
              <Chip size="small" label={labels(i, t).severity} color={labels(i, t).severityColor} />
              <Chip size="small" label={labels(i, t).status} variant="outlined" />
              <Chip size="small" label={labels(i, t).type} variant="outlined" />
              {i.queue ? <Chip size="small" label={`${t("queue")}: ${i.queue}`} /> : null}
              {i.workerId ? <Chip size="small" label={`${t("worker")}: ${i.workerId}`} /> : null}
            </Box>
            {i.description ? (
              <Typography sx={{ mb: 1 }} lang="en">
                {i.description}
              </Typography>
            ) : null}
            {i.recommendedAction ? (
              <Alert severity="info" sx={{ mb: 1 }}>
                <strong>{t("recommended")}:</strong> <span lang="en">{i.recommendedAction}</span>
              </Alert>
            ) : null}
            <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
              {t("incidentFigures", { value: i.value ?? 0, threshold: i.threshold ?? 0, jobs: num(i.affectedJobs) })} · {t("started")} {fmtTime(i.startTime ?? i.pendingTime)}
              {i.acknowledgedBy ? ` · ${t("acknowledgedBy", { actor: actorLabel(t, i.acknowledgedBy) })}` : ""}
              {i.resolvedBy ? ` · ${t("resolvedBy", { actor: actorLabel(t, i.resolvedBy) })}${i.resolveNote ? `: ${i.resolveNote}` : ""}` : ""}
            </Typography>
            <Decisions incident={i} />
            <Typography variant="subtitle2" component="h3">
              {t("timeline")}
            </Typography>
            <Box component="ol" sx={{ pl: 2.5 }}>
              {(detail.data?.timeline ?? []).map((e) => (
                <li key={e.id}>
                  <Typography variant="body2">
                    <strong>{enumLabel(t, "iek", enumName(e.kind, "INCIDENT_EVENT_KIND_"))}</strong> · {fmtTime(e.eventTime)}
                    {e.actor ? ` · ${actorLabel(t, e.actor)}` : ""}
                    {e.message ? (
                      <>
                        {" — "}
                        <span lang="en">{e.message}</span>
                      </>
                    ) : null}
                  </Typography>
                </li>
              ))}
            </Box>
          </>
        ) : null}
      </DialogContent>
      <DialogActions>
        {i ? (
          <ActionButton needs="operator" onClick={() => navigate(silenceLink(i))}>
            {t("silenceLikeThis")}
          </ActionButton>
        ) : null}
        {i && isOpen(i) ? (
          <ActionButton needs="admin" onClick={() => onResolve(i)}>
            {t("resolve")}
          </ActionButton>
        ) : null}
        <Button onClick={onClose}>{t("close")}</Button>
      </DialogActions>
    </Dialog>
  );
}

export default function IncidentsPage() {
  const { t } = useI18n();
  const { id } = useParams();
  const navigate = useNavigate();
  const [status, setStatus] = useState("open");
  const [type, setType] = useState("");
  const pager = usePageTokens(`${status}|${type}`);
  const incidents = useIncidents({ status, type, pageToken: pager.token });
  const [resolving, setResolving] = useState<Incident | null>(null);
  const [note, setNote] = useState("");
  const invalidate = [keys.incidents, keys.incident, keys.overview];
  const acknowledge = useAction({
    run: (iid: string) => runIncidentAction(iid, "acknowledge", { note: "" }),
    describe: (r, iid) => t("incidentAcknowledged", { id: iid, status: enumLabel(t, "is", enumName(r.incident?.status, "INCIDENT_STATUS_")) }),
    invalidate,
  });
  const resolve = useAction({
    run: (v: { id: string; note: string }) => runIncidentAction(v.id, "resolve", { note: v.note }),
    describe: (_, v) => t("incidentResolved", { id: v.id, note: v.note }),
    invalidate,
  });
  const list = incidents.data?.incidents ?? [];
  return (
    <Box>
      <Typography variant="h5" component="h1" sx={{ mb: 2 }}>
        {t("incidents")}
      </Typography>
      <Box sx={{ display: "flex", gap: 1.5, mb: 2 }} role="search">
        <TextField select size="small" label={t("status")} value={status} onChange={(e) => setStatus(e.target.value)} slotProps={{ select: { native: true }, inputLabel: { shrink: true } }} sx={{ minWidth: 180 }}>
          <option value="open">{t("openOnly")}</option>
          <option value="">{t("all")}</option>
          {STATUSES.map((s) => (
            <option key={s} value={`INCIDENT_STATUS_${s}`}>
              {enumLabel(t, "is", s)}
            </option>
          ))}
        </TextField>
        <TextField select size="small" label={t("type")} value={type} onChange={(e) => setType(e.target.value)} slotProps={{ select: { native: true }, inputLabel: { shrink: true } }} sx={{ minWidth: 200 }}>
          <option value="">{t("all")}</option>
          {TYPES.map((s) => (
            <option key={s} value={`INCIDENT_TYPE_${s}`}>
              {enumLabel(t, "it", s)}
            </option>
          ))}
        </TextField>
      </Box>
      {incidents.error ? <ErrorBanner error={incidents.error} onRetry={() => void incidents.refetch()} /> : null}
      {incidents.isPending ? (
        <LoadingRows />
      ) : list.length === 0 ? (
        <EmptyState>{t("noIncidents")}</EmptyState>
      ) : (
        <Paper variant="outlined" sx={{ overflowX: "auto" }}>
          <Table size="small" aria-label={t("incidents")}>
            <TableHead>
              <TableRow>
                <TableCell>{t("idHeader")}</TableCell>
                <TableCell>{t("severity")}</TableCell>
                <TableCell>{t("status")}</TableCell>
                <TableCell>{t("type")}</TableCell>
                <TableCell>{t("name")}</TableCell>
                <TableCell>{t("started")}</TableCell>
                <TableCell>{t("actions")}</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {list.map((i) => {
                const s = enumName(i.status, "INCIDENT_STATUS_");
                return (
                  <TableRow key={i.id} data-testid={`incident-row-${i.id}`} hover>
                    <TableCell>
                      <Button size="small" onClick={() => navigate(`/incidents/${i.id}`)} aria-label={`${t("details")} #${i.id}`}>
                        #{i.id}
                      </Button>
                    </TableCell>
                    <TableCell>
                      <Chip size="small" label={labels(i, t).severity} color={labels(i, t).severityColor} />
                    </TableCell>
                    <TableCell>{labels(i, t).status}</TableCell>
                    <TableCell>{labels(i, t).type}</TableCell>
                    <TableCell>
                      <span lang="en">{i.title}</span>
                      {i.queue ? ` (${i.queue})` : ""}
                    </TableCell>
                    <TableCell>{fmtTime(i.startTime ?? i.pendingTime)}</TableCell>
                    <TableCell>
                      <Box sx={{ display: "flex", gap: 0.5 }}>
                        <ActionButton
                          needs="operator"
                          unavailable={s === "ACKNOWLEDGED" ? t("alreadyAcknowledged") : s === "RESOLVED" ? t("alreadyResolved") : undefined}
                          onClick={() => acknowledge.mutate(i.id ?? "")}
                        >
                          {t("acknowledge")}
                        </ActionButton>
                        <ActionButton
                          needs="admin"
                          unavailable={s === "RESOLVED" ? t("alreadyResolved") : undefined}
                          onClick={() => {
                            setNote("");
                            setResolving(i);
                          }}
                        >
                          {t("resolve")}
                        </ActionButton>
                      </Box>
                    </TableCell>
                  </TableRow>
                );
              })}
            </TableBody>
          </Table>
          <Box sx={{ px: 2 }}>
            <Pager page={pager.page} hasPrev={pager.hasPrev} nextToken={incidents.data?.nextPageToken} onPrev={pager.prev} onNext={pager.next} />
          </Box>
        </Paper>
      )}
      {id ? (
        <IncidentDetail
          id={id}
          onClose={() => navigate("/incidents")}
          onResolve={(i) => {
            setNote("");
            setResolving(i);
          }}
        />
      ) : null}
      <Dialog open={resolving !== null} onClose={() => setResolving(null)} maxWidth="sm" fullWidth aria-labelledby="resolve-title">
        <DialogTitle id="resolve-title">
          {t("resolve")} #{resolving?.id} <span lang="en">{resolving?.title}</span>
        </DialogTitle>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (resolving && note.trim()) resolve.mutate({ id: resolving.id ?? "", note: note.trim() }, { onSuccess: () => setResolving(null) });
          }}
        >
          <DialogContent>
            <TextField autoFocus fullWidth multiline minRows={2} label={t("resolutionNote")} value={note} onChange={(e) => setNote(e.target.value)} required />
            {resolve.error ? (
              <Alert severity="error" sx={{ mt: 1 }}>
                {describeError(resolve.error, t)}
              </Alert>
            ) : null}
          </DialogContent>
          <DialogActions>
            <Button onClick={() => setResolving(null)}>{t("cancel")}</Button>
            <Button type="submit" variant="contained" disabled={!note.trim() || resolve.isPending}>
              {t("resolve")}
            </Button>
          </DialogActions>
        </form>
      </Dialog>
    </Box>
  );
}
