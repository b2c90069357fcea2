import Chip from "@mui/material/Chip";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import Tooltip from "@mui/material/Tooltip";
import { enumName, type Queue } from "../api/types";
import { fmtInt, fmtMs } from "../format";
import { enumLabel, useI18n } from "../i18n";
import { EmptyState } from "./States";

const STATUS_COLOR: Record<string, "success" | "warning" | "error" | "default" | "info"> = {
  RUNNING: "success",
  PAUSED: "warning",
  DEGRADED: "error",
  IDLE: "default",
};

export function QueueStatusChip({ queue }: { queue: Queue }) {
  const { t } = useI18n();
  const status = enumName(queue.status, "QUEUE_STATUS_") || "UNKNOWN";
  const chip = <Chip size="small" label={enumLabel(t, "qs", status)} color={STATUS_COLOR[status] ?? "default"} variant={status === "IDLE" ? "outlined" : "filled"} />;
  // The reason is the server's (English) text; describeChild keeps the chip's own label as its name.
  return queue.statusReason ? (
    <Tooltip title={<span lang="en">{queue.statusReason}</span>} describeChild>
      {chip}
    </Tooltip>
  ) : (
    chip
  );
}

interface Props {
  queues: Queue[];
  selected?: string;
  onSelect: (name: string) => void;
}

export function QueueTable({ queues, selected, onSelect }: Props) {
  const { t } = useI18n();
  if (queues.length === 0) return <EmptyState>{t("noQueues")}</EmptyState>;
  return (
    <Table size="small" aria-label={t("queues")}>
      <TableHead>
        <TableRow>
          <TableCell>{t("name")}</TableCell>
          <TableCell>{t("status")}</TableCell>
          <TableCell align="right">{t("waiting")}</TableCell>
          <TableCell align="right">{t("active")}</TableCell>
          <TableCell align="right">{t("delayed")}</TableCell>
          <TableCell align="right">{t("waitingChildren")}</TableCell>
          <TableCell align="right">{t("failed")}</TableCell>
          <TableCell align="right">{t("jobsPerMinute")}</TableCell>
          <TableCell align="right">p95</TableCell>
          <TableCell align="right">{t("latency")}</TableCell>
          <TableCell align="right">{t("workersOnline")}</TableCell>
        </TableRow>
      </TableHead>
      <TableBody>
        {queues.map((q) => (
          <TableRow
            key={q.name}
            hover
            selected={q.name === selected}
            data-testid={`queue-row-${q.name}`}
            tabIndex={0}
            aria-selected={q.name === selected}
            onClick={() => onSelect(q.name ?? "")}
            onKeyDown={(e) => {
              if (e.key === "Enter" || e.key === " ") {
                e.preventDefault();
                onSelect(q.name ?? "");
              }
            }}
            sx={{ cursor: "pointer" }}
          >
            <TableCell component="th" scope="row">
              {q.displayName || q.name}
            </TableCell>
            <TableCell data-testid={`queue-status-${q.name}`}>
              <QueueStatusChip queue={q} />
            </TableCell>
            <TableCell align="right" data-testid={`queue-waiting-${q.name}`}>
              {fmtInt(q.counts?.waiting)}
            </TableCell>
            <TableCell align="right">{fmtInt(q.counts?.active)}</TableCell>
            <TableCell align="right">{fmtInt(q.counts?.delayed)}</TableCell>
            <TableCell align="right" data-testid={`queue-waiting-children-${q.name}`}>
              {fmtInt(q.counts?.waitingChildren)}
            </TableCell>
            <TableCell align="right" data-testid={`queue-failed-${q.name}`}>
              {fmtInt(q.counts?.failed)}
            </TableCell>
            <TableCell align="right">{fmtInt(q.jobsPerMinute)}</TableCell>
            <TableCell align="right">{q.processing?.p95Ms !== undefined ? fmtMs(q.processing.p95Ms) : "—"}</TableCell>
            <TableCell align="right">{q.latencyMs !== undefined ? fmtMs(q.latencyMs) : "—"}</TableCell>
            <TableCell align="right">{q.onlineWorkers !== undefined ? fmtInt(q.onlineWorkers) : "—"}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}
