import Skeleton from "@mui/material/Skeleton";
import { Suspense, lazy } from "react";
import { useTrend } from "../api/hooks";

const Sparkline = lazy(() => import("../charts/TrendCharts").then((m) => ({ default: m.Sparkline })));

export function QueueSpark({ name, label }: { name: string; label: string }) {
  const trend = useTrend(name, 1);
  if (!trend.data) return <Skeleton variant="rectangular" height={48} />;
  return (
    <Suspense fallback={<Skeleton variant="rectangular" height={48} />}>
      <Sparkline points={trend.data.points ?? []} label={label} />
    </Suspense>
  );
}
