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
import { useI18n } from "../i18n";

const STATUSES = ["PENDING", "ACTIVE", "ACKNOWLEDGED", "RESOLVED"];
const TYPES = ["QUEUE_BACKLOG", "HIGH_FAILURE_RATE", "WORKER_DOWN", "SLOW_PROCESSING", "STATS_STALE"];
const SEVERITY_COLOR: Record<string, "error" | "warning" | "info" | "default"> = { CRITICAL: "error", WARNING: "warning", INFO: "info" };

function isOpen(i: Incident) {
  const s = enumName(i.status, "INCIDENT_STATUS_");
  return s === "ACTIVE" || s === "PENDING" || s === "ACKNOWLEDGED";
}

function IncidentDetail({ id, onClose, onResolve }: { id: string; onClose: () => void; onResolve: (i: Incident) => void }) {
  const { t } = useI18n();
  const detail = useIncident(id);
  const i = detail.data?.incident;
  return (
    <Dialog open onClose={onClose} maxWidth="md" fullWidth aria-labelledby="incident-title">
      <DialogTitle id="incident-title">
        #{id} {i?.title ?? ""}
      </DialogTitle>
      <DialogContent>
        {detail.error ? <ErrorBanner error={detail.error} onRetry={() => void detail.refetch()} /> : null}
        {detail.isPending ? <LoadingRows rows={4} /> : null}
        {i ? (
          <>
            <Box sx={{ display: "flex", gap: 1, mb: 1, flexWrap: "wrap" }}>
              <Chip size="small" label={enumName(i.severity, "SEVERITY_")} color={SEVERITY_COLOR[enumName(i.severity, "SEVERITY_")] ?? "default"} />
              <Chip size="small" label={enumName(i.status, "INCIDENT_STATUS_")} variant="outlined" />
              <Chip size="small" label={enumName(i.type, "INCIDENT_TYPE_")} variant="outlined" />
              {i.queue ? <Chip size="small" label={`${t("queue")}: ${i.queue}`} /> : null}
              {i.workerId ? <Chip size="small" label={`worker: ${i.workerId}`} /> : null}
            </Box>
            {i.description ? <Typography sx={{ mb: 1 }}>{i.description}</Typography> : null}
            {i.recommendedAction ? (
              <Alert severity="info" sx={{ mb: 1 }}>
                <strong>{t("recommended")}:</strong> {i.recommendedAction}
              </Alert>
            ) : null}
            <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
              value {i.value ?? 0} / threshold {i.threshold ?? 0} · affected jobs {num(i.affectedJobs)} · {t("started")} {fmtTime(i.startTime ?? i.pendingTime)}
              {i.acknowledgedBy ? ` · acknowledged by ${i.acknowledgedBy}` : ""}
              {i.resolvedBy ? ` · resolved by ${i.resolvedBy}${i.resolveNote ? `: ${i.resolveNote}` : ""}` : ""}
            </Typography>
            <Typography variant="subtitle2" component="h3">
              {t("timeline")}
            </Typography>
            <Box component="ol" sx={{ pl: 2.5 }}>
              {(detail.data?.timeline ?? []).map((e) => (
                <li key={e.id}>
                  <Typography variant="body2">
                    <strong>{enumName(e.kind, "INCIDENT_EVENT_KIND_").toLowerCase()}</strong> · {fmtTime(e.eventTime)}
                    {e.actor ? ` · ${e.actor}` : ""}
                    {e.message ? ` — ${e.message}` : ""}
                  </Typography>
                </li>
              ))}
            </Box>
          </>
        ) : null}
      </DialogContent>
      <DialogActions>
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
    describe: (r, iid) => `Incident #${iid} acknowledged (${enumName(r.incident?.status, "INCIDENT_STATUS_").toLowerCase()})`,
    invalidate,
  });
  const resolve = useAction({
    run: (v: { id: string; note: string }) => runIncidentAction(v.id, "resolve", { note: v.note }),
    describe: (_, v) => `Incident #${v.id} resolved: ${v.note}`,
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
              {s.toLowerCase()}
            </option>
          ))}
        </TextField>
        <TextField select size="small" label={t("type")} value={type} onChange={(e) => setType(e.target.value)} slotProps={{ select: { native: true }, inputLabel: { shrink: true } }} sx={{ minWidth: 200 }}>
          <option value="">{t("all")}</option>
          {TYPES.map((s) => (
            <option key={s} value={`INCIDENT_TYPE_${s}`}>
              {s.toLowerCase().replace(/_/g, " ")}
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
                <TableCell>ID</TableCell>
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
                      <Chip size="small" label={enumName(i.severity, "SEVERITY_")} color={SEVERITY_COLOR[enumName(i.severity, "SEVERITY_")] ?? "default"} />
                    </TableCell>
                    <TableCell>{s.toLowerCase()}</TableCell>
                    <TableCell>{enumName(i.type, "INCIDENT_TYPE_").toLowerCase().replace(/_/g, " ")}</TableCell>
                    <TableCell>
                      {i.title}
                      {i.queue ? ` (${i.queue})` : ""}
                    </TableCell>
                    <TableCell>{fmtTime(i.startTime ?? i.pendingTime)}</TableCell>
                    <TableCell>
                      <Box sx={{ display: "flex", gap: 0.5 }}>
                        <ActionButton
                          needs="operator"
                          unavailable={s === "ACKNOWLEDGED" ? "Already acknowledged" : s === "RESOLVED" ? "Already resolved" : undefined}
                          onClick={() => acknowledge.mutate(i.id ?? "")}
                        >
                          {t("acknowledge")}
                        </ActionButton>
                        <ActionButton
                          needs="admin"
                          unavailable={s === "RESOLVED" ? "Already resolved" : undefined}
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
          {t("resolve")} #{resolving?.id} {resolving?.title}
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
                {resolve.error.message}
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
