// Revisions of the alerting configuration: who changed it, when and why, each viewable as JSON.

import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogTitle from "@mui/material/DialogTitle";
import Paper from "@mui/material/Paper";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import Typography from "@mui/material/Typography";
import { useState } from "react";
import { JsonView } from "../../components/JsonView";
import { Pager, usePageTokens } from "../../components/Pager";
import { EmptyState, ErrorBanner, LoadingRows } from "../../components/States";
import { fmtTime } from "../../format";
import { actorLabel, useI18n } from "../../i18n";
import { exportJson, type AlertingConfig } from "./model";
import { useAlertingRevisions } from "./useAlertingConfig";

/** The Revisions tab. */
export function Revisions() {
  const { t } = useI18n();
  const pager = usePageTokens("revisions");
  const list = useAlertingRevisions(pager.token);
  const [viewing, setViewing] = useState<AlertingConfig | null>(null);
  const rows = list.data?.revisions ?? [];
  return (
    <Box>
      <Typography variant="h6" component="h3" sx={{ mb: 1 }}>
        {t("acRevisions")}
      </Typography>
      {list.error ? <ErrorBanner error={list.error} onRetry={() => void list.refetch()} /> : null}
      {list.isPending ? (
        <LoadingRows />
      ) : rows.length === 0 ? (
        <EmptyState>{t("acNoRevisions")}</EmptyState>
      ) : (
        <Paper variant="outlined" sx={{ overflowX: "auto" }}>
          <Table size="small" aria-label={t("acRevisions")}>
            <TableHead>
              <TableRow>
                <TableCell>{t("acRevision")}</TableCell>
                <TableCell>{t("silenceAuthor")}</TableCell>
                <TableCell>{t("time")}</TableCell>
                <TableCell>{t("comment")}</TableCell>
                <TableCell>{t("actions")}</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {rows.map((r) => (
                <TableRow key={r.revision} data-testid={`revision-row-${r.revision}`}>
                  <TableCell>#{r.revision}</TableCell>
                  <TableCell>{actorLabel(t, r.author ?? "")}</TableCell>
                  <TableCell>{fmtTime(r.createTime)}</TableCell>
                  <TableCell>
                    <span lang="en">{r.comment}</span>
                  </TableCell>
                  <TableCell>
                    <Button size="small" onClick={() => setViewing(r)} aria-label={t("acViewRevision", { revision: r.revision ?? "" })}>
                      {t("acView")}
                    </Button>
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
      <Dialog open={viewing !== null} onClose={() => setViewing(null)} maxWidth="md" fullWidth aria-labelledby="revision-title">
        <DialogTitle id="revision-title">{t("acRevisionTitle", { revision: viewing?.revision ?? "" })}</DialogTitle>
        <DialogContent>{viewing ? <JsonView text={exportJson(viewing)} label={t("acRevisionTitle", { revision: viewing.revision ?? "" })} /> : null}</DialogContent>
        <DialogActions>
          <Button onClick={() => setViewing(null)}>{t("close")}</Button>
        </DialogActions>
      </Dialog>
    </Box>
  );
}
