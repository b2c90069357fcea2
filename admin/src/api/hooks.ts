import { keepPreviousData, useMutation, useQuery, useQueryClient, type QueryKey } from "@tanstack/react-query";
import { useNotify } from "../components/Feedback";
import { useI18n } from "../i18n";
import { api, type Query } from "./client";
import { describeError } from "./errors";
import { route } from "./routes";
import type { ResponseOf } from "./types";

export const keys = {
  overview: ["overview"] as const,
  queues: ["queues"] as const,
  queue: (name: string) => ["queue", name] as const,
  trend: (name: string, hours: number) => ["trend", name, hours] as const,
  workerHistory: (id: string, minutes: number) => ["workerHistory", id, minutes] as const,
  jobs: ["jobs"] as const,
  job: ["job"] as const,
  workers: ["workers"] as const,
  incidents: ["incidents"] as const,
  incident: ["incident"] as const,
  silences: ["silences"] as const,
  windows: ["maintenanceWindows"] as const,
  audit: ["audit"] as const,
  children: ["children"] as const,
  schedulers: ["schedulers"] as const,
};

export function useOverview() {
  return useQuery({ queryKey: keys.overview, queryFn: ({ signal }) => api<ResponseOf<"GetOverview">>(route("/v1/overview"), { signal }), refetchInterval: 30_000 });
}

export function useQueues() {
  return useQuery({
    queryKey: keys.queues,
    queryFn: ({ signal }) => api<ResponseOf<"ListQueues">>(route("/v1/queues"), { signal }).then((r) => r.queues ?? []),
    refetchInterval: 15_000,
  });
}

export function useQueue(name: string | undefined) {
  return useQuery({
    queryKey: keys.queue(name ?? ""),
    enabled: !!name,
    queryFn: ({ signal }) => api<ResponseOf<"GetQueue">>(route("/v1/queues/{queue}", { queue: name ?? "" }), { signal }).then((r) => r.queue ?? null),
    refetchInterval: 15_000,
  });
}

export function useTrend(name: string, hours: number) {
  return useQuery({
    queryKey: keys.trend(name, hours),
    queryFn: ({ signal }) => api<ResponseOf<"GetQueueTrend">>(route("/v1/queues/{queue}/trend", { queue: name }), { query: { hours }, signal }),
    refetchInterval: 60_000,
    staleTime: 30_000,
  });
}

export interface JobsFilter {
  queue: string;
  state: string;
  search: string;
  pageToken: string;
  pageSize?: number;
  /** Only failed jobs of this failure category. */
  category?: string;
}

export function jobsQuery(f: JobsFilter): Query {
  const search = f.search.trim();
  const isId = /^[0-9]+$/.test(search);
  return {
    states: f.state ? [f.state] : undefined,
    pageSize: f.pageSize ?? 50,
    pageToken: f.pageToken || undefined,
    jobId: isId ? search : undefined,
    namePrefix: !isId && search ? search : undefined,
    failureCategory: f.category || undefined,
  };
}

export function useJobs(f: JobsFilter) {
  return useQuery({
    queryKey: [...keys.jobs, f],
    enabled: !!f.queue,
    queryFn: ({ signal }) => api<ResponseOf<"ListJobs">>(route("/v1/queues/{queue}/jobs", { queue: f.queue }), { query: jobsQuery(f), signal }),
    placeholderData: keepPreviousData,
    refetchInterval: 20_000,
  });
}

/** The job holding a deduplication id now (NOT_FOUND, an ApiError, when none does). */
export function findDeduplicatedJob(queue: string, deduplicationId: string) {
  return api<ResponseOf<"GetDeduplicatedJob">>(
    route("/v1/queues/{queue}/deduplication/{deduplication_id}", { queue, deduplication_id: deduplicationId }),
  ).then((r) => r.job ?? null);
}

export function useJob(queue: string, jobId: string | null, full: boolean) {
  return useQuery({
    queryKey: [...keys.job, queue, jobId, full],
    enabled: !!queue && !!jobId,
    queryFn: ({ signal }) =>
      api<ResponseOf<"GetJob">>(route("/v1/queues/{queue}/jobs/{job_id}", { queue, job_id: jobId ?? "" }), {
        query: { full: full || undefined },
        signal,
      }).then((r) => r.job ?? null),
  });
}

/** One page of a job's children (a flow's parent), from `token` on; a tree asks per node it expands. */
export function useJobChildren(queue: string, jobId: string, token: string, enabled = true) {
  return useQuery({
    queryKey: [...keys.children, queue, jobId, token],
    enabled: enabled && !!queue && !!jobId,
    queryFn: ({ signal }) =>
      api<ResponseOf<"ListJobChildren">>(route("/v1/queues/{queue}/jobs/{job_id}/children", { queue, job_id: jobId }), {
        query: { pageSize: 25, pageToken: token || undefined },
        signal,
      }),
  });
}

/** A page of a queue's job schedulers, soonest next run first. */
export function useJobSchedulers(queue: string, token: string) {
  return useQuery({
    queryKey: [...keys.schedulers, queue, token],
    enabled: !!queue,
    queryFn: ({ signal }) =>
      api<ResponseOf<"ListJobSchedulers">>(route("/v1/queues/{queue}/jobSchedulers", { queue }), {
        query: { pageSize: 20, pageToken: token || undefined },
        signal,
      }),
    placeholderData: keepPreviousData,
    refetchInterval: 30_000,
  });
}

export interface WorkersFilter {
  /** A substring of the worker id or hostname. */
  search: string;
  /** WORKER_STATUS_ONLINE, WORKER_STATUS_OFFLINE, or "" for both. */
  status: string;
  /** WORKER_KIND_INSTRUMENTED, WORKER_KIND_UNINSTRUMENTED, or "" for both. */
  kind?: string;
  pageToken: string;
  pageSize?: number;
}

/** A page of workers, filtered on the server. */
export function useWorkers(f: WorkersFilter) {
  return useQuery({
    queryKey: [...keys.workers, f],
    queryFn: ({ signal }) =>
      api<ResponseOf<"ListWorkers">>(route("/v1/workers"), {
        query: { pageSize: f.pageSize ?? 50, pageToken: f.pageToken || undefined, search: f.search.trim() || undefined, status: f.status || undefined, kind: f.kind || undefined },
        signal,
      }),
    placeholderData: keepPreviousData,
    refetchInterval: 15_000,
  });
}

/** A worker's per-minute history over the last `minutes` (at most a day: what HeartbeatService keeps). */
export function useWorkerHistory(id: string | undefined, minutes: number, enabled = true) {
  return useQuery({
    queryKey: keys.workerHistory(id ?? "", minutes),
    enabled: !!id && enabled,
    queryFn: ({ signal }) =>
      api<ResponseOf<"GetWorkerHistory">>(route("/v1/workers/{worker_id}/history", { worker_id: id ?? "" }), {
        query: { startTime: new Date(Date.now() - minutes * 60_000).toISOString() },
        signal,
      }),
    refetchInterval: 60_000,
    staleTime: 30_000,
  });
}

export interface IncidentFilter {
  status: string;
  type: string;
  pageToken: string;
}

export function useIncidents(f: IncidentFilter) {
  return useQuery({
    queryKey: [...keys.incidents, f],
    queryFn: ({ signal }) =>
      api<ResponseOf<"ListIncidents">>(route("/v1/incidents"), {
        query: {
          openOnly: f.status === "open" ? true : undefined,
          status: f.status && f.status !== "open" ? f.status : undefined,
          type: f.type || undefined,
          pageSize: 50,
          pageToken: f.pageToken || undefined,
        },
        signal,
      }),
    placeholderData: keepPreviousData,
    refetchInterval: 30_000,
  });
}

export function useIncident(id: string | undefined) {
  return useQuery({
    queryKey: [...keys.incident, id],
    enabled: !!id,
    queryFn: ({ signal }) => api<ResponseOf<"GetIncident">>(route("/v1/incidents/{incident_id}", { incident_id: id ?? "" }), { signal }),
  });
}

/** Silences newest first, one page at a time; `state` is a SilenceState name or "" for every state. */
export function useSilences(state: string, pageToken: string) {
  return useQuery({
    queryKey: [...keys.silences, state, pageToken],
    queryFn: ({ signal }) =>
      api<ResponseOf<"ListSilences">>(route("/v1/silences"), {
        query: { state: state || undefined, pageSize: 50, pageToken: pageToken || undefined },
        signal,
      }),
    placeholderData: keepPreviousData,
    refetchInterval: 30_000,
  });
}

/** Maintenance windows newest first, one page at a time. */
export function useMaintenanceWindows(pageToken: string) {
  return useQuery({
    queryKey: [...keys.windows, pageToken],
    queryFn: ({ signal }) =>
      api<ResponseOf<"ListMaintenanceWindows">>(route("/v1/maintenanceWindows"), { query: { pageSize: 50, pageToken: pageToken || undefined }, signal }),
    placeholderData: keepPreviousData,
    refetchInterval: 30_000,
  });
}

export interface AuditFilter {
  actor: string;
  action: string;
  pageToken: string;
}

export function useAuditLogs(f: AuditFilter) {
  return useQuery({
    queryKey: [...keys.audit, f],
    queryFn: ({ signal }) =>
      api<ResponseOf<"ListAuditLogs">>(route("/v1/auditLogs"), {
        query: { actor: f.actor || undefined, action: f.action || undefined, pageSize: 50, pageToken: f.pageToken || undefined },
        signal,
      }),
    placeholderData: keepPreviousData,
  });
}

/** An action (see ./actions): run it, then say what changed (snackbar) and refetch what it touched. */
export function useAction<V = void, R extends object = object>(options: {
  run: (vars: V) => Promise<R>;
  describe: (result: R, vars: V) => string;
  /** How the result is shown: success unless the answer says otherwise (a refusal, a pending command). */
  severity?: (result: R) => "success" | "info" | "warning";
  invalidate: QueryKey[];
  onDone?: (result: R, vars: V) => void;
}) {
  const client = useQueryClient();
  const notify = useNotify();
  const { t } = useI18n();
  return useMutation({
    mutationFn: (vars: V) => options.run(vars),
    onSuccess: (result, vars) => {
      const auditId = "auditId" in result ? result.auditId : undefined;
      const audit = auditId ? t("auditRef", { id: String(auditId) }) : "";
      notify(`${options.describe(result, vars)}${audit}`, options.severity?.(result) ?? "success");
      options.onDone?.(result, vars);
      for (const key of options.invalidate) void client.invalidateQueries({ queryKey: key });
      void client.invalidateQueries({ queryKey: keys.audit });
    },
    onError: (error) => notify(describeError(error, t), "error"),
  });
}
