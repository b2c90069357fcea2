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

/** An active job whose lock is gone: its worker died or hung, and BullMQ will take it for stalled. */
export function StalledChip() {
  const { t } = useI18n();
  return (
    <Tooltip title={t("stalledSuspectHelp")}>
      <Chip size="small" color="error" label={t("stalledSuspect")} sx={{ ml: 0.5 }} data-testid="stalled-suspect" aria-label={t("stalledSuspectHelp")} />
    </Tooltip>
  );
}

export function JobTable({ jobs, onOpen }: { jobs: JobSummary[]; onOpen: (id: string) => void }) {
  const { t } = useI18n();
  return (
    <Table size="small" aria-label={t("jobs")}>
      <TableHead>
        <TableRow>
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
