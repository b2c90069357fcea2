// The actions the UI performs: a POST on a route `…/{id}:verb`. The verbs, the bodies and the answers are
// those of the generated OpenAPI types; pages call these functions and never build an action URL.

import { api } from "./client";
import { route, type RouteTemplate } from "./routes";
import type { paths } from "./schema.gen";

/** Route templates that take a POST. */
type PostTemplate = { [P in RouteTemplate]: paths[P] extends { post: object } ? P : never }[RouteTemplate];

/** The verbs of the POST routes `${Base}:verb` in the document. */
type VerbsOf<Base extends string> = PostTemplate extends infer P ? (P extends `${Base}:${infer V}` ? V : never) : never;

type PostOf<P> = P extends RouteTemplate ? (paths[P] extends { post: infer Op } ? Op : never) : never;
type BodyOf<Op> = Op extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;
type AnswerOf<Op> = Op extends { responses: { 200: { content: { "application/json": infer R } } } } ? R : never;

const QUEUE = "/v1/queues/{queue}";
const JOB = "/v1/queues/{queue}/jobs/{job_id}";
const WORKER = "/v1/workers/{worker_id}";
const INCIDENT = "/v1/incidents/{incident_id}";
const SCHEDULER = "/v1/queues/{queue}/jobSchedulers/{scheduler_id}";

/** pause, resume, retryFailed, promote, drain, clean, obliterate. */
export type QueueVerb = VerbsOf<typeof QUEUE>;
/** retry, promote, cancel, releaseDeduplication. */
export type JobVerb = VerbsOf<typeof JOB>;
/** quiet, resume, stop. */
export type WorkerVerb = VerbsOf<typeof WORKER>;
/** acknowledge, resolve. */
export type IncidentVerb = VerbsOf<typeof INCIDENT>;

export type QueueActionBody<V extends QueueVerb> = BodyOf<PostOf<`${typeof QUEUE}:${V}`>>;
export type QueueActionAnswer<V extends QueueVerb> = AnswerOf<PostOf<`${typeof QUEUE}:${V}`>>;
export type JobActionBody<V extends JobVerb> = BodyOf<PostOf<`${typeof JOB}:${V}`>>;
export type JobActionAnswer<V extends JobVerb> = AnswerOf<PostOf<`${typeof JOB}:${V}`>>;
export type WorkerActionBody<V extends WorkerVerb> = BodyOf<PostOf<`${typeof WORKER}:${V}`>>;
export type WorkerActionAnswer<V extends WorkerVerb> = AnswerOf<PostOf<`${typeof WORKER}:${V}`>>;
/** run, remove. */
export type SchedulerVerb = VerbsOf<typeof SCHEDULER>;
export type SchedulerActionBody<V extends SchedulerVerb> = BodyOf<PostOf<`${typeof SCHEDULER}:${V}`>>;
export type SchedulerActionAnswer<V extends SchedulerVerb> = AnswerOf<PostOf<`${typeof SCHEDULER}:${V}`>>;
export type IncidentActionBody<V extends IncidentVerb> = BodyOf<PostOf<`${typeof INCIDENT}:${V}`>>;
export type IncidentActionAnswer<V extends IncidentVerb> = AnswerOf<PostOf<`${typeof INCIDENT}:${V}`>>;

/** `/v1/queues/{queue}:{verb}`, the queue name encoded as one segment. */
export function queueAction(queue: string, verb: QueueVerb): string {
  return route(`${QUEUE}:${verb}`, { queue });
}

/** `/v1/queues/{queue}/jobs/{job_id}:{verb}`. */
export function jobAction(queue: string, jobId: string, verb: JobVerb): string {
  return route(`${JOB}:${verb}`, { queue, job_id: jobId });
}

/** `/v1/workers/{worker_id}:{verb}`. */
export function workerAction(workerId: string, verb: WorkerVerb): string {
  return route(`${WORKER}:${verb}`, { worker_id: workerId });
}

/** `/v1/incidents/{incident_id}:{verb}`. */
export function incidentAction(incidentId: string, verb: IncidentVerb): string {
  return route(`${INCIDENT}:${verb}`, { incident_id: incidentId });
}

function post<R>(path: string, body: unknown): Promise<R> {
  return api<R>(path, { method: "POST", body });
}

/** Pause, resume, retry the failed, promote the delayed, drain or clean a queue. */
export function runQueueAction<V extends QueueVerb>(queue: string, verb: V, body: QueueActionBody<V>): Promise<QueueActionAnswer<V>> {
  return post(queueAction(queue, verb), body);
}

/** Retry, promote or cancel one job. */
export function runJobAction<V extends JobVerb>(queue: string, jobId: string, verb: V, body: JobActionBody<V>): Promise<JobActionAnswer<V>> {
  return post(jobAction(queue, jobId, verb), body);
}

/** Send a worker a quiet, resume or stop command. */
export function runWorkerAction<V extends WorkerVerb>(workerId: string, verb: V, body: WorkerActionBody<V>): Promise<WorkerActionAnswer<V>> {
  return post(workerAction(workerId, verb), body);
}

/** `/v1/queues/{queue}/jobSchedulers/{scheduler_id}:{verb}`. */
export function schedulerAction(queue: string, schedulerId: string, verb: SchedulerVerb): string {
  return route(`${SCHEDULER}:${verb}`, { queue, scheduler_id: schedulerId });
}

/** Run a job scheduler now, or remove it. */
export function runSchedulerAction<V extends SchedulerVerb>(
  queue: string,
  schedulerId: string,
  verb: V,
  body: SchedulerActionBody<V>,
): Promise<SchedulerActionAnswer<V>> {
  return post(schedulerAction(queue, schedulerId, verb), body);
}

/** Acknowledge or resolve an incident. */
export function runIncidentAction<V extends IncidentVerb>(incidentId: string, verb: V, body: IncidentActionBody<V>): Promise<IncidentActionAnswer<V>> {
  return post(incidentAction(incidentId, verb), body);
}

/** The body of AddJob: the job's name, its data as JSON text, delay, priority and attempts. */
export type AddJobBody = BodyOf<PostOf<"/v1/queues/{queue}/jobs">>;
export type AddJobAnswer = AnswerOf<PostOf<"/v1/queues/{queue}/jobs">>;

/** Add a job to a queue (MonitorService.AddJob; the operator role). */
export function addJob(queue: string, body: AddJobBody): Promise<AddJobAnswer> {
  return post(route("/v1/queues/{queue}/jobs", { queue }), body);
}

/** The body of CreateSilence: the silence's matchers, times and comment. */
export type SilenceBody = BodyOf<PostOf<"/v1/silences">>;
export type SilenceAnswer = AnswerOf<PostOf<"/v1/silences">>;

/** Create a silence (IncidentService.CreateSilence; the operator role). */
export function createSilence(body: SilenceBody): Promise<SilenceAnswer> {
  return post(route("/v1/silences"), body);
}

/** End a silence now (IncidentService.ExpireSilence; the operator role). */
export function expireSilence(silenceId: string): Promise<AnswerOf<PostOf<"/v1/silences/{silence_id}:expire">>> {
  return post(route("/v1/silences/{silence_id}:expire", { silence_id: silenceId }), {});
}

/** The body of CreateMaintenanceWindow: matchers, weekdays, hours, time zone and comment. */
export type WindowBody = BodyOf<PostOf<"/v1/maintenanceWindows">>;

/** Create a maintenance window (IncidentService.CreateMaintenanceWindow; the operator role). */
export function createMaintenanceWindow(body: WindowBody): Promise<AnswerOf<PostOf<"/v1/maintenanceWindows">>> {
  return post(route("/v1/maintenanceWindows"), body);
}

/** Delete a maintenance window (IncidentService.DeleteMaintenanceWindow; the operator role). */
export function deleteMaintenanceWindow(windowId: string): Promise<object> {
  return api<object>(route("/v1/maintenanceWindows/{window_id}", { window_id: windowId }), { method: "DELETE" });
}
