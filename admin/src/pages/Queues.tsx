import Box from "@mui/material/Box";
import Checkbox from "@mui/material/Checkbox";
import FormControlLabel from "@mui/material/FormControlLabel";
import IconButton from "@mui/material/IconButton";
import Paper from "@mui/material/Paper";
import Skeleton from "@mui/material/Skeleton";
import TextField from "@mui/material/TextField";
import ToggleButton from "@mui/material/ToggleButton";
import ToggleButtonGroup from "@mui/material/ToggleButtonGroup";
import Typography from "@mui/material/Typography";
import CloseIcon from "@mui/icons-material/Close";
import { Suspense, lazy, useState } from "react";
import { useLocation, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { runQueueAction } from "../api/actions";
import { TREND_RANGES, trendRange } from "../charts/time";
import { describeError } from "../api/errors";
import { keys, useAction, useQueue, useQueues, useTrend } from "../api/hooks";
import { num, type JobState, type Queue } from "../api/types";
import { ActionButton } from "../components/ActionButton";
import { AddJobButton } from "../components/AddJobDialog";
import { DangerDialog } from "../components/DangerDialog";
import { PriorityBreakdown, QueueLimitBadges } from "../components/QueueLimits";
import { QueueStatusChip, QueueTable } from "../components/QueueTable";
import { Schedulers } from "../components/Schedulers";
import { ErrorBanner, LoadingRows } from "../components/States";
import { fmtInt, fmtMs, fmtPercent } from "../format";
import { enumLabel, useI18n } from "../i18n";

const TrendCharts = lazy(() => import("../charts/TrendCharts"));

function useQueueActions(queue: string) {
  const { t } = useI18n();
  const invalidate = [keys.queues, keys.queue(queue), keys.overview, keys.jobs];
  return {
    pause: useAction({
      run: () => runQueueAction(queue, "pause", {}),
      describe: (r) => (r.changed ? t("queuePaused", { queue }) : t("queueAlreadyPaused", { queue })),
      invalidate,
    }),
    resume: useAction({
      run: () => runQueueAction(queue, "resume", {}),
      describe: (r) => (r.changed ? t("queueResumed", { queue }) : t("queueNotPaused", { queue })),
      invalidate,
    }),
    retry: useAction({
      run: () => runQueueAction(queue, "retryFailed", {}),
      describe: (r) => t("queueRetried", { count: num(r.retried), queue }),
      invalidate,
    }),
    promote: useAction({
      run: () => runQueueAction(queue, "promote", {}),
      describe: (r) => t("queuePromoted", { count: num(r.promoted), queue }),
      invalidate,
    }),
    drain: useAction({
      run: (v: { includeDelayed: boolean }) => runQueueAction(queue, "drain", { confirm: queue, includeDelayed: v.includeDelayed }),
      describe: (r) => t("queueDrained", { count: num(r.removed), queue }),
      invalidate,
    }),
    obliterate: useAction({
      run: (v: { force: boolean }) => runQueueAction(queue, "obliterate", { confirm: queue, force: v.force }),
      describe: () => t("queueObliterated", { queue }),
      invalidate,
    }),
    clean: useAction({
      run: (v: { state: JobState; grace: number; limit: number }) =>
        runQueueAction(queue, "clean", { confirm: queue, state: v.state, grace: `${v.grace}s`, limit: v.limit }),
      describe: (r) => t("queueCleaned", { count: num(r.removed), queue }),
      invalidate,
    }),
  };
}

function QueueDetail({ name, queues, onClose }: { name: string; queues: string[]; onClose: () => void }) {
  const { t } = useI18n();
  // The range lives in the URL (?range=7d), so a link or a reload shows the same history.
  const [params, setParams] = useSearchParams();
  const range = trendRange(params.get("range"));
  const hours = range.hours;
  const queue = useQueue(name);
  const trend = useTrend(name, hours);
  const actions = useQueueActions(name);
  const [danger, setDanger] = useState<"drain" | "clean" | "obliterate" | null>(null);
  const [force, setForce] = useState(false);
  const [includeDelayed, setIncludeDelayed] = useState(false);
  const [cleanState, setCleanState] = useState<JobState>("JOB_STATE_COMPLETED");
  const [grace, setGrace] = useState(3600);
  const [limit, setLimit] = useState(1000);
  const q: Queue | null | undefined = queue.data;
  const dangerAction = danger === "drain" ? actions.drain : danger === "obliterate" ? actions.obliterate : actions.clean;
  const dangerLabel = danger === "drain" ? t("drain") : danger === "obliterate" ? t("obliterate") : t("clean");

  return (
    <Paper variant="outlined" sx={{ p: 2, mt: 2 }} component="section" aria-label={`${t("queue")} ${name}`}>
      <Box sx={{ display: "flex", alignItems: "center", gap: 1, mb: 1 }}>
        <Typography variant="h6" component="h2">
          {name}
        </Typography>
        {q ? <QueueStatusChip queue={q} /> : null}
        <Box sx={{ flexGrow: 1 }} />
        <IconButton aria-label={t("close")} onClick={onClose} size="small">
          <CloseIcon fontSize="small" />
        </IconButton>
      </Box>
      {queue.error ? <ErrorBanner error={queue.error} onRetry={() => void queue.refetch()} /> : null}
      {q ? (
        <Typography variant="body2" color="text.secondary" sx={{ mb: 1 }}>
          {q.statusReason ? (
            <>
              <span lang="en">{q.statusReason}</span>
              {" · "}
            </>
          ) : null}
          {t("completedFailed24h", { completed: fmtInt(q.completed24h), failed: fmtInt(q.failed24h), rate: fmtPercent(q.successRate24h) })} · p95 {fmtMs(q.processing?.p95Ms)} · {t("waitP95")} {fmtMs(q.wait?.p95Ms)}
          {(q.topFailureCategories ?? []).length > 0
            ? ` · ${t("categoriesLine", { list: (q.topFailureCategories ?? []).map((c) => `${enumLabel(t, "fc", c.category ?? "")}: ${fmtInt(c.count)}`).join(", ") })}`
            : ""}
        </Typography>
      ) : null}
      {q ? <QueueLimitBadges queue={q} /> : null}
      {q ? <PriorityBreakdown queue={q} /> : null}
      <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1, mb: 2 }} role="group" aria-label={t("actions")}>
        <ActionButton needs="operator" onClick={() => actions.pause.mutate()} disabled={actions.pause.isPending}>
          {t("pause")}
        </ActionButton>
        <ActionButton needs="operator" onClick={() => actions.resume.mutate()} disabled={actions.resume.isPending}>
          {t("resume")}
        </ActionButton>
        <ActionButton needs="operator" onClick={() => actions.retry.mutate()} disabled={actions.retry.isPending}>
          {t("retryFailed")}
        </ActionButton>
        <ActionButton needs="operator" onClick={() => actions.promote.mutate()} disabled={actions.promote.isPending}>
          {t("promote")}
        </ActionButton>
        <ActionButton needs="admin" color="error" onClick={() => setDanger("drain")}>
          {t("drain")}
        </ActionButton>
        <ActionButton needs="admin" color="error" onClick={() => setDanger("clean")}>
          {t("clean")}
        </ActionButton>
        <AddJobButton queue={name} queues={queues} />
      </Box>
      <Box sx={{ display: "flex", alignItems: "center", gap: 1, mb: 2 }} role="group" aria-label={t("dangerZone")}>
        <Typography variant="subtitle2" color="error">
          {t("dangerZone")}
        </Typography>
        <ActionButton needs="admin" color="error" variant="contained" onClick={() => setDanger("obliterate")}>
          {t("obliterate")}
        </ActionButton>
      </Box>
      <Box sx={{ display: "flex", alignItems: "center", gap: 1, mb: 1 }}>
        <Typography variant="subtitle2">{t("range")}</Typography>
        <ToggleButtonGroup
          size="small"
          exclusive
          value={range.key}
          onChange={(_, v: string | null) =>
            v &&
            setParams(
              (prev) => {
                const next = new URLSearchParams(prev);
                next.set("range", v);
                return next;
              },
              { replace: true },
            )
          }
          aria-label={t("range")}
        >
          {TREND_RANGES.map((r) => (
            <ToggleButton key={r.key} value={r.key}>
              {r.label}
            </ToggleButton>
          ))}
        </ToggleButtonGroup>
      </Box>
      {trend.error ? <ErrorBanner error={trend.error} onRetry={() => void trend.refetch()} /> : null}
      {trend.data ? (
        <Suspense fallback={<Skeleton variant="rectangular" height={220} />}>
          <TrendCharts
            points={trend.data.points ?? []}
            hours={hours}
            labels={{
              throughput: t("throughput"),
              completed: t("completed"),
              failed: t("failed"),
              stalled: t("stalledSeries"),
              backlog: t("backlog"),
              waiting: t("waiting"),
              delayed: t("delayed"),
              active: t("active"),
              processing: t("processingTime"),
              wait: t("waitTime"),
              failuresByCategory: t("failuresByCategory"),
              noFailures: t("noFailuresInRange"),
              category: (name) => enumLabel(t, "fc", name),
            }}
          />
        </Suspense>
      ) : trend.isPending ? (
        <Skeleton variant="rectangular" height={220} />
      ) : null}
      <Schedulers queue={name} />
      <DangerDialog
        open={danger !== null}
        title={`${dangerLabel}: ${name}`}
        name={name}
        confirmLabel={dangerLabel}
        description={danger === "drain" ? t("drainText", { name }) : danger === "obliterate" ? t("obliterateText", { name }) : t("cleanText", { name })}
        busy={dangerAction.isPending}
        error={dangerAction.error ? describeError(dangerAction.error, t) : null}
        onClose={() => {
          setDanger(null);
          dangerAction.reset();
        }}
        onConfirm={() => {
          const done = { onSuccess: () => setDanger(null) };
          if (danger === "drain") actions.drain.mutate({ includeDelayed }, done);
          else if (danger === "obliterate") actions.obliterate.mutate({ force }, { onSuccess: () => onClose() });
          else actions.clean.mutate({ state: cleanState, grace, limit }, done);
        }}
      >
        {danger === "drain" ? (
          <FormControlLabel control={<Checkbox checked={includeDelayed} onChange={(e) => setIncludeDelayed(e.target.checked)} />} label={t("includeDelayed")} />
        ) : danger === "obliterate" ? (
          <FormControlLabel control={<Checkbox checked={force} onChange={(e) => setForce(e.target.checked)} />} label={t("obliterateForce")} />
        ) : (
          <Box sx={{ display: "flex", gap: 1, mb: 1 }}>
            <TextField
              select
              size="small"
              label={t("cleanState")}
              value={cleanState}
              onChange={(e) => setCleanState(e.target.value as JobState)}
              slotProps={{ select: { native: true } }}
            >
              {["COMPLETED", "FAILED", "DELAYED", "WAITING", "PRIORITIZED", "PAUSED"].map((s) => (
                <option key={s} value={`JOB_STATE_${s}`}>
                  {enumLabel(t, "js", s)}
                </option>
              ))}
            </TextField>
            <TextField size="small" type="number" label={t("grace")} value={grace} onChange={(e) => setGrace(Math.max(0, Number(e.target.value)))} />
            <TextField size="small" type="number" label={t("limit")} value={limit} onChange={(e) => setLimit(Math.max(1, Number(e.target.value)))} />
          </Box>
        )}
      </DangerDialog>
    </Paper>
  );
}

export default function QueuesPage() {
  const { t } = useI18n();
  const { name } = useParams();
  const navigate = useNavigate();
  const { search } = useLocation();
  const queues = useQueues();
  return (
    <Box>
      <Typography variant="h5" component="h1" sx={{ mb: 2 }}>
        {t("queues")}
      </Typography>
      {queues.error ? <ErrorBanner error={queues.error} onRetry={() => void queues.refetch()} /> : null}
      {queues.isPending ? (
        <LoadingRows />
      ) : queues.data ? (
        <Paper variant="outlined" sx={{ overflowX: "auto" }}>
          <QueueTable queues={queues.data} selected={name} onSelect={(n) => navigate({ pathname: `/queues/${encodeURIComponent(n)}`, search })} />
        </Paper>
      ) : null}
      {name ? <QueueDetail key={name} name={name} queues={(queues.data ?? []).map((q) => q.name ?? "")} onClose={() => navigate("/queues")} /> : null}
    </Box>
  );
}
