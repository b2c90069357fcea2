import { num, type Int64 } from "./api/types";

const nf = new Intl.NumberFormat("en-US");
// The locale of dates and times: the language the UI shows (set by the I18nProvider).
let dateLocale = "en-US";

/** Format dates and times for `locale` from now on. */
export function setFormatLocale(locale: string): void {
  dateLocale = locale;
}

/** The locale dates and times are formatted for. */
export function formatLocale(): string {
  return dateLocale;
}

export function fmtInt(value: Int64 | null): string {
  return nf.format(num(value ?? undefined));
}

export function fmtMs(value: number | Int64 | null | undefined): string {
  if (value === undefined || value === null || value === "") return "—";
  const ms = num(value);
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

export function fmtPercent(rate: number | undefined): string {
  if (rate === undefined || rate === null) return "—";
  const pct = rate <= 1 ? rate * 100 : rate;
  return `${pct.toFixed(pct >= 99.95 || pct === 0 ? 0 : 1)}%`;
}

export function fmtBytes(value: Int64): string {
  const b = num(value);
  if (b < 1024) return `${b} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KB`;
  if (b < 1024 ** 3) return `${(b / 1024 / 1024).toFixed(1)} MB`;
  return `${(b / 1024 ** 3).toFixed(1)} GB`;
}

export function fmtTime(iso: string | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(dateLocale);
}

export function fmtDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}
