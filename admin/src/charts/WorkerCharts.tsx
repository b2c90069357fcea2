// Loaded on demand, like the queue charts: a worker's history over the last minutes or day.
import Box from "@mui/material/Box";
import Typography from "@mui/material/Typography";
import { LineChart } from "@mui/x-charts/LineChart";
import { SparkLineChart } from "@mui/x-charts/SparkLineChart";
import { num, type WorkerHistoryPoint } from "../api/types";
import { formatLocale } from "../format";
import { VALUE_AXIS, axisTime, gaugeNames, markIsolated, minuteGrid } from "./time";

/** Active jobs per minute over the last `minutes`, as a sparkline (0 where the worker did not beat: a
 * sparkline cannot break its line; the detail view's charts show those minutes as gaps). */
export function ActiveJobsSpark({ points, minutes }: { points: WorkerHistoryPoint[]; minutes: number }) {
  const now = Date.now();
  const { at } = minuteGrid(points, now - minutes * 60_000, now);
  return (
    <Box sx={{ height: 32 }}>
      <SparkLineChart data={at.map((p) => (p ? num(p.activeJobs) : 0))} height={32} curve="linear" />
    </Box>
  );
}

export interface WorkerChartLabels {
  activeJobs: string;
  concurrency: string;
  cpu: string;
  rss: string;
  custom: string;
}

/** The worker's charts over [startMs, endMs): active jobs and concurrency, CPU, RSS, each custom gauge. */
export function WorkerCharts({
  points,
  startMs,
  endMs,
  labels,
}: {
  points: WorkerHistoryPoint[];
  startMs: number;
  endMs: number;
  labels: WorkerChartLabels;
}) {
  const { times, at } = minuteGrid(points, startMs, endMs);
  const hours = (endMs - startMs) / 3_600_000;
  const x = [{ data: times, scaleType: "time" as const, valueFormatter: (d: Date, c: { location: string }) => axisTime(d, hours, c.location === "tick", formatLocale()) }];
  const pick = (f: (p: WorkerHistoryPoint) => number) => at.map((p) => (p ? f(p) : null));
  const gauges = gaugeNames(points);
  const height = 180;
  const chart = (label: string, series: { data: (number | null)[]; label: string }[]) => (
    <Box role="img" aria-label={label} key={label}>
      <Typography variant="subtitle2">{label}</Typography>
      <LineChart height={height} xAxis={x} yAxis={VALUE_AXIS} series={series.map((s) => ({ ...s, showMark: markIsolated(s.data), connectNulls: false }))} />
    </Box>
  );
  return (
    <Box sx={{ display: "grid", gridTemplateColumns: { xs: "1fr", md: "1fr 1fr" }, gap: 2 }}>
      {chart(labels.activeJobs, [
        { data: pick((p) => num(p.activeJobs)), label: labels.activeJobs },
        { data: pick((p) => num(p.concurrency)), label: labels.concurrency },
      ])}
      {chart(labels.cpu, [{ data: pick((p) => p.gauges?.cpuPercent ?? 0), label: labels.cpu }])}
      {chart(labels.rss, [{ data: pick((p) => num(p.gauges?.rssBytes) / (1024 * 1024)), label: labels.rss }])}
      {gauges.length > 0
        ? chart(
            labels.custom,
            // A gauge a minute's beat did not carry is a gap in that gauge's line.
            gauges.map((name) => ({ data: at.map((p) => p?.gauges?.custom?.[name] ?? null), label: name })),
          )
        : null}
    </Box>
  );
}

export default WorkerCharts;
