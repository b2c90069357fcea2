import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Checkbox from "@mui/material/Checkbox";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogContentText from "@mui/material/DialogContentText";
import DialogTitle from "@mui/material/DialogTitle";
import FormControl from "@mui/material/FormControl";
import FormControlLabel from "@mui/material/FormControlLabel";
import FormGroup from "@mui/material/FormGroup";
import FormHelperText from "@mui/material/FormHelperText";
import FormLabel from "@mui/material/FormLabel";
import Paper from "@mui/material/Paper";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { createMaintenanceWindow, deleteMaintenanceWindow } from "../api/actions";
import { describeError } from "../api/errors";
import { useFieldErrors } from "../components/fieldErrors";
import { keys, useAction, useMaintenanceWindows } from "../api/hooks";
import type { MaintenanceWindow } from "../api/types";
import { ActionButton } from "../components/ActionButton";
import { useNotify } from "../components/Feedback";
import { Pager, usePageTokens } from "../components/Pager";
import { EmptyState, ErrorBanner, LoadingRows } from "../components/States";
import { useI18n, type MessageKey } from "../i18n";
import { matchersText } from "../matchers";

const WEEKDAYS = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
const COMMENT_MAX = 2000;
const FIELDS = ["queueGlob", "weekdays", "start", "end", "timeZone", "comment"] as const;
type Field = (typeof FIELDS)[number];
const SERVER_FIELDS: Record<string, Field> = {
  "maintenance_window.matchers": "queueGlob",
  "maintenance_window.matchers.queue_glob": "queueGlob",
  "maintenance_window.weekdays": "weekdays",
  "maintenance_window.start_time_of_day": "start",
  "maintenance_window.end_time_of_day": "end",
  "maintenance_window.time_zone": "timeZone",
  "maintenance_window.comment": "comment",
};

function NewWindowDialog({ onClose }: { onClose: () => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const notify = useNotify();
  const [queueGlob, setQueueGlob] = useState("");
  const [weekdays, setWeekdays] = useState<string[]>(["MON", "TUE", "WED", "THU", "FRI"]);
  const [start, setStart] = useState("02:00");
  const [end, setEnd] = useState("04:00");
  const [timeZone, setTimeZone] = useState(Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC");
  const [comment, setComment] = useState("");
  const create = useMutation({
    mutationFn: () =>
      createMaintenanceWindow({ matchers: { queueGlob, labels: {} }, weekdays, startTimeOfDay: start, endTimeOfDay: end, timeZone: timeZone.trim(), comment: comment.trim() }),
    onSuccess: (r) => {
      notify(t("windowCreated", { id: r.maintenanceWindow?.id ?? "" }), "success");
      for (const key of [keys.windows, keys.audit]) void client.invalidateQueries({ queryKey: key });
      onClose();
    },
  });
  const problems: Record<Field, string | null> = useMemo(
    () => ({
      queueGlob: queueGlob.trim() ? null : t("required"),
      weekdays: weekdays.length ? null : t("windowNeedsDay"),
      start: start ? null : t("required"),
      end: !end ? t("required") : end <= start ? t("windowEndBeforeStart") : null,
      timeZone: timeZone.trim() ? null : t("required"),
      comment: !comment.trim() ? t("required") : comment.length > COMMENT_MAX ? t("nameTooLong", { max: COMMENT_MAX }) : null,
    }),
    [queueGlob, weekdays, start, end, timeZone, comment, t],
  );
  const { serverField, invalid, helper, isError, edit } = useFieldErrors(problems, FIELDS, SERVER_FIELDS, create);
  return (
    <Dialog open onClose={create.isPending ? undefined : onClose} maxWidth="sm" fullWidth aria-labelledby="window-title">
      <DialogTitle id="window-title">{t("newWindow")}</DialogTitle>
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          if (!invalid && !create.isPending) create.mutate();
        }}
      >
        <DialogContent>
          <Box sx={{ display: "grid", gridTemplateColumns: "1fr 1fr", gap: 2, pt: 1 }}>
            <TextField id="window-queue" label={t("queueGlob")} value={queueGlob} onChange={edit(setQueueGlob)} error={isError("queueGlob")} helperText={helper("queueGlob", t("queueGlobHelp"))} required />
            <TextField id="window-zone" label={t("timeZone")} value={timeZone} onChange={edit(setTimeZone)} error={isError("timeZone")} helperText={helper("timeZone", "Asia/Seoul, UTC")} required />
            <FormControl component="fieldset" error={isError("weekdays")} sx={{ gridColumn: "1 / -1" }}>
              <FormLabel component="legend">{t("weekdays")}</FormLabel>
              <FormGroup row>
                {WEEKDAYS.map((d) => (
                  <FormControlLabel
                    key={d}
                    label={t(`wd_${d}` as MessageKey)}
                    control={
                      <Checkbox
                        checked={weekdays.includes(d)}
                        onChange={(e) => {
                          setWeekdays(e.target.checked ? [...weekdays, d] : weekdays.filter((x) => x !== d));
                          if (create.error) create.reset();
                        }}
                      />
                    }
                  />
                ))}
              </FormGroup>
              <FormHelperText>{helper("weekdays", " ")}</FormHelperText>
            </FormControl>
            <TextField id="window-start" type="time" label={t("windowOpens")} value={start} onChange={edit(setStart)} error={isError("start")} helperText={helper("start", " ")} slotProps={{ inputLabel: { shrink: true } }} required />
            <TextField id="window-end" type="time" label={t("windowCloses")} value={end} onChange={edit(setEnd)} error={isError("end")} helperText={helper("end", " ")} slotProps={{ inputLabel: { shrink: true } }} required />
            <TextField id="window-comment" label={t("comment")} value={comment} onChange={edit(setComment)} error={isError("comment")} helperText={helper("comment", " ")} required multiline sx={{ gridColumn: "1 / -1" }} />
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

/** The maintenance windows: listed, created, deleted after a confirmation. */
export function WindowsSection() {
  const { t } = useI18n();
  const pager = usePageTokens("windows");
  const list = useMaintenanceWindows(pager.token);
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<MaintenanceWindow | null>(null);
  const remove = useAction({
    run: (id: string) => deleteMaintenanceWindow(id),
    describe: (_, id) => t("windowDeleted", { id }),
    invalidate: [keys.windows, keys.audit, keys.incident],
    onDone: () => setDeleting(null),
  });
  const rows = list.data?.maintenanceWindows ?? [];
  return (
    <Box sx={{ mt: 4 }}>
      <Box sx={{ display: "flex", gap: 1.5, mb: 2, alignItems: "center" }}>
        <Typography variant="h6" component="h2" sx={{ flexGrow: 1 }}>
          {t("maintenanceWindows")}
        </Typography>
        <ActionButton needs="operator" variant="contained" onClick={() => setCreating(true)}>
          {t("newWindow")}
        </ActionButton>
      </Box>
      {list.error ? <ErrorBanner error={list.error} onRetry={() => void list.refetch()} /> : null}
      {list.isPending ? (
        <LoadingRows />
      ) : rows.length === 0 ? (
        <EmptyState>{t("noWindows")}</EmptyState>
      ) : (
        <Paper variant="outlined" sx={{ overflowX: "auto" }}>
          <Table size="small" aria-label={t("maintenanceWindows")}>
            <TableHead>
              <TableRow>
                <TableCell>{t("idHeader")}</TableCell>
                <TableCell>{t("silenceMatches")}</TableCell>
                <TableCell>{t("weekdays")}</TableCell>
                <TableCell>{t("windowHours")}</TableCell>
                <TableCell>{t("silenceAuthor")}</TableCell>
                <TableCell>{t("comment")}</TableCell>
                <TableCell>{t("actions")}</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {rows.map((w) => (
                <TableRow key={w.id} data-testid={`window-row-${w.id}`}>
                  <TableCell>#{w.id}</TableCell>
                  <TableCell>{matchersText({ matchers: w.matchers }, t)}</TableCell>
                  <TableCell>{(w.weekdays ?? []).map((d) => t(`wd_${d}` as MessageKey)).join(", ")}</TableCell>
                  <TableCell>
                    {w.startTimeOfDay}–{w.endTimeOfDay} ({w.timeZone}){w.open ? ` · ${t("windowOpenNow")}` : ""}
                  </TableCell>
                  <TableCell>{w.author}</TableCell>
                  <TableCell>
                    <span lang="en">{w.comment}</span>
                  </TableCell>
                  <TableCell>
                    <ActionButton needs="operator" onClick={() => setDeleting(w)}>
                      {t("delete")}
                    </ActionButton>
                  </TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
          <Box sx={{ px: 2 }}>
            <Pager page={pager.page} hasPrev={pager.hasPrev} nextToken={list.data?.nextPageToken} onPrev={pager.prev} onNext={pager.next} />
          </Box>
        </Paper>
      )}
      {creating ? <NewWindowDialog onClose={() => setCreating(false)} /> : null}
      <Dialog open={deleting !== null} onClose={() => setDeleting(null)} maxWidth="xs" fullWidth aria-labelledby="delete-window-title">
        <DialogTitle id="delete-window-title">{t("deleteWindowTitle", { id: deleting?.id ?? "" })}</DialogTitle>
        <DialogContent>
          <DialogContentText>{t("deleteWindowText")}</DialogContentText>
          {remove.error ? (
            <Alert severity="error" sx={{ mt: 1 }}>
              {describeError(remove.error, t)}
            </Alert>
          ) : null}
        </DialogContent>
        <DialogActions>
          <Button onClick={() => setDeleting(null)}>{t("cancel")}</Button>
          <Button variant="contained" color="warning" disabled={remove.isPending} onClick={() => deleting && remove.mutate(deleting.id ?? "")}>
            {t("delete")}
          </Button>
        </DialogActions>
      </Dialog>
    </Box>
  );
}
