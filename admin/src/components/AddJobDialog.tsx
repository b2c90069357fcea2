import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogTitle from "@mui/material/DialogTitle";
import Link from "@mui/material/Link";
import TextField from "@mui/material/TextField";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useId, useMemo, useRef, useState } from "react";
import { Link as RouterLink } from "react-router-dom";
import { addJob, type AddJobAnswer } from "../api/actions";
import { describeError, errorParts } from "../api/errors";
import { keys } from "../api/hooks";
import { useI18n, type Translate } from "../i18n";
import { ActionButton } from "./ActionButton";

// The server's bounds (MonitorService.AddJob), checked here first so the form says what fits.
export const NAME_MAX = 200;
export const PRIORITY_MAX = 2_097_152;
export const ATTEMPTS_MAX = 100;
const DELAY_MAX_SECONDS = 10 * 365 * 24 * 3600;

/** Where a JSON.parse error is, as a 1-based line and column, from the engine's message. */
export function jsonErrorPosition(text: string, message: string): { line: number; column: number } | null {
  const lineCol = /line (\d+) column (\d+)/.exec(message);
  if (lineCol) return { line: Number(lineCol[1]), column: Number(lineCol[2]) };
  const at = /position (\d+)/.exec(message);
  if (!at) return null;
  const offset = Math.min(Number(at[1]), text.length);
  const before = text.slice(0, offset).split("\n");
  return { line: before.length, column: before[before.length - 1].length + 1 };
}

/** The JSON text's problem, translated (with its line and column when the engine names them), or null. */
export function jsonProblem(text: string, t: Translate): string | null {
  if (!text.trim()) return null; // empty means {}
  try {
    JSON.parse(text);
    return null;
  } catch (e) {
    const at = jsonErrorPosition(text, e instanceof Error ? e.message : "");
    if (!at && text.trim() && e instanceof SyntaxError && /end of (JSON )?input/i.test(e.message)) {
      const lines = text.split("\n");
      return t("jsonInvalidAt", { line: lines.length, column: lines[lines.length - 1].length + 1 });
    }
    return at ? t("jsonInvalidAt", at) : t("jsonInvalid");
  }
}

/** A whole number in [min, max], else the translated bounds. */
function intProblem(text: string, min: number, max: number, t: Translate): string | null {
  if (!/^\d+$/.test(text.trim())) return t("wholeNumber", { min, max: max.toLocaleString("en-US") });
  const n = Number(text);
  return n < min || n > max ? t("wholeNumber", { min, max: max.toLocaleString("en-US") }) : null;
}

type Field = "queue" | "name" | "data" | "delay" | "priority" | "attempts";
const FIELDS: Field[] = ["queue", "name", "data", "delay", "priority", "attempts"];

interface Props {
  open: boolean;
  onClose: () => void;
  /** The queue to add to (preselected). */
  queue: string;
  /** The queues to choose from. */
  queues: string[];
}

/** Add a job to a queue: name, JSON data (validated as typed), delay, priority and attempts. */
export function AddJobDialog({ open, onClose, queue: initialQueue, queues }: Props) {
  const { t } = useI18n();
  const client = useQueryClient();
  const titleId = useId();
  const fieldId = (f: Field) => `${titleId}-${f}`;
  const addButton = useRef<HTMLButtonElement>(null);
  const [queue, setQueue] = useState(initialQueue);
  const [name, setName] = useState("");
  const [data, setData] = useState("{}");
  const [delay, setDelay] = useState("0");
  const [priority, setPriority] = useState("0");
  const [attempts, setAttempts] = useState("1");
  const [added, setAdded] = useState<{ queue: string; id: string } | null>(null);
  // The Add button goes once the job is added: the focus moves to the link opening it, inside the dialog.
  const openLink = useRef<HTMLAnchorElement>(null);
  useEffect(() => {
    if (added) openLink.current?.focus();
  }, [added]);
  const mutation = useMutation({
    mutationFn: (): Promise<AddJobAnswer> =>
      addJob(queue, { name: name.trim(), data: data.trim() || "{}", delay: `${Number(delay)}s`, priority: Number(priority), attempts: Number(attempts) }),
    onSuccess: (r) => {
      setAdded({ queue, id: r.job?.jobId ?? "" });
      for (const key of [keys.jobs, keys.queues, keys.queue(queue), keys.overview, keys.audit]) void client.invalidateQueries({ queryKey: key });
    },
  });

  const problems: Record<Field, string | null> = useMemo(
    () => ({
      queue: queue ? null : t("required"),
      name: !name.trim() ? t("required") : name.trim().length > NAME_MAX ? t("nameTooLong", { max: NAME_MAX }) : null,
      data: jsonProblem(data, t),
      delay: intProblem(delay, 0, DELAY_MAX_SECONDS, t),
      priority: intProblem(priority, 0, PRIORITY_MAX, t),
      attempts: intProblem(attempts, 1, ATTEMPTS_MAX, t),
    }),
    [queue, name, data, delay, priority, attempts, t],
  );
  const invalid = FIELDS.some((f) => problems[f] !== null);
  // The server's INVALID_ARGUMENT goes next to the field it names; any other error above the buttons.
  const server = mutation.error ? errorParts(mutation.error) : null;
  const serverField = server?.field && (FIELDS as string[]).includes(server.field) ? (server.field as Field) : null;
  const serverText = (f: Field) => (serverField === f && server ? t("errServerSaid", { message: server.fieldMessage ?? server.message }) : null);
  const helper = (f: Field, fallback: string) => serverText(f) ?? problems[f] ?? fallback;
  const isError = (f: Field) => serverField === f || problems[f] !== null;
  // While the request runs the Add button is disabled and loses the focus: give it back, in the dialog,
  // to the field the server refused (else to Add) so Escape and Tab keep working.
  useEffect(() => {
    if (!mutation.error) return;
    const field = serverField ? document.getElementById(fieldId(serverField)) : null;
    (field ?? addButton.current)?.focus();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [mutation.error]);
  const edit = (setter: (v: string) => void) => (e: { target: { value: string } }) => {
    setter(e.target.value);
    if (mutation.error) mutation.reset();
  };
  const reset = () => {
    setAdded(null);
    mutation.reset();
  };

  return (
    <Dialog open={open} onClose={mutation.isPending ? undefined : onClose} aria-labelledby={titleId} maxWidth="sm" fullWidth>
      <DialogTitle id={titleId}>{t("addJobTitle")}</DialogTitle>
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          if (!invalid && !mutation.isPending && !added) mutation.mutate();
        }}
      >
        <DialogContent>
          {added ? (
            <Alert severity="success" role="status" data-testid="job-added">
              {t("jobAdded", { id: added.id, queue: added.queue })}{" "}
              <Link ref={openLink} component={RouterLink} to={`/jobs?queue=${encodeURIComponent(added.queue)}&job=${encodeURIComponent(added.id)}`} onClick={onClose} color="inherit" underline="always">
                {t("openJob", { id: added.id })}
              </Link>
            </Alert>
          ) : (
            <Box sx={{ display: "grid", gridTemplateColumns: "1fr 1fr", gap: 2, pt: 1 }}>
              <TextField
                select
                id={fieldId("queue")}
                label={t("queue")}
                value={queue}
                onChange={edit(setQueue)}
                error={isError("queue")}
                helperText={helper("queue", " ")}
                slotProps={{ select: { native: true }, inputLabel: { shrink: true } }}
              >
                {queues.includes(queue) ? null : <option value={queue}>{queue || "—"}</option>}
                {queues.map((q) => (
                  <option key={q} value={q}>
                    {q}
                  </option>
                ))}
              </TextField>
              <TextField
                autoFocus
                required
                id={fieldId("name")}
                label={t("jobName")}
                value={name}
                onChange={edit(setName)}
                // An empty name is not an error to show before anything was typed: Add stays disabled.
                error={isError("name") && (name !== "" || serverField === "name")}
                helperText={name === "" ? (serverText("name") ?? t("nameTooLong", { max: NAME_MAX })) : helper("name", t("nameTooLong", { max: NAME_MAX }))}
                autoComplete="off"
              />
              <TextField
                id={fieldId("data")}
                label={t("jobData")}
                value={data}
                onChange={edit(setData)}
                multiline
                minRows={4}
                maxRows={14}
                error={isError("data")}
                helperText={helper("data", t("jsonValid"))}
                sx={{ gridColumn: "1 / -1" }}
                slotProps={{ htmlInput: { spellCheck: false, style: { fontFamily: "monospace" }, "aria-invalid": isError("data") } }}
              />
              <TextField
                id={fieldId("delay")}
                label={t("delaySeconds")}
                value={delay}
                onChange={edit(setDelay)}
                error={isError("delay")}
                helperText={helper("delay", t("delayHelp"))}
                slotProps={{ htmlInput: { inputMode: "numeric", "aria-invalid": isError("delay") } }}
              />
              <TextField
                id={fieldId("priority")}
                label={t("priority")}
                value={priority}
                onChange={edit(setPriority)}
                error={isError("priority")}
                helperText={helper("priority", t("priorityHelp", { max: PRIORITY_MAX.toLocaleString("en-US") }))}
                slotProps={{ htmlInput: { inputMode: "numeric", "aria-invalid": isError("priority") } }}
              />
              <TextField
                id={fieldId("attempts")}
                label={t("attempts")}
                value={attempts}
                onChange={edit(setAttempts)}
                error={isError("attempts")}
                helperText={helper("attempts", t("attemptsHelp", { max: ATTEMPTS_MAX }))}
                slotProps={{ htmlInput: { inputMode: "numeric", "aria-invalid": isError("attempts") } }}
              />
            </Box>
          )}
          {mutation.error && !serverField ? (
            <Alert severity="error" sx={{ mt: 2 }}>
              {describeError(mutation.error, t)}
            </Alert>
          ) : null}
        </DialogContent>
        <DialogActions>
          {added ? (
            <Button onClick={reset}>{t("addAnother")}</Button>
          ) : null}
          <Button onClick={onClose} disabled={mutation.isPending}>
            {added ? t("close") : t("cancel")}
          </Button>
          {added ? null : (
            <Button ref={addButton} type="submit" variant="contained" disabled={invalid || mutation.isPending}>
              {t("add")}
            </Button>
          )}
        </DialogActions>
      </form>
    </Dialog>
  );
}

/** The "Add job" button (operators and admins) and its dialog. */
export function AddJobButton({ queue, queues }: { queue: string; queues: string[] }) {
  const { t } = useI18n();
  const [open, setOpen] = useState(false);
  // A fresh form each time it opens; the closed dialog stays mounted so focus returns to the button.
  const [opened, setOpened] = useState(0);
  return (
    <>
      <ActionButton
        needs="operator"
        onClick={() => {
          setOpened((n) => n + 1);
          setOpen(true);
        }}
        disabled={!queue && queues.length === 0}
      >
        {t("addJob")}
      </ActionButton>
      <AddJobDialog key={opened} open={open} onClose={() => setOpen(false)} queue={queue || queues[0] || ""} queues={queues} />
    </>
  );
}
