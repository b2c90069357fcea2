// A job's place in a flow: its parent (a link), its children per kind, and a tree of its descendants that
// loads each node's children only when the node is expanded, a page at a time (a parent may have
// thousands). Also the action that lets a parent stuck waiting for its children move on.

import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Chip from "@mui/material/Chip";
import IconButton from "@mui/material/IconButton";
import Link from "@mui/material/Link";
import Typography from "@mui/material/Typography";
import ChevronRightIcon from "@mui/icons-material/ChevronRight";
import ExpandMoreIcon from "@mui/icons-material/ExpandMore";
import { useState } from "react";
import { Link as RouterLink } from "react-router-dom";
import { runJobAction } from "../api/actions";
import { describeError } from "../api/errors";
import { keys, useAction, useJobChildren } from "../api/hooks";
import { enumName, num, type DependencyCounts, type Job, type JobChild } from "../api/types";
import { enumLabel, useI18n } from "../i18n";
import { ActionButton } from "./ActionButton";
import { DangerDialog } from "./DangerDialog";
import { JobStateChip } from "./JobTable";
import { ErrorBanner, LoadingRows } from "./States";

/** The Jobs page with one job open. */
export function jobHref(queue: string, jobId: string): string {
  return `/jobs?${new URLSearchParams({ queue, job: jobId }).toString()}`;
}

function totalOf(d: DependencyCounts | undefined): number {
  return num(d?.pending) + num(d?.processed) + num(d?.ignored) + num(d?.failed);
}

function JobLink({ queue, jobId, name }: { queue: string; jobId: string; name?: string }) {
  const { t } = useI18n();
  return (
    <Link component={RouterLink} to={jobHref(queue, jobId)} translate="no">
      {name ? `${name} · ` : ""}
      {t("openJobLink", { id: jobId, queue })}
    </Link>
  );
}

function ChildNode({ child }: { child: JobChild }) {
  const { t } = useI18n();
  const [open, setOpen] = useState(false);
  const ref = child.job ?? {};
  const id = ref.jobId ?? "";
  const expandable = !!ref.queue && totalOf(child.dependencies) > 0;
  return (
    <Box component="li" sx={{ listStyle: "none", py: 0.25 }} data-testid={`flow-node-${id}`}>
      <Box sx={{ display: "flex", alignItems: "center", gap: 0.75, flexWrap: "wrap" }}>
        {expandable ? (
          <IconButton
            size="small"
            aria-expanded={open}
            aria-label={open ? t("collapseChildren", { id }) : t("expandChildren", { id })}
            onClick={() => setOpen(!open)}
          >
            {open ? <ExpandMoreIcon fontSize="small" /> : <ChevronRightIcon fontSize="small" />}
          </IconButton>
        ) : (
          <Box sx={{ width: 34 }} aria-hidden />
        )}
        {ref.queue ? <JobLink queue={ref.queue} jobId={id} name={child.name} /> : <span translate="no">{t("otherPrefix", { key: ref.key ?? "" })}</span>}
        <Chip size="small" label={enumLabel(t, "ck", enumName(child.kind, "CHILD_KIND_"))} />
        <JobStateChip state={child.state} />
        {child.failedReason ? (
          <Typography variant="body2" color="error" component="span" lang="en">
            {child.failedReason}
          </Typography>
        ) : child.value ? (
          <Typography variant="body2" color="text.secondary" component="span" sx={{ fontFamily: "monospace", maxWidth: 260, overflow: "hidden", textOverflow: "ellipsis", whiteSpace: "nowrap" }}>
            {child.value}
            {child.valueTruncated ? "…" : ""}
          </Typography>
        ) : null}
      </Box>
      {open && expandable ? <ChildList queue={ref.queue ?? ""} jobId={id} /> : null}
    </Box>
  );
}

function ChildPage({ queue, jobId, token, last, shownBefore, onMore }: { queue: string; jobId: string; token: string; last: boolean; shownBefore: number; onMore: (token: string) => void }) {
  const { t } = useI18n();
  const page = useJobChildren(queue, jobId, token);
  if (page.error) return <ErrorBanner error={page.error} onRetry={() => void page.refetch()} />;
  if (page.isPending) return <LoadingRows rows={2} />;
  const children = page.data?.children ?? [];
  const next = page.data?.nextPageToken;
  return (
    <>
      {children.map((c) => (
        <ChildNode key={`${c.kind}/${c.job?.key}`} child={c} />
      ))}
      {last && next ? (
        <Box component="li" sx={{ listStyle: "none" }}>
          <Button size="small" onClick={() => onMore(next)}>
            {t("loadMoreChildren", { shown: shownBefore + children.length, total: num(page.data?.totalSize) })}
          </Button>
        </Box>
      ) : null}
    </>
  );
}

/** A node's children, page after page as the user asks for more. */
function ChildList({ queue, jobId }: { queue: string; jobId: string }) {
  const { t } = useI18n();
  const [tokens, setTokens] = useState<string[]>([""]);
  return (
    <Box component="ul" aria-label={t("childrenOf", { id: jobId })} sx={{ m: 0, pl: 2.5 }}>
      {tokens.map((token, i) => (
        <ChildPage key={token} queue={queue} jobId={jobId} token={token} last={i === tokens.length - 1} shownBefore={i * 25} onMore={(next) => setTokens([...tokens, next])} />
      ))}
    </Box>
  );
}

/** The flow section of the job drawer; nothing for a job outside any flow. */
export function JobFlow({ queue, job }: { queue: string; job: Job }) {
  const { t } = useI18n();
  const [confirming, setConfirming] = useState(false);
  const jobId = job.summary?.jobId ?? "";
  const deps = job.dependencies;
  const parent = job.parent;
  const state = enumName(job.summary?.state, "JOB_STATE_");
  const release = useAction({
    run: () => runJobAction(queue, jobId, "removePendingChildren", { confirm: jobId }),
    describe: (r) => t("pendingChildrenRemoved", { id: jobId, removed: num(r.removed), detached: num(r.detached), pending: num(r.stillPending) }),
    invalidate: [keys.job, keys.jobs, keys.children, keys.queues, keys.overview],
    onDone: () => setConfirming(false),
  });
  if (!parent?.jobId && totalOf(deps) === 0) return null;
  const unavailable =
    state !== "WAITING_CHILDREN" ? t("onlyWaitingChildren", { state: enumLabel(t, "js", state || "UNKNOWN") }) : num(deps?.pending) === 0 ? t("noPendingChildren") : undefined;
  return (
    <Box component="section" sx={{ mb: 2 }} aria-label={t("flow")} data-testid="job-flow">
      <Typography variant="subtitle2" component="h3" sx={{ mb: 0.5 }}>
        {t("flow")}
      </Typography>
      {parent?.jobId ? (
        <Typography variant="body2" sx={{ mb: 0.5 }} data-testid="job-parent">
          {t("parentJob")}: {parent.queue ? <JobLink queue={parent.queue} jobId={parent.jobId} /> : t("otherPrefix", { key: parent.key ?? "" })}
        </Typography>
      ) : null}
      {totalOf(deps) > 0 ? (
        <>
          <Box sx={{ display: "flex", alignItems: "center", gap: 1, mb: 0.5, flexWrap: "wrap" }}>
            <Typography variant="body2" data-testid="job-child-counts">
              {t("childCounts", { pending: num(deps?.pending), processed: num(deps?.processed), ignored: num(deps?.ignored), failed: num(deps?.failed) })}
            </Typography>
            <ActionButton needs="operator" color="error" onClick={() => setConfirming(true)} unavailable={unavailable}>
              {t("removePendingChildren")}
            </ActionButton>
          </Box>
          <ChildList queue={queue} jobId={jobId} />
        </>
      ) : null}
      <DangerDialog
        open={confirming}
        title={`${t("removePendingChildren")}: ${jobId}`}
        name={jobId}
        confirmLabel={t("removePendingChildren")}
        description={t("removePendingChildrenText", { name: jobId })}
        busy={release.isPending}
        error={release.error ? describeError(release.error, t) : null}
        onClose={() => {
          setConfirming(false);
          release.reset();
        }}
        onConfirm={() => release.mutate()}
      />
    </Box>
  );
}
