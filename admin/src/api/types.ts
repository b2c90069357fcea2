// Shapes of the gateway's JSON (proto3 JSON mapping): int64 as strings, enums as full names,
// fields at their default value omitted, lists always present. Read numbers through `num()`.
//
// The API's types are generated from the gateway's OpenAPI document (`make api-types` writes
// admin/openapi.json and schema.gen.ts); the names below are aliases of its component schemas, so a
// change in a proto shows up here as a compile error. Only what the document does not describe (login,
// roles) and UI helpers are written by hand.

import type { components, operations } from "./schema.gen";

type Schemas = components["schemas"];

/** The JSON body of an operation's 200 answer, by operationId (the RPC name): `ResponseOf<"PauseQueue">`. */
export type ResponseOf<Op extends keyof operations> = operations[Op]["responses"][200]["content"] extends { "application/json": infer R } ? R : never;

/** The JSON body an operation takes, by operationId; `never` for one without a body. */
export type RequestOf<Op extends keyof operations> = NonNullable<operations[Op]["requestBody"]>["content"]["application/json"];

/** An int64 field: a decimal string in the JSON mapping (numbers accepted for convenience). */
export type Int64 = string | number | undefined;

export type JobCounts = Schemas["workermon.monitor.v1.JobCounts"];
export type Durations = Schemas["workermon.monitor.v1.Durations"];
export type TrendPoint = Schemas["workermon.monitor.v1.TrendPoint"];
export type ActiveIncident = Schemas["workermon.monitor.v1.ActiveIncident"];
export type Overview = Schemas["workermon.monitor.v1.GetOverviewResponse"];
export type Queue = Schemas["workermon.monitor.v1.Queue"];
export type QueueTrend = Schemas["workermon.monitor.v1.GetQueueTrendResponse"];
export type JobSummary = Schemas["workermon.monitor.v1.JobSummary"];
export type JobState = Schemas["workermon.monitor.v1.JobState"];
export type ListJobsResponse = Schemas["workermon.monitor.v1.ListJobsResponse"];
export type TimelineEntry = Schemas["workermon.monitor.v1.TimelineEntry"];
export type Job = Schemas["workermon.monitor.v1.Job"];
export type WorkerReport = Schemas["workermon.monitor.v1.WorkerReport"];
export type Worker = Schemas["workermon.monitor.v1.Worker"];
export type WorkerHistoryPoint = Schemas["workermon.monitor.v1.WorkerHistoryPoint"];
export type Command = Schemas["workermon.monitor.v1.Command"];
export type Incident = Schemas["workermon.incidents.v1.Incident"];
export type Silence = Schemas["workermon.incidents.v1.Silence"];
export type MaintenanceWindow = Schemas["workermon.incidents.v1.MaintenanceWindow"];
export type NotificationDecision = Schemas["workermon.incidents.v1.NotificationDecision"];
export type IncidentEvent = Schemas["workermon.incidents.v1.IncidentEvent"];
export type AuditLog = Schemas["workermon.monitor.v1.AuditLog"];
export type JobChild = Schemas["workermon.monitor.v1.JobChild"];
export type DependencyCounts = Schemas["workermon.monitor.v1.DependencyCounts"];
export type JobScheduler = Schemas["workermon.monitor.v1.JobScheduler"];

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
