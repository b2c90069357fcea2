import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Paper from "@mui/material/Paper";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { useEffect, useState } from "react";
import { ApiError } from "../api/client";
import { describeError } from "../api/errors";
import { findDeduplicatedJob, useJobs, useQueue, useQueues } from "../api/hooks";
import { num } from "../api/types";
import { AddJobButton } from "../components/AddJobDialog";
import { BulkBar } from "../components/BulkBar";
import { JobDrawer } from "../components/JobDrawer";
import { JobTable } from "../components/JobTable";
import { Pager, usePageTokens } from "../components/Pager";
import { EmptyState, ErrorBanner, LoadingRows } from "../components/States";
import { enumLabel, useI18n } from "../i18n";
import { useUrlParams } from "../urlParams";

const STATES = ["waiting", "active", "delayed", "prioritized", "waiting_children", "completed", "failed", "paused"];

export default function JobsPage() {
  const { t } = useI18n();
  // From the latest parameters: a search applied after a row was opened keeps the drawer open.
  const [params, update] = useUrlParams();
  const queues = useQueues();
  const queue = params.get("queue") ?? queues.data?.[0]?.name ?? "";
  const state = params.get("state") ?? "";
  const search = params.get("search") ?? "";
  const category = params.get("category") ?? "";
  const openJob = params.get("job");
  const [typed, setTyped] = useState(search);
  const pager = usePageTokens(JSON.stringify([queue, state, search, category]));
  // The categories the queue has seen fail (and the one in the URL, should it have dropped out).
  const seen = (useQueue(queue).data?.topFailureCategories ?? []).map((c) => c.category ?? "").filter(Boolean);
  const categories = category && !seen.includes(category) ? [category, ...seen] : seen;

  // Search as the user types, once they pause.
  useEffect(() => {
    if (typed === search) return;
    const timer = window.setTimeout(() => update({ search: typed || null }), 300);
    return () => window.clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [typed]);

  const [dedup, setDedup] = useState("");
  const [dedupError, setDedupError] = useState("");
  const findDedup = (id: string) => {
    setDedupError("");
    findDeduplicatedJob(queue, id).then(
      (job) => update({ job: job?.jobId ?? null }),
      (error: unknown) =>
        setDedupError(error instanceof ApiError && error.httpStatus === 404 ? t("deduplicationNotFound", { queue, id }) : describeError(error, t)),
    );
  };

  const jobs = useJobs({ queue, state, search, category, pageToken: pager.token });
  const list = jobs.data?.jobs ?? [];
  // Ticked jobs survive paging (a selection across pages) but not a change of queue or filter.
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const filterKey = JSON.stringify([queue, state, search, category]);
  useEffect(() => setSelected(new Set()), [filterKey]);
  const selection = {
    selected,
    toggle: (id: string) =>
      setSelected((prev) => {
        const next = new Set(prev);
        if (!next.delete(id)) next.add(id);
        return next;
      }),
    setPage: (ids: string[], on: boolean) =>
      setSelected((prev) => {
        const next = new Set(prev);
        for (const id of ids) {
          if (on) next.add(id);
          else next.delete(id);
        }
        return next;
      }),
  };

  return (
    <Box>
      <Typography variant="h5" component="h1" sx={{ mb: 2 }}>
        {t("jobs")}
      </Typography>
      <Box sx={{ display: "flex", gap: 1.5, mb: 2, flexWrap: "wrap" }} role="search">
        <TextField
          select
          size="small"
          label={t("queue")}
          id="jobs-queue"
          value={queue}
          onChange={(e) => update({ queue: e.target.value, job: null, category: null })}
          slotProps={{ select: { native: true }, inputLabel: { shrink: true } }}
          sx={{ minWidth: 200 }}
        >
          {(queues.data ?? []).length === 0 ? <option value="">—</option> : null}
          {(queues.data ?? []).map((q) => (
            <option key={q.name} value={q.name}>
              {q.displayName || q.name}
            </option>
          ))}
        </TextField>
        <TextField
          select
          size="small"
          label={t("state")}
          id="jobs-state"
          value={state}
          // A failure category only narrows failed jobs: another state drops it.
          onChange={(e) => update({ state: e.target.value || null, ...(e.target.value !== "failed" ? { category: null } : {}) })}
          slotProps={{ select: { native: true }, inputLabel: { shrink: true } }}
          sx={{ minWidth: 170 }}
        >
          <option value="">{t("allStates")}</option>
          {STATES.map((s) => (
            <option key={s} value={s}>
              {enumLabel(t, "js", s.toUpperCase())}
            </option>
          ))}
        </TextField>
        <TextField
          size="small"
          label={t("search")}
          id="jobs-search"
          type="search"
          value={typed}
          onChange={(e) => setTyped(e.target.value)}
          helperText={t("searchHelp")}
          sx={{ minWidth: 260 }}
        />
        <TextField
          select
          size="small"
          label={t("failureCategory")}
          id="jobs-category"
          value={category}
          onChange={(e) => update({ category: e.target.value || null, ...(e.target.value ? { state: "failed" } : {}) })}
          slotProps={{ select: { native: true }, inputLabel: { shrink: true } }}
          sx={{ minWidth: 180 }}
        >
          <option value="">{t("anyCategory")}</option>
          {categories.map((c) => (
            <option key={c} value={c}>
              {enumLabel(t, "fc", c)}
            </option>
          ))}
        </TextField>
        <Box
          component="form"
          sx={{ display: "flex", gap: 1, alignItems: "flex-start" }}
          onSubmit={(e) => {
            e.preventDefault();
            if (dedup.trim() && queue) findDedup(dedup.trim());
          }}
        >
          <TextField
            size="small"
            label={t("deduplicationId")}
            id="jobs-dedup"
            value={dedup}
            onChange={(e) => {
              setDedup(e.target.value);
              setDedupError("");
            }}
            error={!!dedupError}
            helperText={dedupError || t("deduplicationHelp")}
            sx={{ minWidth: 220 }}
          />
          <Button type="submit" variant="outlined" sx={{ mt: 0.25 }} disabled={!dedup.trim() || !queue}>
            {t("findByDeduplication")}
          </Button>
        </Box>
        <Box sx={{ flexGrow: 1 }} />
        <Box sx={{ pt: 0.5 }}>
          <AddJobButton queue={queue} queues={(queues.data ?? []).map((q) => q.name ?? "")} />
        </Box>
      </Box>
      {queue ? (
        <BulkBar
          queue={queue}
          filter={{
            state: state ? `JOB_STATE_${state.toUpperCase()}` : "",
            namePrefix: /^[0-9]+$/.test(search.trim()) ? "" : search.trim(),
            category,
            byId: /^[0-9]+$/.test(search.trim()),
          }}
          selected={[...selected]}
          matching={jobs.data?.totalSize !== undefined ? num(jobs.data.totalSize) : undefined}
          onClear={() => setSelected(new Set())}
        />
      ) : null}
      {jobs.error ? <ErrorBanner error={jobs.error} onRetry={() => void jobs.refetch()} /> : null}
      {queues.error ? <ErrorBanner error={queues.error} onRetry={() => void queues.refetch()} /> : null}
      {!queue && !queues.isPending ? (
        <EmptyState>{t("noQueues")}</EmptyState>
      ) : jobs.isPending ? (
        <LoadingRows rows={8} />
      ) : (
        <Paper variant="outlined" sx={{ overflowX: "auto", opacity: jobs.isPlaceholderData ? 0.6 : 1 }}>
          {list.length === 0 ? <EmptyState>{t("noJobs")}</EmptyState> : <JobTable jobs={list} onOpen={(id) => update({ job: id })} selection={selection} />}
          <Box sx={{ px: 2 }}>
            <Pager
              page={pager.page}
              hasPrev={pager.hasPrev}
              nextToken={jobs.data?.nextPageToken}
              total={jobs.data?.totalSize !== undefined ? num(jobs.data.totalSize) : undefined}
              onPrev={pager.prev}
              onNext={pager.next}
            />
          </Box>
        </Paper>
      )}
      <JobDrawer key={`${queue}/${openJob ?? ""}`} queue={queue} jobId={openJob} onClose={() => update({ job: null })} />
    </Box>
  );
}
