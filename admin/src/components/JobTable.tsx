import Checkbox from "@mui/material/Checkbox";
import Chip from "@mui/material/Chip";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import Tooltip from "@mui/material/Tooltip";
import { enumName, type JobSummary } from "../api/types";
import { fmtMs, fmtTime } from "../format";
import { enumLabel, useI18n } from "../i18n";

const STATE_COLOR: Record<string, "success" | "warning" | "error" | "default" | "info" | "primary"> = {
  COMPLETED: "success",
  FAILED: "error",
  ACTIVE: "primary",
  DELAYED: "warning",
  WAITING: "info",
};

export function JobStateChip({ state }: { state?: string }) {
  const { t } = useI18n();
  const s = enumName(state, "JOB_STATE_") || "UNKNOWN";
  return <Chip size="small" label={enumLabel(t, "js", s)} color={STATE_COLOR[s] ?? "default"} variant="outlined" />;
}

/** Which rows are ticked, for bulk actions. */
export interface JobSelection {
  selected: ReadonlySet<string>;
  toggle: (id: string) => void;
  setPage: (ids: string[], on: boolean) => void;
}

/** An active job whose lock is gone: its worker died or hung, and BullMQ will take it for stalled. */
export function StalledChip() {
  const { t } = useI18n();
  return (
    <Tooltip title={t("stalledSuspectHelp")}>
      <Chip size="small" color="error" label={t("stalledSuspect")} sx={{ ml: 0.5 }} data-testid="stalled-suspect" aria-label={t("stalledSuspectHelp")} />
    </Tooltip>
  );
}

export function JobTable({ jobs, onOpen, selection }: { jobs: JobSummary[]; onOpen: (id: string) => void; selection?: JobSelection }) {
  const { t } = useI18n();
  const ids = jobs.map((j) => j.jobId ?? "");
  const ticked = selection ? ids.filter((id) => selection.selected.has(id)).length : 0;
  return (
    <Table size="small" aria-label={t("jobs")}>
      <TableHead>
        <TableRow>
          {selection ? (
            <TableCell padding="checkbox">
              <Checkbox
                size="small"
                checked={ids.length > 0 && ticked === ids.length}
                indeterminate={ticked > 0 && ticked < ids.length}
                onChange={(e) => selection.setPage(ids, e.target.checked)}
                slotProps={{ input: { "aria-label": t("selectPage") } }}
              />
            </TableCell>
          ) : null}
          <TableCell>{t("idHeader")}</TableCell>
          <TableCell>{t("name")}</TableCell>
          <TableCell>{t("state")}</TableCell>
          <TableCell align="right">{t("attempts")}</TableCell>
          <TableCell>{t("created")}</TableCell>
          <TableCell align="right">{t("duration")}</TableCell>
          <TableCell>{t("reason")}</TableCell>
        </TableRow>
      </TableHead>
      <TableBody>
        {jobs.map((j) => (
          <TableRow
            key={j.jobId}
            hover
            data-testid={`job-row-${j.jobId}`}
            tabIndex={0}
            onClick={() => onOpen(j.jobId ?? "")}
            onKeyDown={(e) => {
              if (e.key === "Enter" || e.key === " ") {
                e.preventDefault();
                onOpen(j.jobId ?? "");
              }
            }}
            sx={{ cursor: "pointer" }}
          >
            {selection ? (
              <TableCell padding="checkbox" onClick={(e) => e.stopPropagation()} onKeyDown={(e) => e.stopPropagation()}>
                <Checkbox
                  size="small"
                  checked={selection.selected.has(j.jobId ?? "")}
                  onChange={() => selection.toggle(j.jobId ?? "")}
                  slotProps={{ input: { "aria-label": t("selectJob", { id: j.jobId ?? "" }) } }}
                />
              </TableCell>
            ) : null}
            <TableCell component="th" scope="row" sx={{ fontFamily: "monospace" }} translate="no">
              {j.jobId}
            </TableCell>
            <TableCell translate="no">{j.name}</TableCell>
            <TableCell>
              <JobStateChip state={j.state} />
              {j.stalledSuspected ? <StalledChip /> : null}
            </TableCell>
            <TableCell align="right">
              {j.attemptsMade ?? 0}/{j.maxAttempts ?? 0}
            </TableCell>
            <TableCell>{fmtTime(j.createTime)}</TableCell>
            <TableCell align="right">{j.durationMs !== undefined ? fmtMs(j.durationMs) : "—"}</TableCell>
            <TableCell sx={{ maxWidth: 320, overflow: "hidden", textOverflow: "ellipsis", whiteSpace: "nowrap" }} title={j.failedReason} lang="en">
              {j.failedReason ?? ""}
            </TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}
