// Search across queues: a job id in every queue, or a bounded server-side scan by name and text that
// the user resumes page by page ("Load more"), with how far the scan has got.
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import LinearProgress from "@mui/material/LinearProgress";
import Link from "@mui/material/Link";
import Paper from "@mui/material/Paper";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { useState, type FormEvent } from "react";
import { Link as RouterLink } from "react-router-dom";
import { api } from "../api/client";
import { useQueues } from "../api/hooks";
import { route } from "../api/routes";
import { num, type ResponseOf } from "../api/types";
import { JobStateChip } from "../components/JobTable";
import { EmptyState, ErrorBanner } from "../components/States";
import { fmtInt } from "../format";
import { enumLabel, useI18n } from "../i18n";

type SearchReply = ResponseOf<"SearchJobs">;
type Hit = NonNullable<SearchReply["hits"]>[number];

interface Criteria {
  text: string;
  namePrefix: string;
  jobId: string;
  queue: string;
}

export default function SearchPage() {
  const { t } = useI18n();
  const queues = useQueues();
  const [form, setForm] = useState<Criteria>({ text: "", namePrefix: "", jobId: "", queue: "" });
  const [asked, setAsked] = useState<Criteria | null>(null);
  const [hits, setHits] = useState<Hit[]>([]);
  const [progress, setProgress] = useState<{ scanned: number; total: number; next: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const empty = !form.text.trim() && !form.namePrefix.trim() && !form.jobId.trim() && !form.queue;

  async function run(criteria: Criteria, token: string) {
    setBusy(true);
    setError(null);
    try {
      const reply = await api<SearchReply>(route("/v1/jobs:search"), {
        query: {
          text: criteria.text.trim() || undefined,
          namePrefix: criteria.namePrefix.trim() || undefined,
          jobId: criteria.jobId.trim() || undefined,
          queues: criteria.queue ? [criteria.queue] : undefined,
          pageToken: token || undefined,
        },
      });
      setHits((previous) => (token ? [...previous, ...(reply.hits ?? [])] : (reply.hits ?? [])));
      setProgress({ scanned: num(reply.scanned ?? 0), total: num(reply.total ?? 0), next: reply.nextPageToken ?? "" });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  function submit(e: FormEvent) {
    e.preventDefault();
    if (empty) return;
    setAsked(form);
    setHits([]);
    setProgress(null);
    void run(form, "");
  }

  const field = (key: keyof Criteria) => ({
    value: form[key],
    onChange: (e: { target: { value: string } }) => setForm({ ...form, [key]: e.target.value }),
  });

  return (
    <Box>
      <Typography variant="h5" component="h1" sx={{ mb: 2 }}>
        {t("searchTitle")}
      </Typography>
      <Box component="form" role="search" aria-label={t("searchJobs")} onSubmit={submit} sx={{ display: "flex", gap: 1.5, mb: 2, flexWrap: "wrap" }}>
        <TextField size="small" id="search-text" label={t("searchText")} type="search" {...field("text")} sx={{ minWidth: 260 }} />
        <TextField size="small" id="search-name" label={t("searchNamePrefix")} {...field("namePrefix")} />
        <TextField size="small" id="search-id" label={t("searchJobId")} {...field("jobId")} />
        <TextField
          select
          size="small"
          id="search-queue"
          label={t("searchQueue")}
          {...field("queue")}
          slotProps={{ select: { native: true }, inputLabel: { shrink: true } }}
          sx={{ minWidth: 180 }}
        >
          <option value="">{t("searchAllQueues")}</option>
          {(queues.data ?? []).map((q) => (
            <option key={q.name} value={q.name}>
              {q.displayName || q.name}
            </option>
          ))}
        </TextField>
        <Box sx={{ pt: 0.25 }}>
          <Button type="submit" variant="contained" disabled={empty || busy}>
            {t("searchRun")}
          </Button>
        </Box>
      </Box>
      {empty && !asked ? <Typography color="text.secondary">{t("searchNeedsCriteria")}</Typography> : null}
      {error ? <ErrorBanner error={error} /> : null}
      {busy ? <LinearProgress aria-label={t("loading")} sx={{ mb: 1 }} /> : null}
      {progress ? (
        <Box role="status" aria-live="polite" sx={{ mb: 1 }} data-testid="search-progress">
          <Typography variant="body2">
            {t("searchHits", { count: fmtInt(hits.length) })} · {t("searchProgress", { scanned: fmtInt(progress.scanned), total: fmtInt(progress.total) })}
            {progress.next ? "" : ` · ${t("searchDone")}`}
          </Typography>
          {progress.total > 0 ? (
            <LinearProgress variant="determinate" value={Math.min(100, (100 * progress.scanned) / progress.total)} aria-label={t("searchProgress", { scanned: fmtInt(progress.scanned), total: fmtInt(progress.total) })} />
          ) : null}
        </Box>
      ) : null}
      {progress ? (
        <Paper variant="outlined" sx={{ overflowX: "auto" }}>
          {hits.length === 0 ? (
            <EmptyState>{t("searchNoHits")}</EmptyState>
          ) : (
            <Table size="small" aria-label={t("searchJobs")}>
              <TableHead>
                <TableRow>
                  <TableCell>{t("queue")}</TableCell>
                  <TableCell>{t("idHeader")}</TableCell>
                  <TableCell>{t("name")}</TableCell>
                  <TableCell>{t("state")}</TableCell>
                  <TableCell>{t("matched")}</TableCell>
                  <TableCell>{t("reason")}</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {hits.map((h) => (
                  <TableRow key={`${h.queue}/${h.job?.jobId}`} data-testid={`hit-${h.queue}-${h.job?.jobId}`}>
                    <TableCell translate="no">{h.queue}</TableCell>
                    <TableCell component="th" scope="row" sx={{ fontFamily: "monospace" }}>
                      <Link
                        component={RouterLink}
                        to={`/jobs?${new URLSearchParams({ queue: h.queue ?? "", job: h.job?.jobId ?? "" }).toString()}`}
                        aria-label={t("openInQueue", { id: h.job?.jobId ?? "", queue: h.queue ?? "" })}
                        translate="no"
                      >
                        {h.job?.jobId}
                      </Link>
                    </TableCell>
                    <TableCell translate="no">{h.job?.name}</TableCell>
                    <TableCell>
                      <JobStateChip state={h.job?.state} />
                    </TableCell>
                    <TableCell>{enumLabel(t, "matched", h.matched ?? "")}</TableCell>
                    <TableCell lang="en" sx={{ maxWidth: 320, overflow: "hidden", textOverflow: "ellipsis", whiteSpace: "nowrap" }}>
                      {h.job?.failedReason ?? ""}
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          )}
          {progress.next && asked ? (
            <Box sx={{ p: 1 }}>
              <Button onClick={() => void run(asked, progress.next)} disabled={busy}>
                {t("searchMore")}
              </Button>
            </Box>
          ) : null}
        </Paper>
      ) : null}
    </Box>
  );
}
