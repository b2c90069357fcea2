import Box from "@mui/material/Box";
import Chip from "@mui/material/Chip";
import Drawer from "@mui/material/Drawer";
import IconButton from "@mui/material/IconButton";
import Skeleton from "@mui/material/Skeleton";
import Typography from "@mui/material/Typography";
import CloseIcon from "@mui/icons-material/Close";
import { Suspense, lazy, useMemo } from "react";
import { useLocation, useNavigate, useParams } from "react-router-dom";
import { useWorkerHistory } from "../api/hooks";
import { EmptyState, ErrorBanner } from "../components/States";
import { useI18n } from "../i18n";

const WorkerCharts = lazy(() => import("../charts/WorkerCharts"));

const DAY_MINUTES = 24 * 60;

/** /workers/:id: a drawer over the Workers page with the worker's last 24 hours. */
export default function WorkerDetail() {
  const { t } = useI18n();
  const { id = "" } = useParams();
  const navigate = useNavigate();
  const { search } = useLocation();
  const history = useWorkerHistory(id, DAY_MINUTES);
  // The window the charts span: fixed per answer, so a refetch moves it and a re-render does not.
  const { startMs, endMs } = useMemo(() => {
    const end = history.dataUpdatedAt || Date.now();
    return { startMs: end - DAY_MINUTES * 60_000, endMs: end };
  }, [history.dataUpdatedAt]);
  const points = history.data?.points ?? [];
  const title = t("workerDetails", { name: id });
  const close = () => navigate({ pathname: "/workers", search });
  return (
    <Drawer anchor="right" open onClose={close} slotProps={{ paper: { sx: { width: { xs: "100%", md: 860 }, p: 2 } } }}>
      <Box role="dialog" aria-label={title} sx={{ display: "flex", flexDirection: "column", gap: 1 }}>
        <Box sx={{ display: "flex", alignItems: "center", gap: 1 }}>
          <Typography variant="h6" component="h2" sx={{ fontFamily: "monospace" }}>
            {id}
          </Typography>
          <Chip size="small" label={t("workerHistory")} />
          <Box sx={{ flexGrow: 1 }} />
          <IconButton aria-label={t("close")} onClick={close} size="small">
            <CloseIcon fontSize="small" />
          </IconButton>
        </Box>
        {history.error ? <ErrorBanner error={history.error} onRetry={() => void history.refetch()} /> : null}
        {history.isPending ? (
          <Skeleton variant="rectangular" height={360} />
        ) : history.data && points.length === 0 ? (
          <EmptyState>{t("noWorkerHistory")}</EmptyState>
        ) : history.data ? (
          <Suspense fallback={<Skeleton variant="rectangular" height={360} />}>
            <WorkerCharts
              points={points}
              startMs={startMs}
              endMs={endMs}
              labels={{
                activeJobs: t("activeJobs"),
                concurrency: t("concurrency"),
                cpu: t("cpuPercent"),
                rss: t("rssMb"),
                custom: t("customGauges"),
              }}
            />
          </Suspense>
        ) : null}
      </Box>
    </Drawer>
  );
}
