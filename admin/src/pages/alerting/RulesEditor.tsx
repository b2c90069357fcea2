// Rules: the default thresholds (every field, with its unit and range) and the overrides for some queues
// or workers (only the fields that differ), added, edited and removed in place.

import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import FormControlLabel from "@mui/material/FormControlLabel";
import Paper from "@mui/material/Paper";
import Switch from "@mui/material/Switch";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { useI18n, type MessageKey } from "../../i18n";
import { useEditorFields } from "./editorContext";
import { LabelsField } from "./fields";
import { THRESHOLDS, thresholdText, withThreshold, type AlertingConfig, type RuleOverride, type RuleThresholds, type ThresholdSpec } from "./model";

function rangeText(spec: ThresholdSpec): string {
  const low = spec.minExclusive ? `(${spec.min}` : `${spec.min}`;
  return spec.max === undefined ? `≥ ${spec.min}` : `${low}–${spec.max}${spec.minExclusive ? "]" : ""}`;
}

/** The threshold inputs of one block: the defaults (`inherit` unset) or an override (empty inherits). */
function ThresholdFields({ prefix, value, onChange, inherit }: { prefix: string; value: RuleThresholds | undefined; onChange: (v: RuleThresholds) => void; inherit?: RuleThresholds }) {
  const { t } = useI18n();
  const { readOnly, helper, isError } = useEditorFields();
  const idBase = prefix.replace(/[^A-Za-z0-9]+/g, "-");
  return (
    <Box sx={{ display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(250px, 1fr))", gap: 2 }}>
      {THRESHOLDS.map((spec) => {
        const path = `${prefix}.${spec.proto}`;
        const unit = t(`acUnit_${spec.unit}` as MessageKey);
        const fallback = inherit
          ? t("acInherits", { value: thresholdText(inherit, spec) || "—", unit, range: rangeText(spec) })
          : t("acUnitRange", { unit, range: rangeText(spec) });
        return (
          <TextField
            key={spec.key}
            id={`${idBase}-${spec.key}`}
            size="small"
            type="number"
            label={t(`acTh_${spec.key}` as MessageKey)}
            value={thresholdText(value, spec)}
            onChange={(e) => onChange(withThreshold(value, spec, e.target.value))}
            error={isError(path)}
            helperText={helper(path, fallback)}
            required={!inherit}
            slotProps={{ input: { readOnly }, htmlInput: { min: spec.min, max: spec.max, step: spec.integer ? 1 : "any" } }}
          />
        );
      })}
      {inherit ? (
        <TextField
          id={`${idBase}-enabled`}
          select
          size="small"
          label={t("acRulesOn")}
          value={value?.enabled === undefined ? "" : String(value.enabled)}
          onChange={(e) => {
            const next: RuleThresholds = { ...(value ?? {}) };
            if (e.target.value === "") delete next.enabled;
            else next.enabled = e.target.value === "true";
            onChange(next);
          }}
          helperText={helper(`${prefix}.enabled`, " ")}
          slotProps={{ select: { native: true }, inputLabel: { shrink: true }, input: { readOnly }, htmlInput: { disabled: readOnly } }}
        >
          <option value="">{t("acInheritOption")}</option>
          <option value="true">{t("acOn")}</option>
          <option value="false">{t("acOff")}</option>
        </TextField>
      ) : (
        <FormControlLabel
          label={t("acRulesOn")}
          control={<Switch checked={value?.enabled !== false} disabled={readOnly} onChange={(e) => onChange({ ...(value ?? {}), enabled: e.target.checked })} />}
        />
      )}
    </Box>
  );
}

function OverrideCard({ index, value, defaults, onChange, onRemove }: { index: number; value: RuleOverride; defaults: RuleThresholds | undefined; onChange: (o: RuleOverride) => void; onRemove: () => void }) {
  const { t } = useI18n();
  const { readOnly, helper, isError } = useEditorFields();
  const p = `config.overrides[${index}]`;
  return (
    <Paper variant="outlined" sx={{ p: 2, mb: 2 }} component="section" aria-label={t("acOverrideN", { n: index + 1 })} data-testid={`override-${index}`}>
      <Box sx={{ display: "flex", gap: 2, mb: 2, alignItems: "flex-start", flexWrap: "wrap" }}>
        <Typography variant="subtitle1" component="h4" sx={{ minWidth: 110, pt: 1 }}>
          {t("acOverrideN", { n: index + 1 })}
        </Typography>
        <TextField
          id={`override-${index}-glob`}
          size="small"
          label={t("queueGlob")}
          value={value.queueGlob ?? ""}
          onChange={(e) => onChange({ ...value, queueGlob: e.target.value })}
          error={isError(`${p}.queue_glob`)}
          helperText={helper(`${p}.queue_glob`, t("acOverrideGlobHelp"))}
          slotProps={{ input: { readOnly } }}
        />
        <LabelsField id={`override-${index}-labels`} label={t("acWorkerLabels")} path={`${p}.worker_labels`} value={value.workerLabels ?? {}} onChange={(workerLabels) => onChange({ ...value, workerLabels })} />
        <Box sx={{ flexGrow: 1 }} />
        {readOnly ? null : (
          <Button size="small" color="warning" onClick={onRemove}>
            {t("acRemove")}
          </Button>
        )}
      </Box>
      <ThresholdFields prefix={`${p}.thresholds`} value={value.thresholds} inherit={defaults ?? {}} onChange={(thresholds) => onChange({ ...value, thresholds })} />
    </Paper>
  );
}

/** The Rules tab: defaults and overrides. */
export function RulesEditor({ config, update }: { config: AlertingConfig; update: (change: (c: AlertingConfig) => AlertingConfig) => void }) {
  const { t } = useI18n();
  const { readOnly } = useEditorFields();
  const overrides = config.overrides ?? [];
  const setOverrides = (next: RuleOverride[]) => update((c) => ({ ...c, overrides: next }));
  return (
    <Box>
      <Typography variant="h6" component="h3" sx={{ mb: 1 }}>
        {t("acDefaults")}
      </Typography>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
        {t("acDefaultsIntro")}
      </Typography>
      <ThresholdFields prefix="config.defaults" value={config.defaults} onChange={(defaults) => update((c) => ({ ...c, defaults }))} />
      <Box sx={{ display: "flex", alignItems: "center", mt: 4, mb: 1 }}>
        <Typography variant="h6" component="h3" sx={{ flexGrow: 1 }}>
          {t("acOverrides")}
        </Typography>
        {readOnly ? null : (
          <Button variant="outlined" size="small" onClick={() => setOverrides([...overrides, { queueGlob: "", workerLabels: {}, thresholds: {} }])}>
            {t("acAddOverride")}
          </Button>
        )}
      </Box>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
        {t("acOverridesIntro")}
      </Typography>
      {overrides.length === 0 ? <Typography color="text.secondary">{t("acNoOverrides")}</Typography> : null}
      {overrides.map((o, i) => (
        <OverrideCard
          // The position is the identity: an override has no name, and inputs keep their text per card.
          key={i}
          index={i}
          value={o}
          defaults={config.defaults}
          onChange={(next) => setOverrides(overrides.map((x, j) => (j === i ? next : x)))}
          onRemove={() => setOverrides(overrides.filter((_, j) => j !== i))}
        />
      ))}
    </Box>
  );
}
