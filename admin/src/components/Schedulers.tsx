// A queue's job schedulers (BullMQ upsertJobScheduler, and older repeatable jobs): when each runs next,
// how often, how many runs so far, with "run now" (operator) and "remove" (admin, typed confirmation).

import Box from "@mui/material/Box";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import Typography from "@mui/material/Typography";
import { useState } from "react";
import { runSchedulerAction } from "../api/actions";
import { describeError } from "../api/errors";
import { keys, useAction, useJobSchedulers } from "../api/hooks";
import { num, type JobScheduler } from "../api/types";
import { fmtDuration, fmtInt, fmtTime } from "../format";
import { useI18n } from "../i18n";
import { ActionButton } from "./ActionButton";
import { DangerDialog } from "./DangerDialog";
import { Pager, usePageTokens } from "./Pager";
import { EmptyState, ErrorBanner, LoadingRows } from "./States";

function scheduleOf(s: JobScheduler, every: (interval: string) => string): string {
  if (s.pattern) return s.pattern;
  return s.everyMs !== undefined ? every(fmtDuration(num(s.everyMs))) : "—";
}

export function Schedulers({ queue }: { queue: string }) {
  const { t } = useI18n();
  const pager = usePageTokens(queue);
  const list = useJobSchedulers(queue, pager.token);
  const [removing, setRemoving] = useState<string | null>(null);
  const invalidate = [keys.schedulers, keys.jobs, keys.queues, keys.queue(queue), keys.overview];
  const run = useAction({
    run: (id: string) => runSchedulerAction(queue, id, "run", {}),
    describe: (r, id) => t("schedulerRan", { id: r.job?.jobId ?? "", scheduler: id }),
    invalidate,
  });
  const remove = useAction({
    run: (id: string) => runSchedulerAction(queue, id, "remove", { confirm: id }),
    describe: (_, id) => t("schedulerRemoved", { id }),
    invalidate,
    onDone: () => setRemoving(null),
  });
  const rows = list.data?.jobSchedulers ?? [];
  return (
    <Box component="section" aria-labelledby="schedulers-title" sx={{ mt: 2 }} data-testid="schedulers">
      <Typography variant="subtitle1" component="h3" id="schedulers-title" sx={{ mb: 1 }}>
        {t("schedulers")}
      </Typography>
      {list.error ? <ErrorBanner error={list.error} onRetry={() => void list.refetch()} /> : null}
      {list.isPending ? (
        <LoadingRows rows={2} />
      ) : rows.length === 0 && !pager.hasPrev ? (
        <EmptyState>{t("noSchedulers")}</EmptyState>
      ) : (
        <Box sx={{ overflowX: "auto" }}>
          <Table size="small" aria-labelledby="schedulers-title">
            <TableHead>
              <TableRow>
                <TableCell>{t("idHeader")}</TableCell>
                <TableCell>{t("name")}</TableCell>
                <TableCell>{t("schedule")}</TableCell>
                <TableCell>{t("timezone")}</TableCell>
                <TableCell>{t("nextRun")}</TableCell>
                <TableCell align="right">{t("runs")}</TableCell>
                <TableCell>{t("activeWindow")}</TableCell>
                <TableCell>{t("templateData")}</TableCell>
                <TableCell>{t("actions")}</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {rows.map((s) => {
                const id = s.schedulerId ?? "";
                return (
                  <TableRow key={id} data-testid={`scheduler-row-${id}`}>
                    <TableCell component="th" scope="row" sx={{ fontFamily: "monospace" }} translate="no">
                      {id}
                      {s.legacy ? (
                        <Typography variant="caption" component="div" color="text.secondary">
                          {t("legacyRepeatable")}
                        </Typography>
                      ) : null}
                    </TableCell>
                    <TableCell translate="no">{s.name}</TableCell>
                    <TableCell sx={{ fontFamily: "monospace" }}>{scheduleOf(s, (interval) => t("everyInterval", { interval }))}</TableCell>
                    <TableCell translate="no">{s.tz || "—"}</TableCell>
                    <TableCell>{fmtTime(s.nextRunTime)}</TableCell>
                    <TableCell align="right">
                      {s.iterationCount === undefined ? "—" : s.limit !== undefined ? t("runsOfLimit", { count: fmtInt(s.iterationCount), limit: fmtInt(s.limit) }) : fmtInt(s.iterationCount)}
                    </TableCell>
                    <TableCell>{s.startTime || s.endTime ? `${fmtTime(s.startTime)} – ${fmtTime(s.endTime)}` : "—"}</TableCell>
                    <TableCell sx={{ fontFamily: "monospace", maxWidth: 220, overflow: "hidden", textOverflow: "ellipsis", whiteSpace: "nowrap" }} translate="no">
                      {s.templateData || "—"}
                      {s.templateDataTruncated ? "…" : ""}
                    </TableCell>
                    <TableCell>
                      <Box sx={{ display: "flex", gap: 1 }}>
                        <ActionButton needs="operator" onClick={() => run.mutate(id)} disabled={run.isPending}>
                          {t("runNow")}
                        </ActionButton>
                        <ActionButton needs="admin" color="error" onClick={() => setRemoving(id)}>
                          {t("removeScheduler")}
                        </ActionButton>
                      </Box>
                    </TableCell>
                  </TableRow>
                );
              })}
            </TableBody>
          </Table>
          <Pager page={pager.page} hasPrev={pager.hasPrev} nextToken={list.data?.nextPageToken} total={num(list.data?.totalSize)} onPrev={pager.prev} onNext={pager.next} />
        </Box>
      )}
      <DangerDialog
        open={removing !== null}
        title={t("removeSchedulerTitle", { id: removing ?? "" })}
        name={removing ?? ""}
        confirmLabel={t("removeScheduler")}
        description={t("removeSchedulerText", { name: removing ?? "" })}
        busy={remove.isPending}
        error={remove.error ? describeError(remove.error, t) : null}
        onClose={() => {
          setRemoving(null);
          remove.reset();
        }}
        onConfirm={() => removing && remove.mutate(removing)}
      />
    </Box>
  );
}
