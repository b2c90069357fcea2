import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogContentText from "@mui/material/DialogContentText";
import DialogTitle from "@mui/material/DialogTitle";
import Paper from "@mui/material/Paper";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import Tab from "@mui/material/Tab";
import Tabs from "@mui/material/Tabs";
import { useCallback, useMemo, useState } from "react";
import { useSearchParams } from "react-router-dom";
import { createSilence, expireSilence } from "../api/actions";
import { describeError } from "../api/errors";
import { useFieldErrors } from "../components/fieldErrors";
import { keys, useAction, useSilences } from "../api/hooks";
import { enumName, type Silence } from "../api/types";
import { ActionButton } from "../components/ActionButton";
import { useNotify } from "../components/Feedback";
import { Pager, usePageTokens } from "../components/Pager";
import { EmptyState, ErrorBanner, LoadingRows } from "../components/States";
import { fmtTime } from "../format";
import { matchersText } from "../matchers";
import { WindowsSection } from "./MaintenanceWindows";
import { enumLabel, useI18n, type MessageKey } from "../i18n";
import { AlertingConfigEditor, CONFIG_TABS, type ConfigTab } from "./alerting/AlertingConfigEditor";
import { parseLabels } from "./alerting/model";

const STATES = ["ACTIVE", "PENDING", "EXPIRED"];
const TYPES = ["QUEUE_BACKLOG", "HIGH_FAILURE_RATE", "WORKER_DOWN", "SLOW_PROCESSING", "STATS_STALE"];
const COMMENT_MAX = 2000;
const FIELDS = ["type", "queueGlob", "workerId", "labels", "endTime", "comment"] as const;
type Field = (typeof FIELDS)[number];
// The server names fields by their proto path; each goes next to its input.
const SERVER_FIELDS: Record<string, Field> = {
  "silence.matchers": "queueGlob",
  "silence.matchers.type": "type",
  "silence.matchers.queue_glob": "queueGlob",
  "silence.matchers.worker_id": "workerId",
  "silence.matchers.labels": "labels",
  "silence.start_time": "endTime",
  "silence.end_time": "endTime",
  "silence.comment": "comment",
};


/** A datetime-local value (local time, minutes) `minutes` from now. */
function localIn(minutes: number): string {
  const d = new Date(Date.now() + minutes * 60_000);
  d.setSeconds(0, 0);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

function NewSilenceDialog({ onClose, initial }: { onClose: () => void; initial: Record<string, string> }) {
  const { t } = useI18n();
  const [type, setType] = useState(initial.type ?? "");
  const [queueGlob, setQueueGlob] = useState(initial.queue ?? "");
  const [workerId, setWorkerId] = useState(initial.worker ?? "");
  const [labels, setLabels] = useState("");
  const [endTime, setEndTime] = useState(localIn(60));
  const [comment, setComment] = useState("");
  const client = useQueryClient();
  const notify = useNotify();
  // Not useAction: a refusal belongs next to its field, not in a toast.
  const create = useMutation({
    mutationFn: () =>
      createSilence({
        matchers: { type: type ? (`INCIDENT_TYPE_${type}` as never) : undefined, queueGlob, workerId, labels: parseLabels(labels) ?? {} },
        endTime: new Date(endTime).toISOString(),
        comment: comment.trim(),
      }),
    onSuccess: (r) => {
      notify(t("silenceCreated", { id: r.silence?.id ?? "" }), "success");
      for (const key of [keys.silences, keys.audit]) void client.invalidateQueries({ queryKey: key });
      onClose();
    },
  });
  const problems: Record<Field, string | null> = useMemo(
    () => ({
      type: null,
      queueGlob: !type && !queueGlob && !workerId && !labels.trim() ? t("silenceNeedsMatcher") : null,
      workerId: null,
      labels: parseLabels(labels) === null ? t("silenceLabelsFormat") : null,
      endTime: !endTime || Number.isNaN(new Date(endTime).getTime()) ? t("required") : new Date(endTime).getTime() <= Date.now() ? t("silenceEndInPast") : null,
      comment: !comment.trim() ? t("required") : comment.length > COMMENT_MAX ? t("nameTooLong", { max: COMMENT_MAX }) : null,
    }),
    [type, queueGlob, workerId, labels, endTime, comment, t],
  );
  const { serverField, invalid, helper, isError, edit } = useFieldErrors(problems, FIELDS, SERVER_FIELDS, create);
  return (
    <Dialog open onClose={create.isPending ? undefined : onClose} maxWidth="sm" fullWidth aria-labelledby="silence-title">
      <DialogTitle id="silence-title">{t("newSilence")}</DialogTitle>
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          if (!invalid && !create.isPending) create.mutate();
        }}
      >
        <DialogContent>
          <Box sx={{ display: "grid", gridTemplateColumns: "1fr 1fr", gap: 2, pt: 1 }}>
            <TextField select id="silence-type" label={t("type")} value={type} onChange={edit(setType)} error={isError("type")} helperText={helper("type", " ")} slotProps={{ select: { native: true }, inputLabel: { shrink: true } }}>
              <option value="">{t("all")}</option>
              {TYPES.map((s) => (
                <option key={s} value={s}>
                  {enumLabel(t, "it", s)}
                </option>
              ))}
            </TextField>
            <TextField id="silence-queue" label={t("queueGlob")} value={queueGlob} onChange={edit(setQueueGlob)} error={isError("queueGlob")} helperText={helper("queueGlob", t("queueGlobHelp"))} />
            <TextField id="silence-worker" label={t("worker")} value={workerId} onChange={edit(setWorkerId)} error={isError("workerId")} helperText={helper("workerId", " ")} />
            <TextField id="silence-labels" label={t("silenceLabels")} value={labels} onChange={edit(setLabels)} error={isError("labels")} helperText={helper("labels", t("silenceLabelsFormat"))} />
            <TextField
              id="silence-end"
              type="datetime-local"
              label={t("silenceEnds")}
              value={endTime}
              onChange={edit(setEndTime)}
              error={isError("endTime")}
              helperText={helper("endTime", " ")}
              slotProps={{ inputLabel: { shrink: true } }}
              required
            />
            <TextField
              id="silence-comment"
              label={t("comment")}
              value={comment}
              onChange={edit(setComment)}
              error={isError("comment")}
              helperText={helper("comment", " ")}
              required
              multiline
              sx={{ gridColumn: "1 / -1" }}
            />
          </Box>
          {create.error && !serverField ? (
            <Alert severity="error" sx={{ mt: 1 }}>
              {describeError(create.error, t)}
            </Alert>
          ) : null}
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose} disabled={create.isPending}>
            {t("cancel")}
          </Button>
          <Button type="submit" variant="contained" disabled={invalid || create.isPending}>
            {t("create")}
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

const TABS = ["silences", ...CONFIG_TABS] as const;
type PageTab = (typeof TABS)[number];
const TAB_LABELS: Record<PageTab, MessageKey> = { silences: "acTabSilences", rules: "acTabRules", channels: "acTabChannels", routes: "acTabRoutes", revisions: "acTabRevisions" };

/** The Alerting page: silences and maintenance windows, and the alerting configuration, as tabs. The
 * configuration editor stays mounted (hidden) so its draft survives a look at the silences. */
export default function AlertingPage() {
  const { t } = useI18n();
  const [params, setParams] = useSearchParams();
  const asked = params.get("tab") ?? "";
  const tab: PageTab = (TABS as readonly string[]).includes(asked) ? (asked as PageTab) : "silences";
  const [configTab, setConfigTab] = useState<ConfigTab>(tab === "silences" ? "rules" : tab);
  const shownConfigTab = tab === "silences" ? configTab : tab;
  const select = useCallback(
    (next: PageTab) => {
      if (next !== "silences") setConfigTab(next);
      setParams(next === "silences" ? {} : { tab: next });
    },
    [setParams],
  );
  return (
    <Box>
      <Typography variant="h5" component="h1" sx={{ mb: 2 }}>
        {t("alerting")}
      </Typography>
      <Tabs value={tab} onChange={(_, v: PageTab) => select(v)} aria-label={t("alerting")} sx={{ mb: 2, borderBottom: 1, borderColor: "divider" }} variant="scrollable">
        {TABS.map((k) => (
          <Tab key={k} value={k} label={t(TAB_LABELS[k])} id={`alerting-tab-${k}`} aria-controls={`alerting-panel-${k}`} />
        ))}
      </Tabs>
      <Box hidden={tab !== "silences"} role="tabpanel" id="alerting-panel-silences" aria-labelledby="alerting-tab-silences">
        <SilencesTab params={params} setParams={setParams} />
      </Box>
      <Box hidden={tab === "silences"}>
        <AlertingConfigEditor tab={shownConfigTab} onTab={select} />
      </Box>
    </Box>
  );
}

/** Silences and maintenance windows, as they were before the configuration tabs. */
function SilencesTab({ params, setParams }: { params: URLSearchParams; setParams: (p: Record<string, string>) => void }) {
  const { t } = useI18n();
  const [state, setState] = useState("SILENCE_STATE_ACTIVE");
  const pager = usePageTokens(state);
  const list = useSilences(state, pager.token);
  const [expiring, setExpiring] = useState<Silence | null>(null);
  const creating = params.get("new") === "1";
  const initial = { type: params.get("type") ?? "", queue: params.get("queue") ?? "", worker: params.get("worker") ?? "" };
  const expire = useAction({
    run: (id: string) => expireSilence(id),
    describe: (_, id) => t("silenceExpired", { id }),
    invalidate: [keys.silences, keys.audit, keys.incident],
    onDone: () => setExpiring(null),
  });
  const rows = list.data?.silences ?? [];
  return (
    <Box>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
        {t("silencesIntro")}
      </Typography>
      <Box sx={{ display: "flex", gap: 1.5, mb: 2, alignItems: "center" }}>
        <Typography variant="h6" component="h2" sx={{ flexGrow: 1 }}>
          {t("silences")}
        </Typography>
        <TextField select size="small" label={t("status")} value={state} onChange={(e) => setState(e.target.value)} slotProps={{ select: { native: true }, inputLabel: { shrink: true } }} sx={{ minWidth: 160 }}>
          {STATES.map((s) => (
            <option key={s} value={`SILENCE_STATE_${s}`}>
              {enumLabel(t, "ss", s)}
            </option>
          ))}
          <option value="">{t("all")}</option>
        </TextField>
        <ActionButton needs="operator" variant="contained" onClick={() => setParams({ new: "1" })}>
          {t("newSilence")}
        </ActionButton>
      </Box>
      {list.error ? <ErrorBanner error={list.error} onRetry={() => void list.refetch()} /> : null}
      {list.isPending ? (
        <LoadingRows />
      ) : rows.length === 0 ? (
        <EmptyState>{t("noSilences")}</EmptyState>
      ) : (
        <Paper variant="outlined" sx={{ overflowX: "auto" }}>
          <Table size="small" aria-label={t("silences")}>
            <TableHead>
              <TableRow>
                <TableCell>{t("idHeader")}</TableCell>
                <TableCell>{t("silenceMatches")}</TableCell>
                <TableCell>{t("status")}</TableCell>
                <TableCell>{t("silenceStarts")}</TableCell>
                <TableCell>{t("silenceEnds")}</TableCell>
                <TableCell>{t("silenceAuthor")}</TableCell>
                <TableCell>{t("comment")}</TableCell>
                <TableCell>{t("actions")}</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {rows.map((s) => {
                const st = enumName(s.state, "SILENCE_STATE_");
                return (
                  <TableRow key={s.id} data-testid={`silence-row-${s.id}`}>
                    <TableCell>#{s.id}</TableCell>
                    <TableCell>{matchersText(s, t)}</TableCell>
                    <TableCell>{enumLabel(t, "ss", st)}</TableCell>
                    <TableCell>{fmtTime(s.startTime)}</TableCell>
                    <TableCell>{fmtTime(s.endTime)}</TableCell>
                    <TableCell>{s.author}</TableCell>
                    <TableCell>
                      <span lang="en">{s.comment}</span>
                    </TableCell>
                    <TableCell>
                      <ActionButton needs="operator" unavailable={st === "EXPIRED" ? t("silenceAlreadyExpired") : undefined} onClick={() => setExpiring(s)}>
                        {t("expire")}
                      </ActionButton>
                    </TableCell>
                  </TableRow>
                );
              })}
            </TableBody>
          </Table>
          <Box sx={{ px: 2 }}>
            <Pager page={pager.page} hasPrev={pager.hasPrev} nextToken={list.data?.nextPageToken} onPrev={pager.prev} onNext={pager.next} />
          </Box>
        </Paper>
      )}
      <WindowsSection />
      {creating ? <NewSilenceDialog initial={initial} onClose={() => setParams({})} /> : null}
      <Dialog open={expiring !== null} onClose={() => setExpiring(null)} maxWidth="xs" fullWidth aria-labelledby="expire-title">
        <DialogTitle id="expire-title">{t("expireSilenceTitle", { id: expiring?.id ?? "" })}</DialogTitle>
        <DialogContent>
          <DialogContentText>{t("expireSilenceText")}</DialogContentText>
          {expire.error ? (
            <Alert severity="error" sx={{ mt: 1 }}>
              {describeError(expire.error, t)}
            </Alert>
          ) : null}
        </DialogContent>
        <DialogActions>
          <Button onClick={() => setExpiring(null)}>{t("cancel")}</Button>
          <Button variant="contained" color="warning" disabled={expire.isPending} onClick={() => expiring && expire.mutate(expiring.id ?? "")}>
            {t("expire")}
          </Button>
        </DialogActions>
      </Dialog>
    </Box>
  );
}
