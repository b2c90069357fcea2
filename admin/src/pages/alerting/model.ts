// The alerting configuration as the editor holds it: the API's own JSON shapes (proto3 JSON mapping), and
// the pure helpers the editors share — threshold specs with the proto's ranges, the default-route rule,
// reordering, labels as text, and what is sent (secrets left empty keep the stored ones) or exported.

import type { components } from "../../api/schema.gen";

type Schemas = components["schemas"];
export type AlertingConfig = Schemas["workermon.incidents.v1.AlertingConfig"];
export type RuleThresholds = Schemas["workermon.incidents.v1.RuleThresholds"];
export type RuleOverride = Schemas["workermon.incidents.v1.RuleOverride"];
export type Channel = Schemas["workermon.incidents.v1.NotificationChannel"];
export type ChannelType = Schemas["workermon.incidents.v1.NotificationChannelType"];
export type SmtpServer = Schemas["workermon.incidents.v1.SmtpServer"];
export type NotificationRoute = Schemas["workermon.incidents.v1.NotificationRoute"];
export type EscalationStep = Schemas["workermon.incidents.v1.EscalationStep"];
export type IncidentType = Schemas["workermon.incidents.v1.IncidentType"];
export type Severity = Schemas["workermon.incidents.v1.Severity"];
export type TestAnswer = Schemas["workermon.incidents.v1.TestNotificationChannelResponse"];

export const CHANNEL_TYPES = ["SLACK", "WEBHOOK", "EMAIL", "KAKAOWORK", "PAGERDUTY"] as const;
export type ChannelKind = (typeof CHANNEL_TYPES)[number];
export const INCIDENT_TYPES = ["QUEUE_BACKLOG", "HIGH_FAILURE_RATE", "WORKER_DOWN", "SLOW_PROCESSING", "STATS_STALE"] as const;
export const SEVERITIES = ["CRITICAL", "WARNING", "INFO"] as const;
export const NAME_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
export const COMMENT_MAX = 2000;
export const GROUP_WAIT_DEFAULT = 30;

/** One RuleThresholds field: its JSON and proto names, unit, the range its proto comment gives. */
export interface ThresholdSpec {
  key: Exclude<keyof RuleThresholds, "enabled">;
  proto: string;
  unit: "ratio" | "minutes" | "jobs" | "beats" | "factor" | "ms";
  min: number;
  max?: number;
  /** The lower bound itself is refused: (0-1]. */
  minExclusive?: boolean;
  integer?: boolean;
  /** An int64: a decimal string in JSON. */
  int64?: boolean;
}

export const THRESHOLDS: readonly ThresholdSpec[] = [
  { key: "failureRateThreshold", proto: "failure_rate_threshold", unit: "ratio", min: 0, max: 1, minExclusive: true },
  { key: "failureRateWindowMinutes", proto: "failure_rate_window_minutes", unit: "minutes", min: 1, max: 1440, integer: true },
  { key: "failureRateMinJobs", proto: "failure_rate_min_jobs", unit: "jobs", min: 1, max: 1_000_000, integer: true },
  { key: "failureRatePendingMinutes", proto: "failure_rate_pending_minutes", unit: "minutes", min: 0, max: 1440 },
  { key: "backlogThreshold", proto: "backlog_threshold", unit: "jobs", min: 0, integer: true, int64: true },
  { key: "backlogPendingMinutes", proto: "backlog_pending_minutes", unit: "minutes", min: 0, max: 1440 },
  { key: "stuckMinutes", proto: "stuck_minutes", unit: "minutes", min: 1, max: 1440 },
  { key: "noWorkersPendingMinutes", proto: "no_workers_pending_minutes", unit: "minutes", min: 0, max: 1440 },
  { key: "workerDownMissedBeats", proto: "worker_down_missed_beats", unit: "beats", min: 1, max: 1000, integer: true },
  { key: "slowProcessingFactor", proto: "slow_processing_factor", unit: "factor", min: 1, max: 1000 },
  { key: "slowProcessingFloorMs", proto: "slow_processing_floor_ms", unit: "ms", min: 0 },
  { key: "slowProcessingBaselineMinutes", proto: "slow_processing_baseline_minutes", unit: "minutes", min: 5, max: 1440, integer: true },
  { key: "slowProcessingPendingMinutes", proto: "slow_processing_pending_minutes", unit: "minutes", min: 0, max: 1440 },
  { key: "incidentQuietMinutes", proto: "incident_quiet_minutes", unit: "minutes", min: 0, max: 1440 },
];

/** A threshold's value as an input shows it ("" when unset). */
export function thresholdText(t: RuleThresholds | undefined, spec: ThresholdSpec): string {
  const v = t?.[spec.key];
  return v === undefined || v === null ? "" : String(v);
}

/** The thresholds with one field set from an input's text ("" unsets it). */
export function withThreshold(t: RuleThresholds | undefined, spec: ThresholdSpec, text: string): RuleThresholds {
  const next: Record<string, unknown> = { ...(t ?? {}) };
  if (text.trim() === "") delete next[spec.key];
  else next[spec.key] = spec.int64 ? text.trim() : Number(text);
  return next as RuleThresholds;
}

/** Why a threshold's value is refused (null when fine or unset). */
export function thresholdRange(spec: ThresholdSpec, text: string): { min: number; max?: number; bad: boolean } {
  const n = Number(text);
  const bad =
    text.trim() !== "" &&
    (!Number.isFinite(n) || (spec.integer && !Number.isInteger(n)) || (spec.minExclusive ? n <= spec.min : n < spec.min) || (spec.max !== undefined && n > spec.max));
  return { min: spec.min, max: spec.max, bad };
}

/** "key=value, key=value" of a labels map. */
export function labelsText(labels: Record<string, string> | undefined): string {
  return Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
}

/** "key=value, key=value" as a map; null when a pair has no "=" or no key. */
export function parseLabels(text: string): Record<string, string> | null {
  const out: Record<string, string> = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const at = part.indexOf("=");
    if (at <= 0) return null;
    out[part.slice(0, at).trim()] = part.slice(at + 1).trim();
  }
  return out;
}

/** The list with item `from` moved to `to` (both in range; otherwise the list unchanged). */
export function move<T>(items: readonly T[], from: number, to: number): T[] {
  if (from < 0 || to < 0 || from >= items.length || to >= items.length) return [...items];
  const out = [...items];
  const [item] = out.splice(from, 1);
  out.splice(to, 0, item);
  return out;
}

/** Whether a route has no matcher, so it takes every incident (what the last route must do). */
export function matchesEverything(r: NotificationRoute): boolean {
  return !(r.types ?? []).length && !(r.severities ?? []).length && !r.queueGlob && !Object.keys(r.workerLabels ?? {}).length;
}

/** Whether the routes break the default-route rule: some are set and the last one does not match everything. */
export function lacksDefaultRoute(routes: readonly NotificationRoute[]): boolean {
  return routes.length > 0 && !matchesEverything(routes[routes.length - 1]);
}

/** A route that matches everything, named so it does not clash with the others. */
export function defaultRoute(routes: readonly NotificationRoute[], channels: string[]): NotificationRoute {
  const names = new Set(routes.map((r) => r.name));
  let name = "default";
  for (let i = 2; names.has(name); i++) name = `default-${i}`;
  return { name, types: [], severities: [], queueGlob: "", workerLabels: {}, channels, continueMatching: false, groupWaitSeconds: GROUP_WAIT_DEFAULT, escalations: [] };
}

/** A new route with no matcher yet. */
export function newRoute(routes: readonly NotificationRoute[]): NotificationRoute {
  const names = new Set(routes.map((r) => r.name));
  let name = `route-${routes.length + 1}`;
  for (let i = routes.length + 2; names.has(name); i++) name = `route-${i}`;
  return { ...defaultRoute([], []), name };
}

/** The channel's type as its short name (SLACK, …). */
export function kindOf(c: Channel): ChannelKind | "" {
  const short = (c.type ?? "").replace("NOTIFICATION_CHANNEL_TYPE_", "");
  return (CHANNEL_TYPES as readonly string[]).includes(short) ? (short as ChannelKind) : "";
}

/** Where a channel delivers, without secrets: the URL hint, the SMTP host, or the routing key's hint. */
export function targetHint(c: Channel): string {
  const kind = kindOf(c);
  if (kind === "EMAIL") return c.smtp?.host ? `${c.smtp.host}${c.smtp.port ? `:${c.smtp.port}` : ""}` : "";
  if (kind === "PAGERDUTY") return c.routingKeyHint ? `…${c.routingKeyHint}` : "";
  // A URL typed but not saved yet: its origin only (the path of a webhook URL is its secret).
  if (c.url) {
    try {
      return `${new URL(c.url).origin}/…`;
    } catch {
      return "";
    }
  }
  return c.urlHint ?? "";
}

/** Whether the stored channel has its secret: a URL, an SMTP password, a routing key. */
export function storedSecret(c: Channel | undefined, which: "url" | "password" | "routingKey"): boolean {
  if (!c) return false;
  if (which === "url") return !!c.urlHint;
  if (which === "password") return !!c.smtp?.passwordSet;
  return !!c.routingKeyHint;
}

const OUTPUT_ONLY_CONFIG = ["revision", "author", "createTime"] as const;

/** A channel without its output-only hints (what is sent and exported). */
export function channelInput(c: Channel): Channel {
  const { urlHint: _u, routingKeyHint: _r, ...rest } = c;
  if (!rest.smtp) return rest;
  const { passwordSet: _p, ...smtp } = rest.smtp;
  return { ...rest, smtp };
}

/** The configuration without output-only fields (revision, author, time, secret hints): what is sent. */
export function configInput(c: AlertingConfig): AlertingConfig {
  const out: Record<string, unknown> = { ...c };
  for (const k of OUTPUT_ONLY_CONFIG) delete out[k];
  const input = out as AlertingConfig;
  return { ...input, channels: (c.channels ?? []).map(channelInput) };
}

// proto3 `optional` fields: present even at their default value (an override's 0 is not "unset").
const OPTIONAL_FIELDS = new Set<string>([...THRESHOLDS.map((s) => s.key), "enabled", "sendResolved", "sendAcknowledged", "groupWaitSeconds"]);

/** A JSON value without the fields at their default value, as protobuf's JSON printer leaves them out. */
function prune(value: unknown, key = ""): unknown {
  if (Array.isArray(value)) return value.map((v) => prune(v));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const pruned = prune(v, k);
      if (pruned !== undefined) out[k] = pruned;
    }
    return out;
  }
  if (OPTIONAL_FIELDS.has(key)) return value;
  if (value === "" || value === 0 || value === false || value === null) return undefined;
  return value;
}

/** Drop the empty lists and maps protobuf's JSON printer leaves out, inside objects only. */
function dropEmpty(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropEmpty);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const inner = dropEmpty(v);
      const empty = Array.isArray(inner) ? inner.length === 0 : !!inner && typeof inner === "object" && Object.keys(inner).length === 0 && !OPTIONAL_FIELDS.has(k);
      if (!empty) out[k] = inner;
    }
    return out;
  }
  return value;
}

/** The export: the proto JSON of the configuration without output-only fields (as `workermon alerting export`). */
export function exportJson(c: AlertingConfig): string {
  return `${JSON.stringify(dropEmpty(prune(configInput(c))), null, 2)}\n`;
}

/** An empty configuration, for when none has been stored yet. */
export function emptyConfig(): AlertingConfig {
  return { revision: "0", defaults: {}, overrides: [], channels: [], routes: [] };
}
