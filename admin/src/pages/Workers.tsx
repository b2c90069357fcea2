import Box from "@mui/material/Box";
import Chip from "@mui/material/Chip";
import FormControlLabel from "@mui/material/FormControlLabel";
import Paper from "@mui/material/Paper";
import Switch from "@mui/material/Switch";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import Tooltip from "@mui/material/Tooltip";
import Typography from "@mui/material/Typography";
import { useEffect, useState } from "react";
import { runWorkerAction } from "../api/actions";
import { keys, useAction, useWorkers } from "../api/hooks";
import { enumName, num, type Command, type Worker } from "../api/types";
import { ActionButton } from "../components/ActionButton";
import { DangerDialog } from "../components/DangerDialog";
import { EmptyState, ErrorBanner, LoadingRows } from "../components/States";
import { WorkerSpark } from "../components/WorkerSpark";
import { fmtAgo, fmtBytes, fmtDuration, fmtInt } from "../format";
import { useI18n, type Translate } from "../i18n";

type CommandAnswer = { command?: Command; outcome?: string };
type CommandVerb = "quiet" | "resume" | "stop";
const ACKED = { quiet: "commandAckedQuiet", resume: "commandAckedResume", stop: "commandAckedStop" } as const;

/** What the worker answered, in words: done, refused (with its reason), or sent and not yet acknowledged. */
export function describeCommand(t: Translate, verb: CommandVerb, id: string, r: CommandAnswer) {
  const outcome = enumName(r.outcome, "COMMAND_OUTCOME_");
  if (outcome === "ACKED") return t(ACKED[verb], { worker: id });
  if (outcome === "REFUSED") return t("commandRefused", { worker: id, answer: r.command?.result || t("commandExpired") });
  return t("commandPending", { worker: id, id: r.command?.commandId ?? "" });
}

/** Success only when the worker did it; a refusal is a warning, an unanswered command is news. */
export function commandSeverity(r: CommandAnswer) {
  const outcome = enumName(r.outcome, "COMMAND_OUTCOME_");
  return outcome === "ACKED" ? "success" : outcome === "REFUSED" ? "warning" : "info";
}

function useNow(intervalMs = 5000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), intervalMs);
    return () => window.clearInterval(timer);
  }, [intervalMs]);
  return now;
}

export function WorkerTable({ workers, onStop }: { workers: Worker[]; onStop: (id: string) => void }) {
  const { t } = useI18n();
  const now = useNow();
  const quiet = useAction({
    run: (id: string) => runWorkerAction(id, "quiet", {}),
    describe: (r, id) => describeCommand(t, "quiet", id, r),
    severity: commandSeverity,
    invalidate: [keys.workers],
  });
  const resume = useAction({
    run: (id: string) => runWorkerAction(id, "resume", {}),
    describe: (r, id) => describeCommand(t, "resume", id, r),
    severity: commandSeverity,
    invalidate: [keys.workers],
  });
  return (
    <Table size="small" aria-label={t("workers")} sx={{ "& td, & th": { px: 1 } }}>
      <TableHead>
        <TableRow>
          <TableCell>ID</TableCell>
          <TableCell>{t("status")}</TableCell>
          <TableCell>
            {t("host")} / {t("pid")}
          </TableCell>
          <TableCell>{t("queues")}</TableCell>
          <TableCell align="right">{t("active")}</TableCell>
          <TableCell align="right">
            {t("processed")} / {t("failed")}
          </TableCell>
          <TableCell>{t("uptime")}</TableCell>
          <TableCell>{t("lastBeat")}</TableCell>
          <TableCell>{t("gauges")}</TableCell>
          <TableCell>{t("workerActivity")}</TableCell>
          <TableCell>{t("actions")}</TableCell>
        </TableRow>
      </TableHead>
      <TableBody>
        {workers.map((w) => {
          const r = w.report;
          const id = r?.workerId ?? "";
          const online = w.status === "WORKER_STATUS_ONLINE";
          const state = enumName(r?.state, "WORKER_STATE_");
          const offlineReason = online ? undefined : t("workerOffline");
          const started = r?.startedAt ? new Date(r.startedAt).getTime() : NaN;
          const custom = Object.entries(r?.gauges?.custom ?? {});
          return (
            <TableRow key={id} data-testid={`worker-row-${id}`} hover>
              <TableCell component="th" scope="row" sx={{ fontFamily: "monospace", whiteSpace: "nowrap" }}>
                {id}
              </TableCell>
              <TableCell>
                <Tooltip title={w.offlineReason ?? ""}>
                  <Chip size="small" label={online ? `${t("online")}${state && state !== "RUNNING" ? ` · ${state.toLowerCase()}` : ""}` : t("offline")} color={online ? (state === "RUNNING" ? "success" : "warning") : "default"} />
                </Tooltip>
              </TableCell>
              <TableCell sx={{ whiteSpace: "nowrap" }}>
                {r?.hostname ?? "—"} · {r?.pid ?? "—"}
              </TableCell>
              <TableCell>{(r?.queues ?? []).join(", ")}</TableCell>
              <TableCell align="right">
                {num(r?.activeJobs)}/{num(r?.concurrency)}
              </TableCell>
              <TableCell align="right" sx={{ whiteSpace: "nowrap" }}>
                {fmtInt(r?.processedTotal)} / {fmtInt(r?.failedTotal)}
              </TableCell>
              <TableCell sx={{ whiteSpace: "nowrap" }}>{online && Number.isFinite(started) ? fmtDuration(now - started) : "—"}</TableCell>
              <TableCell sx={{ whiteSpace: "nowrap" }}>{fmtAgo(w.lastSeenTime, now)}</TableCell>
              <TableCell sx={{ fontSize: 12, minWidth: 110 }}>
                {r?.gauges?.cpuPercent !== undefined ? `CPU ${r.gauges.cpuPercent.toFixed(1)}%` : ""}
                {r?.gauges?.rssBytes !== undefined ? ` · RSS ${fmtBytes(r.gauges.rssBytes)}` : ""}
                {custom.map(([k, v]) => ` · ${k} ${v}`).join("")}
              </TableCell>
              <TableCell>
                <WorkerSpark workerId={id} />
              </TableCell>
              <TableCell>
                <Box sx={{ display: "flex", gap: 0.5 }}>
                  <ActionButton needs="operator" unavailable={offlineReason} sx={{ minWidth: 0, px: 1 }} onClick={() => quiet.mutate(id)}>
                    {t("quiet")}
                  </ActionButton>
                  <ActionButton needs="operator" unavailable={offlineReason} sx={{ minWidth: 0, px: 1 }} onClick={() => resume.mutate(id)}>
                    {t("resume")}
                  </ActionButton>
                  <ActionButton needs="admin" color="error" unavailable={offlineReason} sx={{ minWidth: 0, px: 1 }} onClick={() => onStop(id)}>
                    {t("stop")}
                  </ActionButton>
                </Box>
              </TableCell>
            </TableRow>
          );
        })}
      </TableBody>
    </Table>
  );
}

export default function WorkersPage() {
  const { t } = useI18n();
  const workers = useWorkers();
  const [showOffline, setShowOffline] = useState(true);
  const [stopping, setStopping] = useState<string | null>(null);
  const stop = useAction({
    run: (id: string) => runWorkerAction(id, "stop", { confirm: id }),
    describe: (r, id) => describeCommand(t, "stop", id, r),
    severity: commandSeverity,
    invalidate: [keys.workers],
  });
  const all = workers.data ?? [];
  const list = (showOffline ? all : all.filter((w) => w.status === "WORKER_STATUS_ONLINE")).slice().sort((a, b) => {
    const ao = a.status === "WORKER_STATUS_ONLINE" ? 0 : 1;
    const bo = b.status === "WORKER_STATUS_ONLINE" ? 0 : 1;
    return ao - bo || (a.report?.workerId ?? "").localeCompare(b.report?.workerId ?? "");
  });
  const online = all.filter((w) => w.status === "WORKER_STATUS_ONLINE").length;
  return (
    <Box>
      <Box sx={{ display: "flex", alignItems: "center", mb: 2, gap: 2 }}>
        <Typography variant="h5" component="h1">
          {t("workers")}
        </Typography>
        <Typography color="text.secondary">
          {online} {t("online").toLowerCase()} · {all.length - online} {t("offline").toLowerCase()}
        </Typography>
        <Box sx={{ flexGrow: 1 }} />
        <FormControlLabel control={<Switch checked={showOffline} onChange={(e) => setShowOffline(e.target.checked)} />} label={t("showOffline")} />
      </Box>
      {workers.error ? <ErrorBanner error={workers.error} onRetry={() => void workers.refetch()} /> : null}
      {workers.isPending ? (
        <LoadingRows />
      ) : all.length === 0 ? (
        <EmptyState>{t("noWorkers")}</EmptyState>
      ) : (
        <Paper variant="outlined" sx={{ overflowX: "auto" }}>
          <WorkerTable workers={list} onStop={setStopping} />
        </Paper>
      )}
      <DangerDialog
        open={stopping !== null}
        title={`${t("stop")}: ${stopping ?? ""}`}
        name={stopping ?? ""}
        confirmLabel={t("stop")}
        description={t("stopText", { name: stopping ?? "" })}
        busy={stop.isPending}
        error={stop.error ? stop.error.message : null}
        onClose={() => {
          setStopping(null);
          stop.reset();
        }}
        onConfirm={() => stopping && stop.mutate(stopping, { onSuccess: () => setStopping(null) })}
      />
    </Box>
  );
}
