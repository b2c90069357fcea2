import Link from "@mui/material/Link";
import Skeleton from "@mui/material/Skeleton";
import { Suspense, lazy, useCallback, useRef, useState } from "react";
import { Link as RouterLink, useLocation } from "react-router-dom";
import { useWorkerHistory } from "../api/hooks";
import { useI18n } from "../i18n";

const ActiveJobsSpark = lazy(() => import("../charts/WorkerCharts").then((m) => ({ default: m.ActiveJobsSpark })));

const SPARK_MINUTES = 60;

/** A ref for an element, and whether it has been on screen yet (always true without IntersectionObserver). */
function useSeen(): [(node: Element | null) => void, boolean] {
  const [seen, setSeen] = useState(() => typeof IntersectionObserver === "undefined");
  const observer = useRef<IntersectionObserver | null>(null);
  const ref = useCallback((node: Element | null) => {
    observer.current?.disconnect();
    observer.current = null;
    if (!node || typeof IntersectionObserver === "undefined") return;
    observer.current = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) {
        setSeen(true);
        observer.current?.disconnect();
      }
    });
    observer.current.observe(node);
  }, []);
  return [ref, seen];
}

/** A worker row's last hour of active jobs; a link to the worker's 24-hour detail (/workers/:id). */
export function WorkerSpark({ workerId }: { workerId: string }) {
  const { t } = useI18n();
  const { search } = useLocation();
  // One hour per row, not the day the detail view reads, and only for rows that have been on screen: a
  // long list of workers asks for the history of those the operator looks at.
  const [seenRef, seen] = useSeen();
  const history = useWorkerHistory(workerId, SPARK_MINUTES, seen);
  const placeholder = <Skeleton variant="rectangular" width={120} height={32} />;
  return (
    <Link
      component={RouterLink}
      to={{ pathname: `/workers/${encodeURIComponent(workerId)}`, search }}
      aria-label={`${t("workerActivity")}: ${workerId}`}
      data-testid={`worker-spark-${workerId}`}
      ref={seenRef}
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
