import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Chip from "@mui/material/Chip";
import Paper from "@mui/material/Paper";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import TextField from "@mui/material/TextField";
import Tooltip from "@mui/material/Tooltip";
import Typography from "@mui/material/Typography";
import { useEffect, useState } from "react";
import { runWorkerAction } from "../api/actions";
import { describeError } from "../api/errors";
import { keys, useAction, useOverview, useWorkers } from "../api/hooks";
import { enumName, num, type Command, type Worker } from "../api/types";
import { ActionButton } from "../components/ActionButton";
import { DangerDialog } from "../components/DangerDialog";
import { Pager, usePageTokens } from "../components/Pager";
import { EmptyState, ErrorBanner, LoadingRows } from "../components/States";
import { WorkerSpark } from "../components/WorkerSpark";
import { fmtBytes, fmtDuration, fmtInt } from "../format";
import { enumLabel, useI18n, type Translate } from "../i18n";
import { useUrlParams } from "../urlParams";

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
          <TableCell>{t("idHeader")}</TableCell>
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
          if (w.kind === "WORKER_KIND_UNINSTRUMENTED") return <SeenWorkerRow key={id} worker={w} />;
          const lag = r?.gauges?.eventLoopLagMs;
          return (
            <TableRow key={id} data-testid={`worker-row-${id}`} hover>
              <TableCell component="th" scope="row" sx={{ fontFamily: "monospace", whiteSpace: "nowrap" }} translate="no">
                {id}
              </TableCell>
              <TableCell>
                <Tooltip title={w.offlineReason ? <span lang="en">{w.offlineReason}</span> : ""} describeChild>
                  <Chip size="small" label={online ? `${t("online")}${state && state !== "RUNNING" ? ` · ${enumLabel(t, "ws", state)}` : ""}` : t("offline")} color={online ? (state === "RUNNING" ? "success" : "warning") : "default"} />
                </Tooltip>
              </TableCell>
              <TableCell sx={{ whiteSpace: "nowrap" }} translate="no">
                {r?.hostname ?? "—"} · {r?.pid ?? "—"}
              </TableCell>
              <TableCell translate="no">{(r?.queues ?? []).join(", ")}</TableCell>
              <TableCell align="right">
                {num(r?.activeJobs)}/{num(r?.concurrency)}
              </TableCell>
              <TableCell align="right" sx={{ whiteSpace: "nowrap" }}>
                {fmtInt(r?.processedTotal)} / {fmtInt(r?.failedTotal)}
              </TableCell>
              <TableCell sx={{ whiteSpace: "nowrap" }}>{online && Number.isFinite(started) ? fmtDuration(now - started) : "—"}</TableCell>
              <TableCell sx={{ whiteSpace: "nowrap" }}>{w.lastSeenTime ? t("ago", { time: fmtDuration(Math.max(0, now - new Date(w.lastSeenTime).getTime())) }) : "—"}</TableCell>
              <TableCell sx={{ fontSize: 12, minWidth: 110 }} translate="no">
                {r?.gauges?.cpuPercent !== undefined ? `CPU ${r.gauges.cpuPercent.toFixed(1)}%` : ""}
                {r?.gauges?.rssBytes !== undefined ? ` · RSS ${fmtBytes(r.gauges.rssBytes)}` : ""}
                {lag ? ` · ${t("loopLag", { ms: lag.toFixed(0) })}` : ""}
                {custom.map(([k, v]) => ` · ${k} ${v}`).join("")}
              </TableCell>
              <TableCell>
                <WorkerSpark workerId={id} />
              </TableCell>
              <TableCell>
                <WorkerActions unavailable={offlineReason} onQuiet={() => quiet.mutate(id)} onResume={() => resume.mutate(id)} onStop={() => onStop(id)} />
              </TableCell>
            </TableRow>
          );
        })}
      </TableBody>
    </Table>
  );
}

/** Quiet, resume and stop; all unavailable with the reason given, if any. */
function WorkerActions({ unavailable, onQuiet, onResume, onStop }: { unavailable?: string; onQuiet?: () => void; onResume?: () => void; onStop?: () => void }) {
  const { t } = useI18n();
  const sx = { minWidth: 0, px: 1 };
  return (
    <Box sx={{ display: "flex", gap: 0.5 }}>
      <ActionButton needs="operator" unavailable={unavailable} sx={sx} onClick={onQuiet}>
        {t("quiet")}
      </ActionButton>
      <ActionButton needs="operator" unavailable={unavailable} sx={sx} onClick={onResume}>
        {t("resume")}
      </ActionButton>
      <ActionButton needs="admin" color="error" unavailable={unavailable} sx={sx} onClick={onStop}>
        {t("stop")}
      </ActionButton>
    </Box>
  );
}

/** A BullMQ worker without the SDK: what its Redis connection tells, and no commands. */
function SeenWorkerRow({ worker }: { worker: Worker }) {
  const { t } = useI18n();
  const r = worker.report;
  const c = worker.connection;
  const id = r?.workerId ?? "";
  const seconds = (d?: string) => (d ? Number.parseFloat(d) * 1000 : NaN);
  const age = seconds(c?.age);
  const idle = seconds(c?.idle);
  const details = t("connectionDetails", { addr: c?.addr ?? "", id: c?.clientId ?? "", node: c?.node ?? "", name: c?.clientName ?? "" });
  return (
    <TableRow data-testid={`worker-row-${id}`} hover>
      <TableCell component="th" scope="row" sx={{ fontFamily: "monospace", whiteSpace: "nowrap" }} translate="no">
        {id}
      </TableCell>
      <TableCell>
        <Tooltip title={t("uninstrumentedHelp")} describeChild>
          <Chip size="small" variant="outlined" color="success" label={`${t("online")} · ${t("uninstrumented")}`} />
        </Tooltip>
      </TableCell>
      <TableCell sx={{ whiteSpace: "nowrap" }} translate="no">
        {r?.hostname ?? "—"}
      </TableCell>
      <TableCell translate="no">{(r?.queues ?? []).join(", ")}</TableCell>
      <TableCell align="right">—</TableCell>
      <TableCell align="right">—</TableCell>
      <TableCell sx={{ whiteSpace: "nowrap" }}>{Number.isFinite(age) ? fmtDuration(age) : "—"}</TableCell>
      <TableCell sx={{ whiteSpace: "nowrap" }}>{Number.isFinite(idle) ? t("idleFor", { time: fmtDuration(idle) }) : "—"}</TableCell>
      <TableCell sx={{ fontSize: 12, minWidth: 110 }} translate="no">
        <Tooltip title={details}>
          <span data-testid={`worker-connection-${id}`}>
            {c?.addr ?? ""}
            {c?.workerName ? ` · ${t("workerName", { name: c.workerName })}` : ""}
          </span>
        </Tooltip>
      </TableCell>
      <TableCell>—</TableCell>
      <TableCell>
        <WorkerActions unavailable={t("noSdkCommands")} />
      </TableCell>
    </TableRow>
  );
}

const STATUSES = ["WORKER_STATUS_ONLINE", "WORKER_STATUS_OFFLINE"];
const KINDS = ["WORKER_KIND_INSTRUMENTED", "WORKER_KIND_UNINSTRUMENTED"];

export default function WorkersPage() {
  const { t } = useI18n();
  const [params, update] = useUrlParams();
  const search = params.get("search") ?? "";
  const status = params.get("status") ?? "";
  const kind = params.get("kind") ?? "";
  const [typed, setTyped] = useState(search);
  const pager = usePageTokens(JSON.stringify([search, status, kind]));
  // Search as the user types, once they pause.
  useEffect(() => {
    if (typed === search) return;
    const timer = window.setTimeout(() => update({ search: typed.trim() || null }), 300);
    return () => window.clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [typed]);

  const workers = useWorkers({ search, status, kind, pageToken: pager.token });
  const overview = useOverview();
  const [stopping, setStopping] = useState<string | null>(null);
  const stop = useAction({
    run: (id: string) => runWorkerAction(id, "stop", { confirm: id }),
    describe: (r, id) => describeCommand(t, "stop", id, r),
    severity: commandSeverity,
    invalidate: [keys.workers],
  });
  const list = workers.data?.workers ?? [];
  const filtered = !!search || !!status || !!kind || pager.hasPrev;
  const scan = workers.data?.connectionScan;
  const scanStatus = enumName(scan?.status, "CONNECTION_SCAN_STATUS_");
  const o = overview.data;
  return (
    <Box>
      <Box sx={{ display: "flex", alignItems: "center", mb: 2, gap: 2 }}>
        <Typography variant="h5" component="h1">
          {t("workers")}
        </Typography>
        {o ? (
          <Typography color="text.secondary" data-testid="worker-counts">
            {t("workersCounts", { online: fmtInt(o.workersOnline), offline: fmtInt(o.workersOffline) })}
          </Typography>
        ) : null}
      </Box>
      <Box sx={{ display: "flex", gap: 1.5, mb: 2, flexWrap: "wrap" }} role="search">
        <TextField
          size="small"
          label={t("workerSearch")}
          id="workers-search"
          type="search"
          value={typed}
          onChange={(e) => setTyped(e.target.value)}
          helperText={t("workerSearchHelp")}
          slotProps={{ htmlInput: { maxLength: 200 } }}
          sx={{ minWidth: 260 }}
        />
        <TextField
          select
          size="small"
          label={t("status")}
          id="workers-status"
          value={status}
          onChange={(e) => update({ status: e.target.value || null })}
          slotProps={{ select: { native: true }, inputLabel: { shrink: true } }}
          sx={{ minWidth: 170 }}
        >
          <option value="">{t("anyStatus")}</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s === "WORKER_STATUS_ONLINE" ? t("online") : t("offline")}
            </option>
          ))}
        </TextField>
        <TextField
          select
          size="small"
          label={t("workerKind")}
          id="workers-kind"
          value={kind}
          onChange={(e) => update({ kind: e.target.value || null })}
          slotProps={{ select: { native: true }, inputLabel: { shrink: true } }}
          sx={{ minWidth: 170 }}
        >
          <option value="">{t("anyKind")}</option>
          {KINDS.map((k) => (
            <option key={k} value={k}>
              {k === "WORKER_KIND_INSTRUMENTED" ? t("kindInstrumented") : t("kindUninstrumented")}
            </option>
          ))}
        </TextField>
      </Box>
      {scanStatus === "REFUSED" || scanStatus === "FAILED" ? (
        <Alert severity={scanStatus === "REFUSED" ? "info" : "warning"} sx={{ mb: 2 }} data-testid="connection-scan">
          {t(scanStatus === "REFUSED" ? "scanRefused" : "scanFailed", { detail: scan?.detail ?? "" })}
        </Alert>
      ) : null}
      {workers.error ? <ErrorBanner error={workers.error} onRetry={() => void workers.refetch()} /> : null}
      {workers.isPending ? (
        <LoadingRows />
      ) : list.length === 0 && !filtered ? (
        <EmptyState>{t("noWorkers")}</EmptyState>
      ) : (
        <Paper variant="outlined" sx={{ overflowX: "auto", opacity: workers.isPlaceholderData ? 0.6 : 1 }}>
          {list.length === 0 ? <EmptyState>{t("noWorkerMatch")}</EmptyState> : <WorkerTable workers={list} onStop={setStopping} />}
          <Box sx={{ px: 2 }}>
            <Pager page={pager.page} hasPrev={pager.hasPrev} nextToken={workers.data?.nextPageToken} onPrev={pager.prev} onNext={pager.next} />
          </Box>
        </Paper>
      )}
      <DangerDialog
        open={stopping !== null}
        title={`${t("stop")}: ${stopping ?? ""}`}
        name={stopping ?? ""}
        confirmLabel={t("stop")}
        description={t("stopText", { name: stopping ?? "" })}
        busy={stop.isPending}
        error={stop.error ? describeError(stop.error, t) : null}
        onClose={() => {
          setStopping(null);
          stop.reset();
        }}
        onConfirm={() => stopping && stop.mutate(stopping, { onSuccess: () => setStopping(null) })}
      />
    </Box>
  );
}
