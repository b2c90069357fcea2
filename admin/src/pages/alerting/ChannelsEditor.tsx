// Channels: where notifications go. A table (name, type, target hint, what is sent) with a test button per
// channel, and the add/edit dialog; renaming or removing a channel carries over to the routes naming it.

import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Paper from "@mui/material/Paper";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import Typography from "@mui/material/Typography";
import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { useI18n, type MessageKey } from "../../i18n";
import { ChannelDialog, newChannel } from "./ChannelDialog";
import { useEditorFields } from "./editorContext";
import { channelInput, kindOf, targetHint, type AlertingConfig, type Channel, type NotificationRoute } from "./model";
import { TestResult } from "./TestResult";
import { testChannel } from "./useAlertingConfig";

/** The routes with channel `from` renamed to `to` (or dropped when `to` is null). */
function renameInRoutes(routes: NotificationRoute[], from: string, to: string | null): NotificationRoute[] {
  const swap = (names: string[]) => names.flatMap((n) => (n === from ? (to === null ? [] : [to]) : [n]));
  return routes.map((r) => ({ ...r, channels: swap(r.channels ?? []), escalations: (r.escalations ?? []).map((e) => ({ ...e, channels: swap(e.channels ?? []) })) }));
}

/** The Channels tab. `stored` are the channels as loaded (their hints say which secrets are kept). */
export function ChannelsEditor({ config, stored, update }: { config: AlertingConfig; stored: Channel[]; update: (change: (c: AlertingConfig) => AlertingConfig) => void }) {
  const { t } = useI18n();
  const { readOnly, helper, isError, serverField } = useEditorFields();
  const channels = config.channels ?? [];
  const [editing, setEditing] = useState<{ index: number | null; channel: Channel } | null>(null);
  const test = useMutation({
    mutationFn: (c: Channel) => {
      const saved = stored.find((s) => s.name === c.name);
      // Unchanged since loaded: the stored channel is tested; otherwise the settings as edited.
      return testChannel(c.name ?? "", saved && JSON.stringify(saved) === JSON.stringify(c) ? undefined : channelInput(c));
    },
  });
  const apply = (index: number | null, c: Channel) => {
    update((cfg) => {
      const list = cfg.channels ?? [];
      if (index === null) return { ...cfg, channels: [...list, c] };
      const before = list[index]?.name ?? "";
      const routes = before && before !== c.name ? renameInRoutes(cfg.routes ?? [], before, c.name ?? "") : (cfg.routes ?? []);
      return { ...cfg, channels: list.map((x, j) => (j === index ? c : x)), routes };
    });
    setEditing(null);
  };
  const remove = (index: number) =>
    update((cfg) => ({ ...cfg, channels: (cfg.channels ?? []).filter((_, j) => j !== index), routes: renameInRoutes(cfg.routes ?? [], channels[index]?.name ?? "", null) }));
  return (
    <Box>
      <Box sx={{ display: "flex", alignItems: "center", mb: 1 }}>
        <Typography variant="h6" component="h3" sx={{ flexGrow: 1 }}>
          {t("acChannels")}
        </Typography>
        {readOnly ? null : (
          <Button variant="outlined" size="small" onClick={() => setEditing({ index: null, channel: newChannel("WEBHOOK") })}>
            {t("acAddChannel")}
          </Button>
        )}
      </Box>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
        {t("acChannelsIntro")}
      </Typography>
      {channels.length === 0 ? (
        <Typography color="text.secondary">{t("acNoChannels")}</Typography>
      ) : (
        <Paper variant="outlined" sx={{ overflowX: "auto" }}>
          <Table size="small" aria-label={t("acChannels")}>
            <TableHead>
              <TableRow>
                <TableCell>{t("name")}</TableCell>
                <TableCell>{t("type")}</TableCell>
                <TableCell>{t("acTarget")}</TableCell>
                <TableCell>{t("acSendResolved")}</TableCell>
                <TableCell>{t("acSendAcknowledged")}</TableCell>
                <TableCell>{t("actions")}</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {channels.map((c, i) => {
                const path = `config.channels[${i}]`;
                const kind = kindOf(c);
                // A refusal of one of its settings (config.channels[i].url) is flagged on the row too.
                const flagged = serverField === path || !!serverField?.startsWith(`${path}.`) ? serverField : isError(path) ? path : null;
                return (
                  <TableRow key={`${i}-${c.name}`} data-testid={`channel-row-${c.name}`}>
                    <TableCell>
                      {c.name}
                      {flagged ? (
                        <Typography variant="caption" color="error" component="p">
                          {helper(flagged, "")}
                        </Typography>
                      ) : null}
                    </TableCell>
                    <TableCell>{kind ? t(`acType_${kind}` as MessageKey) : "—"}</TableCell>
                    <TableCell translate="no">{targetHint(c) || "—"}</TableCell>
                    <TableCell>{c.sendResolved !== false ? t("acYes") : t("acNo")}</TableCell>
                    <TableCell>{c.sendAcknowledged ? t("acYes") : t("acNo")}</TableCell>
                    <TableCell>
                      <Box sx={{ display: "flex", gap: 0.5 }}>
                        {readOnly ? (
                          <Button size="small" onClick={() => setEditing({ index: i, channel: c })} aria-label={t("acViewChannel", { name: c.name ?? "" })}>
                            {t("acView")}
                          </Button>
                        ) : (
                          <>
                            <Button size="small" variant="outlined" disabled={test.isPending} onClick={() => test.mutate(c)} aria-label={t("acSendTestTo", { name: c.name ?? "" })}>
                              {t("acSendTest")}
                            </Button>
                            <Button size="small" onClick={() => setEditing({ index: i, channel: c })} aria-label={t("acEditChannel", { name: c.name ?? "" })}>
                              {t("acEdit")}
                            </Button>
                            <Button size="small" color="warning" onClick={() => remove(i)} aria-label={t("acRemoveChannel", { name: c.name ?? "" })}>
                              {t("acRemove")}
                            </Button>
                          </>
                        )}
                      </Box>
                    </TableCell>
                  </TableRow>
                );
              })}
            </TableBody>
          </Table>
        </Paper>
      )}
      {test.variables ? <TestResult name={test.variables.name ?? ""} answer={test.data} error={test.error ?? undefined} /> : null}
      {editing ? (
        <ChannelDialog
          initial={editing.channel}
          index={editing.index}
          stored={stored}
          otherNames={channels.filter((_, j) => j !== editing.index).map((c) => c.name ?? "")}
          onApply={(c) => apply(editing.index, c)}
          onClose={() => setEditing(null)}
        />
      ) : null}
    </Box>
  );
}
