import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import { enumName, type AuditLog } from "../api/types";
import { fmtTime } from "../format";
import { actorLabel, enumLabel, roleLabel, useI18n } from "../i18n";
import { EmptyState } from "./States";

function compact(value: Record<string, unknown> | undefined): string {
  if (!value || Object.keys(value).length === 0) return "";
  const text = JSON.stringify(value);
  return text.length > 160 ? `${text.slice(0, 160)}…` : text;
}

export function AuditTable({ logs }: { logs: AuditLog[] }) {
  const { t } = useI18n();
  if (logs.length === 0) return <EmptyState>{t("noAudit")}</EmptyState>;
  return (
    <Table size="small" aria-label={t("audit")}>
      <TableHead>
        <TableRow>
          <TableCell>#</TableCell>
          <TableCell>{t("time")}</TableCell>
          <TableCell>{t("actor")}</TableCell>
          <TableCell>{t("action")}</TableCell>
          <TableCell>{t("entity")}</TableCell>
          <TableCell>{t("outcome")}</TableCell>
          <TableCell>{t("result")}</TableCell>
        </TableRow>
      </TableHead>
      <TableBody>
        {logs.map((l) => (
          <TableRow key={l.id} data-testid={`audit-row-${l.id}`}>
            <TableCell>{l.id}</TableCell>
            <TableCell sx={{ whiteSpace: "nowrap" }}>{fmtTime(l.time)}</TableCell>
            <TableCell>
              {actorLabel(t, l.actor ?? "")}
              {l.role ? ` (${roleLabel(t, l.role)})` : ""}
            </TableCell>
            <TableCell sx={{ fontFamily: "monospace" }}>{enumLabel(t, "aa", enumName(l.action, "AUDIT_ACTION_"))}</TableCell>
            <TableCell>
              {enumLabel(t, "et", l.entityType ?? "")}
              {l.entityId ? `: ${l.entityId}` : ""}
            </TableCell>
            <TableCell>{enumLabel(t, "ao", enumName(l.outcome, "AUDIT_OUTCOME_"))}</TableCell>
            <TableCell sx={{ fontFamily: "monospace", fontSize: 12, maxWidth: 360, overflow: "hidden", textOverflow: "ellipsis" }} title={JSON.stringify(l.result ?? {})} translate="no">
              {compact(l.result)}
            </TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}
