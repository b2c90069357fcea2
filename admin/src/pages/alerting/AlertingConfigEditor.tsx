// The alerting configuration's tabs (rules, channels, routes, revisions) around one draft: its problems
// and the server's refusal are placed by proto path (useFieldErrors), and only admins may change it.

import Box from "@mui/material/Box";
import { useEffect, useMemo, useRef } from "react";
import { errorParts } from "../../api/errors";
import { hasRole, useAuth } from "../../auth";
import { useFieldErrors } from "../../components/fieldErrors";
import { ErrorBanner, LoadingRows } from "../../components/States";
import { useI18n } from "../../i18n";
import { ChannelsEditor } from "./ChannelsEditor";
import { EditorContext, type EditorFields } from "./editorContext";
import { Revisions } from "./Revisions";
import { RoutesEditor } from "./RoutesEditor";
import { RulesEditor } from "./RulesEditor";
import { SaveBar } from "./SaveBar";
import { useAlertingEditor } from "./useAlertingConfig";
import { knownPath, validateConfig } from "./validate";

export const CONFIG_TABS = ["rules", "channels", "routes", "revisions"] as const;
export type ConfigTab = (typeof CONFIG_TABS)[number];

/** The tab holding the input at a proto path. */
function tabOf(path: string): ConfigTab | null {
  if (path.startsWith("config.defaults") || path.startsWith("config.overrides")) return "rules";
  if (path.startsWith("config.channels")) return "channels";
  if (path.startsWith("config.routes")) return "routes";
  return null;
}

/** The editor of the configuration, showing the tab `tab`; `onTab` switches to where a refusal points. */
export function AlertingConfigEditor({ tab, onTab }: { tab: ConfigTab; onTab: (tab: ConfigTab) => void }) {
  const { t } = useI18n();
  const { session } = useAuth();
  const editor = useAlertingEditor();
  const { current, base, query, save } = editor;
  const stored = useMemo(() => base?.channels ?? [], [base]);
  const problems = useMemo(() => (current ? validateConfig(current, editor.comment, stored, t) : {}), [current, editor.comment, stored, t]);
  const fields = useMemo(() => Object.keys(problems), [problems]);
  // The server names a field by its proto path; the most specific input known for it shows the refusal.
  const refused = save.error ? errorParts(save.error).field : undefined;
  const serverFields = useMemo(() => {
    const map: Record<string, string> = {};
    const known = refused ? knownPath(refused, fields) : null;
    if (refused && known) map[refused] = known;
    return map;
  }, [refused, fields]);
  const { serverField, invalid, helper, isError } = useFieldErrors(problems, fields, serverFields, save);
  // Once per refusal: the user may then look at other tabs.
  const onTabRef = useRef(onTab);
  onTabRef.current = onTab;
  useEffect(() => {
    const where = serverField ? tabOf(serverField) : null;
    if (where) onTabRef.current(where);
  }, [serverField]);
  const readOnly = !hasRole(session?.role, "admin");
  const context: EditorFields = useMemo(() => ({ readOnly, helper, isError, serverField }), [readOnly, helper, isError, serverField]);
  if (query.error) return <ErrorBanner error={query.error} onRetry={() => void query.refetch()} />;
  if (!current || !base) return <LoadingRows />;
  const first = fields.find((f) => problems[f] !== null);
  return (
    <EditorContext.Provider value={context}>
      <SaveBar editor={editor} base={base} invalid={invalid} checkInvalid={fields.some((f) => f !== "config.comment" && problems[f] !== null)} firstProblem={first ? { path: first, message: problems[first] ?? "" } : null} />
      <Box role="tabpanel" id={`alerting-panel-${tab}`} aria-labelledby={`alerting-tab-${tab}`}>
        {tab === "rules" ? <RulesEditor config={current} update={editor.update} /> : null}
        {tab === "channels" ? <ChannelsEditor config={current} stored={stored} update={editor.update} /> : null}
        {tab === "routes" ? <RoutesEditor config={current} update={editor.update} /> : null}
        {tab === "revisions" ? <Revisions /> : null}
      </Box>
    </EditorContext.Provider>
  );
}
