// Shapes of the gateway's JSON (proto3 JSON mapping): int64 as strings, enums as full names,
// fields at their default value omitted. Read numbers through `num()`.

export type Int64 = string | number | undefined;

export interface JobCounts {
  waiting?: Int64;
  active?: Int64;
  delayed?: Int64;
  prioritized?: Int64;
  waitingChildren?: Int64;
  completed?: Int64;
  failed?: Int64;
}

export interface Durations {
  samples?: Int64;
  p50Ms?: number;
  p95Ms?: number;
  p99Ms?: number;
  avgMs?: number;
}

export interface ActiveIncident {
  incidentId?: string;
  type?: string;
  severity?: string;
  title?: string;
  queue?: string;
  startTime?: string;
}

export interface Overview {
  counts?: JobCounts;
  queuesTotal?: number;
  pausedQueues?: string[];
  degradedQueues?: string[];
  workersOnline?: number;
  workersOffline?: number;
  jobsPerMinute?: Int64;
  failuresPerMinute?: Int64;
  successRate24h?: number;
  completed24h?: Int64;
  failed24h?: Int64;
  processingP95Ms15m?: number;
  activeIncidents?: ActiveIncident[];
  metricsMinuteTime?: string;
}

export interface Queue {
  name: string;
  displayName?: string;
  status?: string;
  statusReason?: string;
  counts?: JobCounts;
  paused?: boolean;
  onlineWorkers?: number;
  jobsPerMinute?: Int64;
  failuresPerMinute?: Int64;
  processing?: Durations;
  latencyMs?: Int64;
  topFailureCategories?: { category?: string; count?: Int64 }[];
  completed24h?: Int64;
  failed24h?: Int64;
  successRate24h?: number;
  metricsMinuteTime?: string;
}

export interface SnapshotPoint {
  time?: string;
  hasData?: boolean;
  counts?: JobCounts;
  paused?: boolean;
  completed?: Int64;
  failed?: Int64;
  retried?: Int64;
  processing?: Durations;
  wait?: Durations;
  onlineWorkers?: number;
}

export interface QueueTrend {
  queue?: string;
  step?: string;
  points?: SnapshotPoint[];
  resolution?: string;
}

export interface JobSummary {
  jobId: string;
  name?: string;
  state?: string;
  attemptsMade?: number;
  maxAttempts?: number;
  createTime?: string;
  processTime?: string;
  finishTime?: string;
  durationMs?: Int64;
  failedReason?: string;
  failureCategory?: string;
  delayMs?: Int64;
  priority?: number;
}

export interface ListJobsResponse {
  jobs?: JobSummary[];
  nextPageToken?: string;
  totalSize?: Int64;
}

export interface TimelineEntry {
  kind?: string;
  time?: string;
  detail?: string;
}

export interface Job {
  summary?: JobSummary;
  queue?: string;
  data?: string;
  dataTruncated?: boolean;
  dataBytes?: Int64;
  returnValue?: string;
  returnValueTruncated?: boolean;
  returnValueBytes?: Int64;
  options?: string;
  progress?: string;
  stacktrace?: string[];
  logs?: string[];
  logsTotal?: Int64;
  processedBy?: string;
  workerId?: string;
  failedReason?: string;
  parentKey?: string;
  timeline?: TimelineEntry[];
}

export interface WorkerReport {
  workerId: string;
  instanceId?: string;
  hostname?: string;
  pid?: number;
  queues?: string[];
  labels?: Record<string, string>;
  version?: string;
  concurrency?: number;
  activeJobs?: number;
  processedTotal?: Int64;
  failedTotal?: Int64;
  activeJobIds?: string[];
  gauges?: { cpuPercent?: number; rssBytes?: Int64; eventLoopLagMs?: number; custom?: Record<string, number> };
  state?: string;
  startedAt?: string;
  sdk?: string;
}

export interface Worker {
  report?: WorkerReport;
  status?: string;
  firstSeenTime?: string;
  lastSeenTime?: string;
  offlineReason?: string;
}

export interface Incident {
  id: string;
  fingerprint?: string;
  type?: string;
  severity?: string;
  status?: string;
  queue?: string;
  workerId?: string;
  title?: string;
  description?: string;
  recommendedAction?: string;
  affectedJobs?: Int64;
  value?: number;
  threshold?: number;
  labels?: Record<string, string>;
  pendingTime?: string;
  startTime?: string;
  lastSeenTime?: string;
  acknowledgeTime?: string;
  resolveTime?: string;
  acknowledgedBy?: string;
  resolvedBy?: string;
  resolveNote?: string;
  resolvedAutomatically?: boolean;
  notificationsSent?: number;
}

export interface IncidentEvent {
  id?: string;
  incidentId?: string;
  kind?: string;
  eventTime?: string;
  actor?: string;
  message?: string;
}

export interface AuditLog {
  id: string;
  time?: string;
  actor?: string;
  role?: string;
  action?: string;
  entityType?: string;
  entityId?: string;
  queue?: string;
  parameters?: Record<string, unknown>;
  outcome?: string;
  result?: Record<string, unknown>;
  requestId?: string;
}

export type Role = "viewer" | "operator" | "admin";

export interface LoginResponse {
  accessToken: string;
  tokenType?: string;
  expiresIn?: number;
  role: Role;
  username: string;
}

/** A number from a proto3 JSON field: int64 strings, missing fields (default 0). */
export function num(value: Int64 | null): number {
  if (value === undefined || value === null || value === "") return 0;
  const n = typeof value === "number" ? value : Number(value);
  return Number.isFinite(n) ? n : 0;
}

/** An enum's short name: `QUEUE_STATUS_DEGRADED` with prefix `QUEUE_STATUS_` → `DEGRADED`. */
export function enumName(value: string | undefined, prefix: string): string {
  if (!value) return "";
  return value.startsWith(prefix) ? value.slice(prefix.length) : value;
}
