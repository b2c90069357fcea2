import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Divider from "@mui/material/Divider";
import Drawer from "@mui/material/Drawer";
import IconButton from "@mui/material/IconButton";
import Typography from "@mui/material/Typography";
import CloseIcon from "@mui/icons-material/Close";
import { useState, type ReactNode } from "react";
import { runJobAction } from "../api/actions";
import { keys, useAction, useJob } from "../api/hooks";
import { enumName, num } from "../api/types";
import { fmtBytes, fmtMs, fmtTime } from "../format";
import { enumLabel, useI18n } from "../i18n";
import { ActionButton } from "./ActionButton";
import { JobFlow } from "./JobFlow";
import { JobStateChip, StalledChip } from "./JobTable";
import { JsonView, LargeText } from "./JsonView";
import { ErrorBanner, LoadingRows } from "./States";

function Section({ title, children }: { title: string; children: ReactNode }) {
  return (
    <Box component="section" sx={{ mb: 2 }}>
      <Typography variant="subtitle2" component="h3" sx={{ mb: 0.5 }}>
        {title}
      </Typography>
      {children}
    </Box>
  );
}

export function JobDrawer({ queue, jobId, onClose }: { queue: string; jobId: string | null; onClose: () => void }) {
  const { t } = useI18n();
  const [full, setFull] = useState(false);
  const job = useJob(queue, jobId, full);
  const j = job.data;
  const invalidate = [keys.jobs, keys.job, keys.queues, keys.overview];
  const retry = useAction({
    run: () => runJobAction(queue, jobId ?? "", "retry", {}),
    describe: (r) => t("jobRetried", { id: jobId ?? "", state: enumLabel(t, "js", enumName(r.previousState, "JOB_STATE_") || "FAILED") }),
    invalidate,
  });
  const promote = useAction({ run: () => runJobAction(queue, jobId ?? "", "promote", {}), describe: () => t("jobPromoted", { id: jobId ?? "" }), invalidate });
  const cancel = useAction({
    run: () => runJobAction(queue, jobId ?? "", "cancel", {}),
    describe: (r) => t("jobCancelOutcome", { id: jobId ?? "", outcome: enumLabel(t, "co", enumName(r.outcome, "CANCEL_OUTCOME_")) }),
    invalidate,
  });
  const release = useAction({
    run: () => runJobAction(queue, jobId ?? "", "releaseDeduplication", {}),
    describe: (r) => t("deduplicationReleased", { id: r.deduplicationId ?? "" }),
    invalidate,
  });
  const state = enumName(j?.summary?.state, "JOB_STATE_");
  const stateLabel = enumLabel(t, "js", state || "UNKNOWN");
  const title = `${t("job")} ${jobId ?? ""}`;
  return (
    <Drawer
      anchor="right"
      open={jobId !== null}
      onClose={() => {
        setFull(false);
        onClose();
      }}
      slotProps={{ paper: { role: "dialog", "aria-label": title, sx: { width: { xs: "100%", md: 640 }, p: 2 } } }}
    >
      <Box sx={{ display: "flex", alignItems: "center", gap: 1, mb: 1 }}>
        <Typography variant="h6" component="h2">
          {title}
        </Typography>
        {j ? <JobStateChip state={j.summary?.state} /> : null}
        {j?.summary?.stalledSuspected ? <StalledChip /> : null}
        <Box sx={{ flexGrow: 1 }} />
        <IconButton aria-label={t("close")} onClick={onClose} size="small">
          <CloseIcon fontSize="small" />
        </IconButton>
      </Box>
      <Box sx={{ display: "flex", gap: 1, mb: 2 }}>
        <ActionButton needs="operator" onClick={() => retry.mutate()} disabled={retry.isPending} unavailable={j && state !== "FAILED" && state !== "COMPLETED" ? t("onlyFailedRetry", { state: stateLabel }) : undefined}>
          {t("retry")}
        </ActionButton>
        <ActionButton needs="operator" onClick={() => promote.mutate()} disabled={promote.isPending} unavailable={j && state !== "DELAYED" ? t("onlyDelayedPromote", { state: stateLabel }) : undefined}>
          {t("promote")}
        </ActionButton>
        <ActionButton needs="admin" color="error" onClick={() => cancel.mutate()} disabled={cancel.isPending} unavailable={j && (state === "COMPLETED" || state === "FAILED") ? t("alreadyFinished", { state: stateLabel }) : undefined}>
          {t("cancel")}
        </ActionButton>
      </Box>
      {job.error ? <ErrorBanner error={job.error} onRetry={() => void job.refetch()} /> : null}
      {job.isPending && jobId ? <LoadingRows rows={6} /> : null}
      {j ? (
        <>
          <Typography variant="body2" sx={{ mb: 2 }} color="text.secondary">
            {j.summary?.name} · {queue} · {t("attempts")} {j.summary?.attemptsMade ?? 0}/{j.summary?.maxAttempts ?? 0}
            {j.summary?.durationMs !== undefined ? ` · ${fmtMs(j.summary.durationMs)}` : ""}
            {j.workerId || j.processedBy ? ` · ${j.workerId || j.processedBy}` : ""}
            {num(j.summary?.stalledCount) > 0 ? ` · ${t("stalledCount", { count: String(j.summary?.stalledCount) })}` : ""}
          </Typography>
          {j.summary?.deduplicationId ? (
            <Box sx={{ display: "flex", alignItems: "center", gap: 1, mb: 2 }}>
              <Typography variant="body2" data-testid="job-deduplication-id">
                {t("deduplicationId")}:{" "}
                <Box component="span" sx={{ fontFamily: "monospace" }} translate="no">
                  {j.summary.deduplicationId}
                </Box>
              </Typography>
              <ActionButton needs="operator" size="small" onClick={() => release.mutate()} disabled={release.isPending}>
                {t("releaseDeduplication")}
              </ActionButton>
            </Box>
          ) : null}
          {j.failedReason || j.summary?.failedReason ? (
            <Alert severity="error" sx={{ mb: 2 }}>
              <span lang="en">{j.failedReason || j.summary?.failedReason}</span>
              {j.summary?.failureCategory ? ` (${enumLabel(t, "fc", j.summary.failureCategory)})` : ""}
            </Alert>
          ) : null}
          <JobFlow queue={queue} job={j} />
          <Section title={t("data")}>
            {j.dataTruncated && !full ? (
              <Alert
                severity="info"
                sx={{ mb: 1 }}
                action={
                  <Button size="small" color="inherit" onClick={() => setFull(true)}>
                    {t("showFull")}
                  </Button>
                }
              >
                {t("truncated", { size: fmtBytes(j.dataBytes) })}
              </Alert>
            ) : null}
            {j.dataTruncated || full || num(j.dataBytes) > 100_000 ? <LargeText text={j.data ?? ""} label={t("data")} /> : <JsonView text={j.data} label={t("data")} />}
          </Section>
          {j.returnValue ? (
            <Section title={t("returnValue")}>
              {j.returnValueTruncated ? <LargeText text={j.returnValue} label={t("returnValue")} /> : <JsonView text={j.returnValue} label={t("returnValue")} />}
            </Section>
          ) : null}
          {(j.stacktrace ?? []).length > 0 ? (
            <Section title={t("stacktrace")}>
              {(j.stacktrace ?? []).map((s, i) => (
                <Box key={i} sx={{ mb: 1 }}>
                  <LargeText text={s} label={`${t("stacktrace")} ${i + 1}`} />
                </Box>
              ))}
            </Section>
          ) : null}
          <Section title={`${t("logs")} (${num(j.logsTotal)})`}>
            {(j.logs ?? []).length > 0 ? <LargeText text={(j.logs ?? []).join("\n")} label={t("logs")} /> : <Typography color="text.secondary">—</Typography>}
          </Section>
          <Section title={t("timeline")}>
            <Box component="ol" sx={{ m: 0, pl: 2.5 }}>
              {(j.timeline ?? []).map((e, i) => (
                <li key={i}>
                  <Typography variant="body2">
                    <strong>{enumLabel(t, "tl", e.kind ?? "")}</strong> · {fmtTime(e.time)}
                    {e.detail ? (
                      <>
                        {" — "}
                        <span lang="en">{e.detail}</span>
                      </>
                    ) : null}
                  </Typography>
                </li>
              ))}
            </Box>
          </Section>
          <Divider sx={{ my: 1 }} />
          <Section title={t("options")}>
            <JsonView text={j.options} label={t("options")} />
          </Section>
        </>
      ) : null}
    </Drawer>
  );
}
