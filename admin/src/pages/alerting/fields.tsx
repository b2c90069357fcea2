// Inputs the editors share: a labels map typed as "key=value, …", a set of names picked with check boxes
// (channels, types, severities), each showing its problem from the editor's context.

import Checkbox from "@mui/material/Checkbox";
import FormControl from "@mui/material/FormControl";
import FormControlLabel from "@mui/material/FormControlLabel";
import FormGroup from "@mui/material/FormGroup";
import FormHelperText from "@mui/material/FormHelperText";
import FormLabel from "@mui/material/FormLabel";
import TextField from "@mui/material/TextField";
import { useState } from "react";
import { useI18n } from "../../i18n";
import { useEditorFields } from "./editorContext";
import { labelsText, parseLabels } from "./model";

/** A labels map as "key=value, …" text; the map changes only while the text parses. */
export function LabelsField({ id, label, path, value, onChange }: { id: string; label: string; path: string; value: Record<string, string>; onChange: (v: Record<string, string>) => void }) {
  const { t } = useI18n();
  const { readOnly, helper, isError } = useEditorFields();
  const [typed, setText] = useState(() => labelsText(value));
  const parsed = parseLabels(typed);
  // Changed from outside (an item above removed, a reload): show the map, not the former text.
  const text = parsed !== null && JSON.stringify(parsed) !== JSON.stringify(value) ? labelsText(value) : typed;
  const bad = parsed === null;
  return (
    <TextField
      id={id}
      size="small"
      label={label}
      value={text}
      onChange={(e) => {
        setText(e.target.value);
        const parsed = parseLabels(e.target.value);
        if (parsed) onChange(parsed);
      }}
      error={bad || isError(path)}
      helperText={bad ? t("silenceLabelsFormat") : helper(path, t("silenceLabelsFormat"))}
      slotProps={{ input: { readOnly } }}
    />
  );
}

/** Check boxes picking some of `options` (in the options' order); `label` names each option. */
export function PickMany({
  legend,
  path,
  options,
  value,
  onChange,
  label = (o) => o,
  empty,
  fallback = " ",
}: {
  legend: string;
  path: string;
  options: readonly string[];
  value: readonly string[];
  onChange: (v: string[]) => void;
  label?: (option: string) => string;
  /** Shown instead of the boxes when there is nothing to pick. */
  empty?: string;
  fallback?: string;
}) {
  const { readOnly, helper, isError } = useEditorFields();
  return (
    <FormControl component="fieldset" error={isError(path)} size="small">
      <FormLabel component="legend">{legend}</FormLabel>
      {options.length === 0 && empty ? <FormHelperText>{empty}</FormHelperText> : null}
      <FormGroup row>
        {options.map((o) => (
          <FormControlLabel
            key={o}
            label={label(o)}
            disabled={readOnly}
            control={
              <Checkbox size="small" checked={value.includes(o)} onChange={(e) => onChange(options.filter((x) => (x === o ? e.target.checked : value.includes(x))))} />
            }
          />
        ))}
      </FormGroup>
      <FormHelperText>{helper(path, fallback)}</FormHelperText>
    </FormControl>
  );
}
