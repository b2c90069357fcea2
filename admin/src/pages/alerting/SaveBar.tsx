// Saving the draft: one "Save changes" with a required comment (expected_revision = the revision
// loaded), a "Check" that only validates, the download of the configuration in force, and what went
// wrong: someone else saved meanwhile (ABORTED: reload), or a refusal naming a field no input shows.

import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Paper from "@mui/material/Paper";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { describeError } from "../../api/errors";
import { fmtTime } from "../../format";
import { actorLabel, useI18n } from "../../i18n";
import { useEditorFields } from "./editorContext";
import { exportJson, type AlertingConfig } from "./model";
import type { AlertingEditor } from "./useAlertingConfig";
import { saveBlob } from "../../api/client";

/** Hand `text` to the browser as a JSON file download. */
function saveFile(text: string, filename: string): void {
  saveBlob(new Blob([text], { type: "application/json" }), filename);
}

/** The first problem of the draft, to say why Save waits (it may sit on another tab). */
export type FirstProblem = { path: string; message: string } | null;

interface Props {
  editor: AlertingEditor;
  base: AlertingConfig;
  invalid: boolean;
  /** Problems other than the comment's: a check needs no comment. */
  checkInvalid: boolean;
  firstProblem: FirstProblem;
}

/** The save bar above the editor's tabs. */
export function SaveBar({ editor, base, invalid, checkInvalid, firstProblem }: Props) {
  const { t } = useI18n();
  const { readOnly, helper, isError, serverField } = useEditorFields();
  const { save } = editor;
  const revision = base.revision && base.revision !== "0" ? base.revision : null;
  const unplaced = save.error && !editor.aborted && !serverField;
  return (
    <Paper variant="outlined" sx={{ p: 2, mb: 2 }} component="section" aria-label={t("acSaveSection")}>
      <Box sx={{ display: "flex", gap: 2, alignItems: "center", flexWrap: "wrap" }}>
        <Typography variant="body2" sx={{ flexGrow: 1 }} data-testid="alerting-revision">
          {revision ? t("acRevisionLine", { revision, author: actorLabel(t, base.author ?? ""), time: fmtTime(base.createTime) }) : t("acNoRevisionYet")}
          {editor.dirty ? ` · ${t("acUnsaved")}` : ""}
        </Typography>
        <Button size="small" onClick={() => saveFile(exportJson(base), `alerting-config-${revision ?? 0}.json`)}>
          {t("acDownload")}
        </Button>
      </Box>
      {readOnly ? (
        <Alert severity="info" sx={{ mt: 1 }}>
          {t("acReadOnly")}
        </Alert>
      ) : (
        <form
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            if (!invalid && !save.isPending) save.mutate(false);
          }}
        >
          <Box sx={{ display: "flex", gap: 1.5, alignItems: "flex-start", mt: 2, flexWrap: "wrap" }}>
            <TextField
              id="alerting-comment"
              size="small"
              label={t("comment")}
              value={editor.comment}
              onChange={(e) => editor.setComment(e.target.value)}
              error={isError("config.comment")}
              helperText={helper("config.comment", t("acCommentHelp"))}
              required
              sx={{ flexGrow: 1, minWidth: 280 }}
            />
            <Button variant="outlined" disabled={checkInvalid || save.isPending} onClick={() => save.mutate(true)}>
              {t("acCheck")}
            </Button>
            <Button type="submit" variant="contained" disabled={invalid || save.isPending || (!editor.dirty && !!revision)}>
              {t("acSaveChanges")}
            </Button>
            <Button disabled={!editor.dirty || save.isPending} onClick={() => void editor.reload()}>
              {t("acDiscard")}
            </Button>
          </Box>
          {firstProblem && editor.dirty && firstProblem.path !== "config.comment" ? (
            <Typography variant="body2" color="error" sx={{ mt: 1 }} data-testid="alerting-problem">
              {t("acFirstProblem", { field: firstProblem.path, message: firstProblem.message })}
            </Typography>
          ) : null}
        </form>
      )}
      {editor.aborted ? (
        <Alert
          severity="warning"
          sx={{ mt: 1 }}
          data-testid="alerting-aborted"
          action={
            <Button color="inherit" size="small" onClick={() => void editor.reload()}>
              {t("acReload")}
            </Button>
          }
        >
          {t("acAborted")}
        </Alert>
      ) : null}
      {save.error && serverField && serverField !== "config.comment" ? (
        <Alert severity="error" sx={{ mt: 1 }} data-testid="alerting-save-error">
          {t("acRefusedAt", { field: serverField })}
        </Alert>
      ) : null}
      {unplaced ? (
        <Alert severity="error" sx={{ mt: 1 }} data-testid="alerting-save-error">
          {describeError(save.error, t)}
        </Alert>
      ) : null}
    </Paper>
  );
}
