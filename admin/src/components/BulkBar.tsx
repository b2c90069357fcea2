// The Jobs page's bulk bar: act on the ticked jobs or on every job matching the filter (the server works
// in batches and this polls its progress), and export the filtered jobs as JSON lines or CSV.
import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Checkbox from "@mui/material/Checkbox";
import FormControlLabel from "@mui/material/FormControlLabel";
import LinearProgress from "@mui/material/LinearProgress";
import Paper from "@mui/material/Paper";
import Typography from "@mui/material/Typography";
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { api, download } from "../api/client";
import { describeError } from "../api/errors";
import { keys } from "../api/hooks";
import { route } from "../api/routes";
import { num, type RequestOf, type ResponseOf } from "../api/types";
import { hasRole, useAuth } from "../auth";
import { fmtBytes, fmtInt } from "../format";
import { useI18n } from "../i18n";
import { ActionButton } from "./ActionButton";
import { useNotify } from "./Feedback";

type Operation = NonNullable<ResponseOf<"GetBulkOperation">["operation"]>;
type BulkAction = NonNullable<RequestOf<"StartBulkJobAction">["action"]>;

export interface JobFilter {
  /** A JobState name such as JOB_STATE_FAILED, or "" for every state. */
  state: string;
  namePrefix: string;
  category: string;
  /** The list shows one job looked up by id: "all matching" would reach past it, so it is offered not. */
  byId?: boolean;
}

const ACTIONS: { action: BulkAction; label: "bulkRetry" | "bulkPromote" | "bulkRemove"; needs: "operator" | "admin" }[] = [
  { action: "BULK_JOB_ACTION_RETRY", label: "bulkRetry", needs: "operator" },
  { action: "BULK_JOB_ACTION_PROMOTE", label: "bulkPromote", needs: "operator" },
  { action: "BULK_JOB_ACTION_REMOVE", label: "bulkRemove", needs: "admin" },
];

export function BulkBar({
  queue,
  filter,
  selected,
  matching,
  onClear,
}: {
  queue: string;
  filter: JobFilter;
  selected: string[];
  /** Jobs in the filtered states (before name filters), when known. */
  matching?: number;
  onClear: () => void;
}) {
  const { t } = useI18n();
  const { session } = useAuth();
  const notify = useNotify();
  const client = useQueryClient();
  const [allMatching, setAllMatching] = useState(false);
  const [withData, setWithData] = useState(false);
  const [operation, setOperation] = useState<Operation | null>(null);
  const [label, setLabel] = useState("");
  const [error, setError] = useState<string | null>(null);
  const running = operation?.state === "BULK_OPERATION_STATE_RUNNING";

  useEffect(() => {
    if (!running || !operation?.operationId) return;
    const timer = window.setTimeout(() => {
      api<ResponseOf<"GetBulkOperation">>(route("/v1/bulkOperations/{operation_id}", { operation_id: operation.operationId ?? "" }))
        .then((r) => {
          setOperation(r.operation ?? null);
          if (r.operation?.state !== "BULK_OPERATION_STATE_RUNNING") {
            void client.invalidateQueries({ queryKey: keys.jobs });
            void client.invalidateQueries({ queryKey: keys.audit });
          }
        })
        .catch((e: unknown) => setError(describeError(e, t)));
    }, 400);
    return () => window.clearTimeout(timer);
  }, [operation, running, client, t]);

  async function start(action: BulkAction, name: string) {
    setError(null);
    setOperation(null); // the last operation's counts must not show under the new action's name
    setLabel(name);
    const body: RequestOf<"StartBulkJobAction"> = allMatching && !filter.byId
      ? {
          action,
          allMatching: true,
          states: filter.state ? [filter.state as NonNullable<RequestOf<"StartBulkJobAction">["states"]>[number]] : [],
          namePrefix: filter.namePrefix,
          failureCategory: filter.category,
        }
      : { action, jobIds: selected };
    try {
      const reply = await api<ResponseOf<"StartBulkJobAction">>(route("/v1/queues/{queue}/jobs:bulk", { queue }), { method: "POST", body });
      setOperation(reply.operation ?? null);
      onClear();
    } catch (e) {
      setError(describeError(e, t));
    }
  }

  async function exportAs(format: "EXPORT_FORMAT_JSONL" | "EXPORT_FORMAT_CSV") {
    setError(null);
    const ext = format === "EXPORT_FORMAT_CSV" ? "csv" : "jsonl";
    try {
      const size = await download(
        route("/v1/queues/{queue}/jobs:export", { queue }),
        {
          format,
          states: filter.state ? [filter.state] : undefined,
          namePrefix: filter.namePrefix || undefined,
          failureCategory: filter.category || undefined,
          includeData: withData || undefined,
        },
        `${queue}-jobs.${ext}`,
      );
      notify(t("exportDone", { queue, size: fmtBytes(size) }), "success");
      if (withData) void client.invalidateQueries({ queryKey: keys.audit });
    } catch (e) {
      setError(describeError(e, t));
    }
  }

  const everyMatch = allMatching && !filter.byId;
  const count = everyMatch ? matching : selected.length;
  const nothing = !everyMatch && selected.length === 0;
  const op = operation;
  return (
    <Paper variant="outlined" sx={{ p: 1.5, mb: 2 }} component="section" aria-label={t("bulkActions")}>
      <Box sx={{ display: "flex", gap: 1, alignItems: "center", flexWrap: "wrap" }}>
        <Typography variant="body2" data-testid="bulk-count">
          {t("selectedCount", { count: count !== undefined ? fmtInt(count) : "—" })}
        </Typography>
        <FormControlLabel
          control={<Checkbox size="small" checked={allMatching && !filter.byId} disabled={filter.byId} onChange={(e) => setAllMatching(e.target.checked)} />}
          label={t("selectAllMatching")}
        />
        {ACTIONS.map((a) => (
          <ActionButton key={a.action} needs={a.needs} color={a.needs === "admin" ? "error" : "primary"} disabled={nothing || running} onClick={() => void start(a.action, t(a.label))}>
            {t(a.label)}
          </ActionButton>
        ))}
        <Button size="small" onClick={onClear} disabled={selected.length === 0}>
          {t("clearSelection")}
        </Button>
        <Box sx={{ flexGrow: 1 }} />
        <Button size="small" variant="outlined" onClick={() => void exportAs("EXPORT_FORMAT_JSONL")}>
          {t("exportJsonl")}
        </Button>
        <Button size="small" variant="outlined" onClick={() => void exportAs("EXPORT_FORMAT_CSV")}>
          {t("exportCsv")}
        </Button>
        <FormControlLabel
          control={<Checkbox size="small" checked={withData} disabled={!hasRole(session?.role, "admin")} onChange={(e) => setWithData(e.target.checked)} />}
          label={t("exportWithData")}
        />
      </Box>
      {error ? (
        <Alert severity="error" sx={{ mt: 1 }} role="alert">
          {error}
        </Alert>
      ) : null}
      {op ? (
        <Box role="status" aria-live="polite" sx={{ mt: 1 }} data-testid="bulk-status">
          <Typography variant="body2">
            {op.state === "BULK_OPERATION_STATE_RUNNING"
              ? t("bulkRunning", { action: label, processed: fmtInt(op.processed ?? 0), total: fmtInt(op.total ?? 0) })
              : op.state === "BULK_OPERATION_STATE_FAILED"
                ? t("bulkFailed", { action: label, error: op.error ?? "" })
                : t("bulkDone", {
                    action: label,
                    succeeded: fmtInt(op.succeeded ?? 0),
                    skipped: fmtInt(op.skipped ?? 0),
                    failed: fmtInt(op.failed ?? 0),
                    total: fmtInt(op.total ?? 0),
                  })}
          </Typography>
          <LinearProgress
            variant="determinate"
            aria-label={t("bulkProgress")}
            value={num(op.total ?? 0) > 0 ? (100 * num(op.processed ?? 0)) / num(op.total ?? 0) : 100}
          />
        </Box>
      ) : null}
    </Paper>
  );
}
