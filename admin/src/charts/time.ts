// Helpers of the history charts that need no chart library: time-axis labels, failure categories,
// and minute grids for a worker's sparse history.
import { num, type TrendPoint, type WorkerHistoryPoint } from "../api/types";
import { formatLocale } from "../format";

/** The ranges of the queue page, as kept in its URL (`?range=7d`), with the hours each asks for. */
export const TREND_RANGES = [
  { key: "1h", hours: 1, label: "1 h" },
  { key: "6h", hours: 6, label: "6 h" },
  { key: "24h", hours: 24, label: "24 h" },
  { key: "7d", hours: 24 * 7, label: "7 d" },
  { key: "30d", hours: 24 * 30, label: "30 d" },
] as const;

export type TrendRange = (typeof TREND_RANGES)[number];

/** The range named in the URL, or the first (1 h) for a missing or unknown one. */
export function trendRange(key: string | null): TrendRange {
  return TREND_RANGES.find((r) => r.key === key) ?? TREND_RANGES[0];
}

/**
 * A time on the axis of a chart spanning `hours`: ticks show the time of day within a day, weekday and
 * hour within a week, the date beyond; tooltips always show date and time.
 */
export function axisTime(date: Date, hours: number, tick: boolean, locale?: string): string {
  if (!tick) return date.toLocaleString(locale, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  if (hours <= 24) return date.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
  if (hours <= 24 * 7) return date.toLocaleString(locale, { weekday: "short", hour: "2-digit", minute: "2-digit" });
  return date.toLocaleDateString(locale, { month: "short", day: "numeric" });
}

const compactFormats = new Map<string, Intl.NumberFormat>();

/** A value axis' tick: short enough for the axis (1.2K, 196.4, 29.5). */
export function axisNumber(value: number | null): string {
  if (value === null) return "";
  // In the UI's language: 1.2K in English, 1.2천 in Korean.
  const locale = formatLocale();
  let compact = compactFormats.get(locale);
  if (compact === undefined) {
    compact = new Intl.NumberFormat(locale, { notation: "compact", maximumFractionDigits: 1 });
    compactFormats.set(locale, compact);
  }
  return compact.format(value);
}

/** The value axis of the history charts: compact ticks in a fixed width, so long numbers are not cut. */
export const VALUE_AXIS = [{ valueFormatter: axisNumber, width: 48 }];

/** The failure categories with at least one failure in the points, most failures first. */
export function failureCategories(points: TrendPoint[]): string[] {
  const totals = new Map<string, number>();
  for (const p of points) {
    for (const [category, n] of Object.entries(p.failuresByCategory ?? {})) {
      totals.set(category, (totals.get(category) ?? 0) + num(n));
    }
  }
  return [...totals.entries()]
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([category]) => category);
}

// The collector's own categories keep their colour whatever else is in range.
const CATEGORY_COLORS: Record<string, string> = {
  timeout: "#ed6c02",
  network: "#0288d1",
  rate_limit: "#9c27b0",
  auth: "#d32f2f",
  validation: "#2e7d32",
  browser: "#795548",
  unknown: "#757575",
};
const EXTRA_COLORS = ["#00897b", "#5c6bc0", "#c2185b", "#afb42b", "#6d4c41", "#455a64"];

/** A stable colour for a failure category (configured categories get one by their name). */
export function categoryColor(category: string): string {
  const known = CATEGORY_COLORS[category];
  if (known) return known;
  let hash = 0;
  for (const ch of category) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return EXTRA_COLORS[hash % EXTRA_COLORS.length];
}

/**
 * A line series' `showMark`: a mark only on a value with no value on either side, which a line alone
 * would not show at all (one collected minute in a range of gaps).
 */
export function markIsolated(data: (number | null)[]): (params: { index: number }) => boolean {
  return ({ index }) => data[index] !== null && (data[index - 1] ?? null) === null && (data[index + 1] ?? null) === null;
}

const MINUTE_MS = 60_000;

/**
 * A worker's history on a grid of every minute from `startMs` to `endMs`: one slot per minute, null where
 * the worker did not beat (a gap, not a zero), so the charts break their lines there.
 */
export function minuteGrid(
  points: WorkerHistoryPoint[],
  startMs: number,
  endMs: number,
): { times: Date[]; at: (WorkerHistoryPoint | null)[] } {
  const first = Math.floor(startMs / MINUTE_MS) * MINUTE_MS;
  const count = Math.max(0, Math.ceil((endMs - first) / MINUTE_MS));
  const at: (WorkerHistoryPoint | null)[] = new Array<WorkerHistoryPoint | null>(count).fill(null);
  for (const p of points) {
    const index = Math.floor((new Date(p.time ?? 0).getTime() - first) / MINUTE_MS);
    if (index >= 0 && index < count) at[index] = p;
  }
  return { times: Array.from({ length: count }, (_, i) => new Date(first + i * MINUTE_MS)), at };
}

/** The names of the custom gauges any of the points carries, sorted. */
export function gaugeNames(points: WorkerHistoryPoint[]): string[] {
  const names = new Set<string>();
  for (const p of points) for (const name of Object.keys(p.gauges?.custom ?? {})) names.add(name);
  return [...names].sort();
}
