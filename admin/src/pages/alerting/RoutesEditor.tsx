// Routes: which channels each incident goes to, tried in order (move up/down). Each has matchers, its
// channels, continue, a group wait and escalation steps; the last one must match everything (the
// default route), which the tab explains and offers to add.

import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Chip from "@mui/material/Chip";
import FormControlLabel from "@mui/material/FormControlLabel";
import Paper from "@mui/material/Paper";
import Switch from "@mui/material/Switch";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { enumLabel, useI18n } from "../../i18n";
import { useEditorFields } from "./editorContext";
import { LabelsField, PickMany } from "./fields";
import {
  defaultRoute,
  GROUP_WAIT_DEFAULT,
  INCIDENT_TYPES,
  lacksDefaultRoute,
  matchesEverything,
  move,
  newRoute,
  SEVERITIES,
  type AlertingConfig,
  type EscalationStep,
  type IncidentType,
  type NotificationRoute,
  type Severity,
} from "./model";

interface CardProps {
  index: number;
  count: number;
  route: NotificationRoute;
  channelNames: string[];
  onChange: (r: NotificationRoute) => void;
  onMove: (to: number) => void;
  onRemove: () => void;
}

function numberOrUndefined(text: string): number | undefined {
  return text.trim() === "" ? undefined : Number(text);
}

function EscalationRow({ path, step, channelNames, onChange, onRemove, idBase }: { path: string; step: EscalationStep; channelNames: string[]; onChange: (s: EscalationStep) => void; onRemove: () => void; idBase: string }) {
  const { t } = useI18n();
  const { readOnly, helper, isError } = useEditorFields();
  return (
    <Box sx={{ display: "flex", gap: 2, alignItems: "flex-start", flexWrap: "wrap", mt: 1 }}>
      <TextField
        id={`${idBase}-after`}
        size="small"
        type="number"
        label={t("acAfterMinutes")}
        value={step.afterMinutes ?? ""}
        onChange={(e) => onChange({ ...step, afterMinutes: numberOrUndefined(e.target.value) })}
        error={isError(`${path}.after_minutes`)}
        helperText={helper(`${path}.after_minutes`, t("acAfterMinutesHelp"))}
        slotProps={{ input: { readOnly }, htmlInput: { min: 1, max: 10080, step: 1 } }}
        sx={{ width: 180 }}
      />
      <PickMany legend={t("acEscalateTo")} path={`${path}.channels`} options={channelNames} value={step.channels ?? []} onChange={(channels) => onChange({ ...step, channels })} empty={t("acNoChannels")} />
      {readOnly ? null : (
        <Button size="small" color="warning" onClick={onRemove} sx={{ mt: 1 }}>
          {t("acRemoveStep")}
        </Button>
      )}
    </Box>
  );
}

function RouteCard({ index, count, route, channelNames, onChange, onMove, onRemove }: CardProps) {
  const { t } = useI18n();
  const { readOnly, helper, isError } = useEditorFields();
  const p = `config.routes[${index}]`;
  const idBase = `route-${index}`;
  const isDefault = index === count - 1 && matchesEverything(route);
  const steps = route.escalations ?? [];
  const heading = t("acRouteN", { n: index + 1, name: route.name ?? "" });
  return (
    <Paper variant="outlined" sx={{ p: 2, mb: 2 }} component="section" aria-label={heading} data-testid={`route-${index}`}>
      <Box sx={{ display: "flex", gap: 1, alignItems: "center", mb: 2, flexWrap: "wrap" }}>
        <Typography variant="subtitle1" component="h4">
          {heading}
        </Typography>
        {isDefault ? <Chip size="small" color="primary" label={t("acDefaultRoute")} /> : null}
        <Box sx={{ flexGrow: 1 }} />
        {readOnly ? null : (
          <>
            <Button size="small" disabled={index === 0} onClick={() => onMove(index - 1)} aria-label={t("acMoveUp", { name: route.name ?? "" })}>
              {t("acUp")}
            </Button>
            <Button size="small" disabled={index === count - 1} onClick={() => onMove(index + 1)} aria-label={t("acMoveDown", { name: route.name ?? "" })}>
              {t("acDown")}
            </Button>
            <Button size="small" color="warning" onClick={onRemove} aria-label={t("acRemoveRoute", { name: route.name ?? "" })}>
              {t("acRemove")}
            </Button>
          </>
        )}
      </Box>
      <Box sx={{ display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(240px, 1fr))", gap: 2 }}>
        <TextField id={`${idBase}-name`} size="small" label={t("name")} value={route.name ?? ""} onChange={(e) => onChange({ ...route, name: e.target.value })} error={isError(`${p}.name`)} helperText={helper(`${p}.name`, t("acNameHelp"))} required slotProps={{ input: { readOnly } }} />
        <TextField id={`${idBase}-glob`} size="small" label={t("queueGlob")} value={route.queueGlob ?? ""} onChange={(e) => onChange({ ...route, queueGlob: e.target.value })} error={isError(`${p}.queue_glob`)} helperText={helper(`${p}.queue_glob`, t("queueGlobHelp"))} slotProps={{ input: { readOnly } }} />
        <LabelsField id={`${idBase}-labels`} label={t("acWorkerLabels")} path={`${p}.worker_labels`} value={route.workerLabels ?? {}} onChange={(workerLabels) => onChange({ ...route, workerLabels })} />
        <TextField
          id={`${idBase}-wait`}
          size="small"
          type="number"
          label={t("acGroupWait")}
          value={route.groupWaitSeconds ?? ""}
          onChange={(e) => onChange({ ...route, groupWaitSeconds: numberOrUndefined(e.target.value) })}
          error={isError(`${p}.group_wait_seconds`)}
          helperText={helper(`${p}.group_wait_seconds`, t("acGroupWaitHelp", { seconds: GROUP_WAIT_DEFAULT }))}
          slotProps={{ input: { readOnly }, htmlInput: { min: 0, max: 3600, step: 1 } }}
        />
      </Box>
      <PickMany
        legend={t("acRouteTypes")}
        path={`${p}.types`}
        options={INCIDENT_TYPES}
        value={(route.types ?? []).map((x) => x.replace("INCIDENT_TYPE_", ""))}
        onChange={(v) => onChange({ ...route, types: v.map((x) => `INCIDENT_TYPE_${x}` as IncidentType) })}
        label={(o) => enumLabel(t, "it", o)}
        fallback={t("acAnyWhenNone")}
      />
      <PickMany
        legend={t("acRouteSeverities")}
        path={`${p}.severities`}
        options={SEVERITIES}
        value={(route.severities ?? []).map((x) => x.replace("SEVERITY_", ""))}
        onChange={(v) => onChange({ ...route, severities: v.map((x) => `SEVERITY_${x}` as Severity) })}
        label={(o) => enumLabel(t, "sev", o)}
        fallback={t("acAnyWhenNone")}
      />
      <PickMany legend={t("acRouteChannels")} path={`${p}.channels`} options={channelNames} value={route.channels ?? []} onChange={(channels) => onChange({ ...route, channels })} empty={t("acNoChannels")} fallback={t("acRouteChannelsHelp")} />
      <Box>
        <FormControlLabel
          label={t("acContinue")}
          control={<Switch checked={!!route.continueMatching} disabled={readOnly} onChange={(e) => onChange({ ...route, continueMatching: e.target.checked })} />}
        />
      </Box>
      <Typography variant="subtitle2" component="h5" sx={{ mt: 1 }}>
        {t("acEscalations")}
      </Typography>
      {steps.length === 0 ? (
        <Typography variant="body2" color="text.secondary">
          {t("acNoEscalations")}
        </Typography>
      ) : null}
      {steps.map((s, j) => (
        <EscalationRow
          key={j}
          idBase={`${idBase}-step-${j}`}
          path={`${p}.escalations[${j}]`}
          step={s}
          channelNames={channelNames}
          onChange={(next) => onChange({ ...route, escalations: steps.map((x, k) => (k === j ? next : x)) })}
          onRemove={() => onChange({ ...route, escalations: steps.filter((_, k) => k !== j) })}
        />
      ))}
      {readOnly ? null : (
        <Button size="small" sx={{ mt: 1 }} onClick={() => onChange({ ...route, escalations: [...steps, { afterMinutes: (steps[steps.length - 1]?.afterMinutes ?? 0) + 30, channels: [] }] })}>
          {t("acAddStep")}
        </Button>
      )}
    </Paper>
  );
}

/** The Routes tab. */
export function RoutesEditor({ config, update }: { config: AlertingConfig; update: (change: (c: AlertingConfig) => AlertingConfig) => void }) {
  const { t } = useI18n();
  const { readOnly, helper, isError } = useEditorFields();
  const routes = config.routes ?? [];
  const channelNames = (config.channels ?? []).map((c) => c.name ?? "").filter(Boolean);
  const setRoutes = (next: NotificationRoute[]) => update((c) => ({ ...c, routes: next }));
  const lacking = lacksDefaultRoute(routes);
  return (
    <Box>
      <Box sx={{ display: "flex", alignItems: "center", mb: 1, gap: 1 }}>
        <Typography variant="h6" component="h3" sx={{ flexGrow: 1 }}>
          {t("acRoutes")}
        </Typography>
        {readOnly ? null : (
          <Button variant="outlined" size="small" onClick={() => setRoutes(lacking || routes.length === 0 ? [...routes, newRoute(routes)] : [...routes.slice(0, -1), newRoute(routes), routes[routes.length - 1]])}>
            {t("acAddRoute")}
          </Button>
        )}
      </Box>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
        {t("acRoutesIntro")}
      </Typography>
      {routes.length === 0 ? <Alert severity="info" sx={{ mb: 2 }}>{t("acNoRoutes")}</Alert> : null}
      {lacking || isError("config.routes") ? (
        <Alert
          severity="warning"
          sx={{ mb: 2 }}
          data-testid="default-route-warning"
          action={
            readOnly || !lacking ? undefined : (
              <Button color="inherit" size="small" onClick={() => setRoutes([...routes, defaultRoute(routes, channelNames)])}>
                {t("acAddDefaultRoute")}
              </Button>
            )
          }
        >
          {helper("config.routes", t("acNeedsDefaultRoute"))}
        </Alert>
      ) : null}
      {routes.map((r, i) => (
        <RouteCard
          key={i}
          index={i}
          count={routes.length}
          route={r}
          channelNames={channelNames}
          onChange={(next) => setRoutes(routes.map((x, j) => (j === i ? next : x)))}
          onMove={(to) => setRoutes(move(routes, i, to))}
          onRemove={() => setRoutes(routes.filter((_, j) => j !== i))}
        />
      ))}
    </Box>
  );
}
