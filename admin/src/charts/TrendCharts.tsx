// Loaded on demand: the chart library stays out of the first view's bundle.
import Box from "@mui/material/Box";
import Typography from "@mui/material/Typography";
import { LineChart } from "@mui/x-charts/LineChart";
import { SparkLineChart } from "@mui/x-charts/SparkLineChart";
import { num, type TrendPoint } from "../api/types";
import { formatLocale } from "../format";
import { VALUE_AXIS, axisTime, categoryColor, failureCategories, markIsolated } from "./time";

function series(points: TrendPoint[], pick: (p: TrendPoint) => number | null) {
  return points.map((p) => (p.hasData ? pick(p) : null));
}

/** A line of the points, gaps left open, with a mark where a bucket stands alone between gaps. */
function line(points: TrendPoint[], pick: (p: TrendPoint) => number | null, label: string, color?: string) {
  const data = series(points, pick);
  return { data, label, color, showMark: markIsolated(data), connectNulls: false };
}

export function Sparkline({ points, label }: { points: TrendPoint[]; label: string }) {
  const data = points.map((p) => (p.hasData ? num(p.completed) + num(p.failed) : 0));
  return (
    <Box role="img" aria-label={label} sx={{ height: 48 }}>
      <SparkLineChart data={data} height={48} area curve="linear" />
    </Box>
  );
}

export interface TrendLabels {
  throughput: string;
  completed: string;
  failed: string;
  /** Jobs BullMQ found stalled in a bucket. */
  stalled: string;
  backlog: string;
  waiting: string;
  delayed: string;
  active: string;
  processing: string;
  wait: string;
  failuresByCategory: string;
  noFailures: string;
  /** A failure category's name as the UI shows it (translated). */
  category: (name: string) => string;
}

interface TrendProps {
  points: TrendPoint[];
  labels: TrendLabels;
  /** The range shown, in hours: the time axis is labelled by it (times of day up to a day, dates beyond). */
  hours: number;
}

type Series = NonNullable<Parameters<typeof LineChart>[0]["series"]>;

export function TrendCharts({ points, labels, hours }: TrendProps) {
  const times = points.map((p) => new Date(p.time ?? 0));
  // Times in the UI's language (the chart's own default names months and AM/PM in English).
  const x = [
    {
      data: times,
      scaleType: "time" as const,
      valueFormatter: (d: Date, c: { location: string }) => axisTime(d, hours, c.location === "tick", formatLocale()),
    },
  ];
  const height = 200;
  const categories = failureCategories(points);
  const plot = (series: Series) => <LineChart height={height} xAxis={x} yAxis={VALUE_AXIS} series={series} />;
  const chart = (label: string, series: Series) => (
    <Box role="img" aria-label={label}>
      <Typography variant="subtitle2">{label}</Typography>
      {plot(series)}
    </Box>
  );
  const percentiles = (pick: (p: TrendPoint) => TrendPoint["wait"]) => [
    line(points, (p) => pick(p)?.p95Ms ?? null, "p95"),
    line(points, (p) => pick(p)?.p50Ms ?? null, "p50"),
  ];
  return (
    <Box sx={{ display: "grid", gridTemplateColumns: { xs: "1fr", lg: "1fr 1fr 1fr" }, gap: 2 }}>
      {chart(labels.throughput, [
        line(points, (p) => num(p.completed), labels.completed),
        line(points, (p) => num(p.failed), labels.failed, "#d32f2f"),
        line(points, (p) => num(p.stalled), labels.stalled, "#ed6c02"),
      ])}
      {chart(labels.backlog, [
        line(points, (p) => num(p.counts?.waiting), labels.waiting),
        line(points, (p) => num(p.counts?.active), labels.active),
        line(points, (p) => num(p.counts?.delayed), labels.delayed),
      ])}
      {chart(labels.processing, percentiles((p) => p.processing))}
      {chart(labels.wait, percentiles((p) => p.wait))}
      <Box sx={{ gridColumn: { lg: "span 2" } }} data-testid="failure-categories">
        <Typography variant="subtitle2">{labels.failuresByCategory}</Typography>
        {categories.length === 0 ? (
          <Box data-testid="failure-categories-empty" sx={{ height, display: "grid", placeItems: "center", color: "text.secondary" }}>
            <Typography variant="body2">{labels.noFailures}</Typography>
          </Box>
        ) : (
          <Box role="img" aria-label={labels.failuresByCategory}>
            {plot(
              categories.map((category) => ({
                // Stacked areas: the top edge is the bucket's failures, each band one category's share.
                data: points.map((p) => num(p.failuresByCategory?.[category])),
                label: labels.category(category),
                stack: "failures",
                area: true,
                showMark: false,
                color: categoryColor(category),
              })),
            )}
          </Box>
        )}
      </Box>
    </Box>
  );
}

export default TrendCharts;
