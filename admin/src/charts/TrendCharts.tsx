// Loaded on demand: the chart library stays out of the first view's bundle.
import Box from "@mui/material/Box";
import Typography from "@mui/material/Typography";
import { LineChart } from "@mui/x-charts/LineChart";
import { SparkLineChart } from "@mui/x-charts/SparkLineChart";
import { num, type TrendPoint } from "../api/types";
import { formatLocale } from "../format";

function series(points: TrendPoint[], pick: (p: TrendPoint) => number | null) {
  return points.map((p) => (p.hasData ? pick(p) : null));
}

export function Sparkline({ points, label }: { points: TrendPoint[]; label: string }) {
  const data = points.map((p) => (p.hasData ? num(p.completed) + num(p.failed) : 0));
  return (
    <Box role="img" aria-label={label} sx={{ height: 48 }}>
      <SparkLineChart data={data} height={48} area curve="linear" />
    </Box>
  );
}

interface TrendProps {
  points: TrendPoint[];
  labels: { throughput: string; completed: string; failed: string; backlog: string; waiting: string; delayed: string; active: string; processing: string };
}

export function TrendCharts({ points, labels }: TrendProps) {
  const times = points.map((p) => new Date(p.time ?? 0));
  // Hours and minutes in the UI's language (the chart's own default names months and AM/PM in English).
  const x = [
    {
      data: times,
      scaleType: "time" as const,
      valueFormatter: (d: Date) => d.toLocaleTimeString(formatLocale(), { hour: "2-digit", minute: "2-digit" }),
    },
  ];
  const height = 200;
  return (
    <Box sx={{ display: "grid", gridTemplateColumns: { xs: "1fr", lg: "1fr 1fr 1fr" }, gap: 2 }}>
      <Box role="img" aria-label={labels.throughput}>
        <Typography variant="subtitle2">{labels.throughput}</Typography>
        <LineChart
          height={height}
          xAxis={x}
          series={[
            { data: series(points, (p) => num(p.completed)), label: labels.completed, showMark: false, connectNulls: false },
            { data: series(points, (p) => num(p.failed)), label: labels.failed, showMark: false, color: "#d32f2f" },
          ]}
        />
      </Box>
      <Box role="img" aria-label={labels.backlog}>
        <Typography variant="subtitle2">{labels.backlog}</Typography>
        <LineChart
          height={height}
          xAxis={x}
          series={[
            { data: series(points, (p) => num(p.counts?.waiting)), label: labels.waiting, showMark: false },
            { data: series(points, (p) => num(p.counts?.active)), label: labels.active, showMark: false },
            { data: series(points, (p) => num(p.counts?.delayed)), label: labels.delayed, showMark: false },
          ]}
        />
      </Box>
      <Box role="img" aria-label={labels.processing}>
        <Typography variant="subtitle2">{labels.processing}</Typography>
        <LineChart
          height={height}
          xAxis={x}
          series={[
            { data: series(points, (p) => (p.processing?.p95Ms ?? null)), label: "p95", showMark: false },
            { data: series(points, (p) => (p.processing?.p50Ms ?? null)), label: "p50", showMark: false },
          ]}
        />
      </Box>
    </Box>
  );
}

export default TrendCharts;
