import Link from "@mui/material/Link";
import Skeleton from "@mui/material/Skeleton";
import { Suspense, lazy } from "react";
import { Link as RouterLink, useLocation } from "react-router-dom";
import { useWorkerHistory } from "../api/hooks";
import { useI18n } from "../i18n";

const ActiveJobsSpark = lazy(() => import("../charts/WorkerCharts").then((m) => ({ default: m.ActiveJobsSpark })));

const SPARK_MINUTES = 60;

/** A worker row's last hour of active jobs; a link to the worker's 24-hour detail (/workers/:id). */
export function WorkerSpark({ workerId }: { workerId: string }) {
  const { t } = useI18n();
  const { search } = useLocation();
  // One hour per row, not the day the detail view reads: a page of workers stays a page of small answers.
  const history = useWorkerHistory(workerId, SPARK_MINUTES);
  const placeholder = <Skeleton variant="rectangular" width={120} height={32} />;
  return (
    <Link
      component={RouterLink}
      to={{ pathname: `/workers/${encodeURIComponent(workerId)}`, search }}
      aria-label={`${t("workerActivity")}: ${workerId}`}
      data-testid={`worker-spark-${workerId}`}
      sx={{ display: "block", width: 120 }}
    >
      {history.data ? (
        <Suspense fallback={placeholder}>
          <ActiveJobsSpark points={history.data.points ?? []} minutes={SPARK_MINUTES} />
        </Suspense>
      ) : (
        placeholder
      )}
    </Link>
  );
}
