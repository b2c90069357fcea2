// One channel's settings, by type (slack, webhook, email, kakaowork, pagerduty). Secrets are write-only:
// their inputs start empty, and a stored one is announced ("stored — leave empty to keep"). "Send test"
// tries the settings as they are in the dialog, before they are saved.

import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogTitle from "@mui/material/DialogTitle";
import FormControlLabel from "@mui/material/FormControlLabel";
import Switch from "@mui/material/Switch";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { useMutation } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { errorParts } from "../../api/errors";
import { useFieldErrors } from "../../components/fieldErrors";
import { useI18n, type MessageKey } from "../../i18n";
import { EditorContext, useEditorFields } from "./editorContext";
import { CHANNEL_TYPES, channelInput, kindOf, storedSecret, type Channel, type ChannelKind, type SmtpServer } from "./model";
import { TestResult } from "./TestResult";
import { testChannel } from "./useAlertingConfig";
import { channelProblems, knownPath } from "./validate";

const HTTP_KINDS: readonly ChannelKind[] = ["SLACK", "WEBHOOK", "KAKAOWORK"];

/** The channel as another type: what it shares (name, what is sent, timeouts, link) is kept, the settings
 * of the former type (URL, template, headers, SMTP, routing key) are dropped. */
function retyped(c: Channel, kind: ChannelKind): Channel {
  return { ...newChannel(kind, c.name), sendResolved: c.sendResolved, timeoutSeconds: c.timeoutSeconds, maxAttempts: c.maxAttempts, link: c.link };
}

/** A new channel of a type, with the contract's defaults. */
export function newChannel(kind: ChannelKind, name = ""): Channel {
  return { name, type: `NOTIFICATION_CHANNEL_TYPE_${kind}`, headers: {}, sendResolved: true, sendAcknowledged: kind === "PAGERDUTY" };
}

interface Props {
  /** The channel as in the draft (a new one: `newChannel`). */
  initial: Channel;
  /** Its index in the draft (the server names its fields by it); null for a new channel. */
  index: number | null;
  /** The channels as loaded: their hints say which secrets are stored. */
  stored: Channel[];
  /** The other channels' names, which this one must not take. */
  otherNames: string[];
  onApply: (c: Channel) => void;
  onClose: () => void;
}

/** A write-only input: empty, with "stored — leave empty to keep" when the server holds a value. */
function SecretField({ path, label, value, onChange, stored, hint, fallback }: { path: string; label: string; value: string; onChange: (v: string) => void; stored: boolean; hint?: string; fallback: string }) {
  const { t } = useI18n();
  const { readOnly, helper, isError } = useEditorFields();
  const storedText = hint ? t("acSecretStoredHint", { hint }) : t("acSecretStored");
  return (
    <TextField
      id={`channel-${path.replace(/[^A-Za-z0-9]+/g, "-")}`}
      size="small"
      type="password"
      label={label}
      value={value}
      onChange={(e) => onChange(e.target.value)}
      error={isError(path)}
      helperText={helper(path, stored ? storedText : fallback)}
      autoComplete="new-password"
      slotProps={{ input: { readOnly } }}
    />
  );
}

/** The add/edit dialog of a channel. */
export function ChannelDialog({ initial, index, stored, otherNames, onApply, onClose }: Props) {
  const { t } = useI18n();
  const outer = useEditorFields();
  const [c, setC] = useState<Channel>(initial);
  const [headerRows, setHeaderRows] = useState<[string, string][]>(() => Object.entries(initial.headers ?? {}));
  const kind = kindOf(c);
  const original = stored.find((s) => s.name === c.name);
  const smtp: SmtpServer = c.smtp ?? { to: [] };
  const test = useMutation({ mutationFn: (settings: Channel) => testChannel(settings.name ?? "", settings) });
  const settings = (): Channel => ({ ...channelInput(c), headers: Object.fromEntries(headerRows.filter(([k]) => k.trim()).map(([k, v]) => [k.trim(), v])) });
  const problems = useMemo(() => channelProblems(c, "settings", [...otherNames, c.name], (which) => storedSecret(original, which), t), [c, otherNames, original, t]);
  const fields = useMemo(() => Object.keys(problems), [problems]);
  // The test's refusal names a field of its settings ("settings.smtp.to[0]"): shown at that input.
  const testField = test.error ? errorParts(test.error).field : undefined;
  const serverFields = useMemo(() => {
    const map: Record<string, string> = Object.fromEntries(fields.map((f) => [f, f]));
    const known = testField ? knownPath(testField, fields) : null;
    if (testField && known) map[testField] = known;
    return map;
  }, [fields, testField]);
  const own = useFieldErrors(problems, fields, serverFields, test);
  // The page's refusal of this channel (config.channels[i].url) shows at the same input (settings.url).
  const pagePath = (path: string) => (index === null ? null : path.replace(/^settings/, `config.channels[${index}]`));
  const editor = {
    readOnly: outer.readOnly,
    serverField: own.serverField,
    isError: (path: string) => own.isError(path) || (!!pagePath(path) && outer.isError(pagePath(path) ?? "")),
    helper: (path: string, fallback: string) => {
      if (own.isError(path)) return own.helper(path, fallback);
      const page = pagePath(path);
      return page && outer.isError(page) ? outer.helper(page, fallback) : fallback;
    },
  };
  const set = (patch: Partial<Channel>) => {
    setC((prev) => ({ ...prev, ...patch }));
    if (test.error || test.data) test.reset();
  };
  const setSmtp = (patch: Partial<SmtpServer>) => set({ smtp: { ...smtp, ...patch } });
  const text = (path: string, label: string, value: string, onChange: (v: string) => void, fallback = " ", extra: object = {}) => (
    <TextField
      id={`channel-${path.replace(/[^A-Za-z0-9]+/g, "-")}`}
      size="small"
      label={label}
      value={value}
      onChange={(e) => onChange(e.target.value)}
      error={editor.isError(path)}
      helperText={editor.helper(path, fallback)}
      slotProps={{ input: { readOnly: outer.readOnly } }}
      {...extra}
    />
  );
  const numberOf = (v: string) => (v.trim() === "" ? undefined : Number(v));
  const unmatchedTestError = test.error && !own.serverField;
  const title = outer.readOnly ? t("acChannelView", { name: initial.name ?? "" }) : index === null ? t("acAddChannel") : t("acEditChannel", { name: initial.name ?? "" });
  return (
    <Dialog open onClose={onClose} maxWidth="md" fullWidth aria-labelledby="channel-title">
      <DialogTitle id="channel-title">{title}</DialogTitle>
      <EditorContext.Provider value={editor}>
        <form
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            if (!own.invalid && !outer.readOnly) onApply({ ...c, headers: settings().headers });
          }}
        >
          <DialogContent>
            <Box sx={{ display: "grid", gridTemplateColumns: "1fr 1fr", gap: 2, pt: 1 }}>
              {text("settings.name", t("name"), c.name ?? "", (name) => set({ name }), t("acNameHelp"), { required: true })}
              <TextField
                id="channel-type"
                select
                size="small"
                label={t("type")}
                value={kind}
                onChange={(e) => {
                  setC((prev) => retyped(prev, e.target.value as ChannelKind));
                  setHeaderRows([]);
                  if (test.error || test.data) test.reset();
                }}
                helperText={editor.helper("settings.type", " ")}
                error={editor.isError("settings.type")}
                slotProps={{ select: { native: true }, inputLabel: { shrink: true }, htmlInput: { disabled: outer.readOnly } }}
              >
                {CHANNEL_TYPES.map((k) => (
                  <option key={k} value={k}>
                    {t(`acType_${k}` as MessageKey)}
                  </option>
                ))}
              </TextField>
              {HTTP_KINDS.includes(kind as ChannelKind) || kind === "PAGERDUTY" ? (
                <SecretField
                  path="settings.url"
                  label={kind === "PAGERDUTY" ? t("acEventsUrl") : t("acWebhookUrl")}
                  value={c.url ?? ""}
                  onChange={(url) => set({ url })}
                  stored={storedSecret(original, "url")}
                  hint={original?.urlHint}
                  fallback={kind === "PAGERDUTY" ? t("acEventsUrlHelp") : t("acSecretWriteOnly")}
                />
              ) : null}
              {kind === "PAGERDUTY" ? (
                <SecretField
                  path="settings.routing_key"
                  label={t("acRoutingKey")}
                  value={c.routingKey ?? ""}
                  onChange={(routingKey) => set({ routingKey })}
                  stored={storedSecret(original, "routingKey")}
                  hint={original?.routingKeyHint ? `…${original.routingKeyHint}` : undefined}
                  fallback={t("acSecretWriteOnly")}
                />
              ) : null}
              {kind === "EMAIL" ? (
                <>
                  {text("settings.smtp.host", t("acSmtpHost"), smtp.host ?? "", (host) => setSmtp({ host }), " ", { required: true })}
                  {text("settings.smtp.port", t("acSmtpPort"), smtp.port ? String(smtp.port) : "", (v) => setSmtp({ port: numberOf(v) }), t("acSmtpPortHelp"), { type: "number" })}
                  {text("settings.smtp.username", t("username"), smtp.username ?? "", (username) => setSmtp({ username }))}
                  <SecretField path="settings.smtp.password" label={t("password")} value={smtp.password ?? ""} onChange={(password) => setSmtp({ password })} stored={storedSecret(original, "password")} fallback={t("acSecretWriteOnly")} />
                  {text("settings.smtp.sender", t("acSender"), smtp.sender ?? "", (sender) => setSmtp({ sender }), " ", { required: true })}
                  {text("settings.smtp.to", t("acRecipients"), (smtp.to ?? []).join(", "), (v) => setSmtp({ to: v.split(",").map((x) => x.trim()).filter(Boolean) }), t("acRecipientsHelp"), { required: true })}
                  <FormControlLabel label={t("acStarttls")} control={<Switch checked={!!smtp.starttls} disabled={outer.readOnly} onChange={(e) => setSmtp({ starttls: e.target.checked })} />} />
                  <FormControlLabel label={t("acTls")} control={<Switch checked={!!smtp.tls} disabled={outer.readOnly} onChange={(e) => setSmtp({ tls: e.target.checked })} />} />
                </>
              ) : null}
              {text("settings.timeout_seconds", t("acTimeout"), c.timeoutSeconds ? String(c.timeoutSeconds) : "", (v) => set({ timeoutSeconds: numberOf(v) }), t("acTimeoutHelp"), { type: "number" })}
              {text("settings.max_attempts", t("acMaxAttempts"), c.maxAttempts ? String(c.maxAttempts) : "", (v) => set({ maxAttempts: numberOf(v) }), t("acMaxAttemptsHelp"), { type: "number" })}
              {text("settings.link", t("acLink"), c.link ?? "", (link) => set({ link }), t("acLinkHelp"))}
              <Box>
                <FormControlLabel label={t("acSendResolved")} control={<Switch checked={c.sendResolved !== false} disabled={outer.readOnly} onChange={(e) => set({ sendResolved: e.target.checked })} />} />
                <FormControlLabel label={t("acSendAcknowledged")} control={<Switch checked={!!c.sendAcknowledged} disabled={outer.readOnly} onChange={(e) => set({ sendAcknowledged: e.target.checked })} />} />
              </Box>
              {HTTP_KINDS.includes(kind as ChannelKind)
                ? text("settings.template", t("acTemplate"), c.template ?? "", (template) => set({ template }), t("acTemplateHelp"), { multiline: true, minRows: 2, sx: { gridColumn: "1 / -1" } })
                : null}
            </Box>
            {kind === "WEBHOOK" ? (
              <Box sx={{ mt: 1 }} component="fieldset" aria-label={t("acHeaders")}>
                <Typography variant="subtitle2" component="legend">
                  {t("acHeaders")}
                </Typography>
                {headerRows.map(([name, value], i) => (
                  <Box key={i} sx={{ display: "flex", gap: 1, mt: 1 }}>
                    <TextField size="small" id={`header-${i}-name`} label={t("acHeaderName")} value={name} slotProps={{ input: { readOnly: outer.readOnly } }} onChange={(e) => setHeaderRows(headerRows.map((r, j) => (j === i ? [e.target.value, r[1]] : r)))} />
                    <SecretField
                      path={`settings.headers.${i}`}
                      label={t("acHeaderValue")}
                      value={value}
                      onChange={(v) => setHeaderRows(headerRows.map((r, j) => (j === i ? [r[0], v] : r)))}
                      stored={!!original && Object.prototype.hasOwnProperty.call(original.headers ?? {}, name)}
                      fallback={t("acSecretWriteOnly")}
                    />
                    {outer.readOnly ? null : (
                      <Button size="small" onClick={() => setHeaderRows(headerRows.filter((_, j) => j !== i))}>
                        {t("acRemove")}
                      </Button>
                    )}
                  </Box>
                ))}
                {outer.readOnly ? null : (
                  <Button size="small" sx={{ mt: 1 }} onClick={() => setHeaderRows([...headerRows, ["", ""]])}>
                    {t("acAddHeader")}
                  </Button>
                )}
                <Typography variant="caption" component="p" color="text.secondary">
                  {editor.helper("settings.headers", t("acHeadersHelp"))}
                </Typography>
              </Box>
            ) : null}
            <TestResult name={c.name ?? ""} answer={test.data} error={unmatchedTestError ? test.error : undefined} />
          </DialogContent>
          <DialogActions>
            {outer.readOnly ? null : (
              <Button disabled={own.invalid || test.isPending} onClick={() => test.mutate(settings())}>
                {test.isPending ? t("acTesting") : t("acSendTest")}
              </Button>
            )}
            <Box sx={{ flexGrow: 1 }} />
            <Button onClick={onClose}>{outer.readOnly ? t("close") : t("cancel")}</Button>
            {outer.readOnly ? null : (
              <Button type="submit" variant="contained" disabled={own.invalid}>
                {t("acApply")}
              </Button>
            )}
          </DialogActions>
        </form>
      </EditorContext.Provider>
    </Dialog>
  );
}
