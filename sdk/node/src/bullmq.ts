/**
 * BullMQ integration: a BullMQ Worker (version 5 or 6) that reports to Worker Monitor and carries out its
 * commands. The SDK imports nothing from bullmq: it takes the application's own Worker, whatever its version.
 */
import { CommandType, type RedisClient, type WorkerCommand } from "./gen/workermon/heartbeat/v1/heartbeat_service.js";
import { type ConnectionOptions, describe, HeartbeatClient, WorkerState, type WorkerStats } from "./client.js";
import type { CommandOutcome } from "./ledger.js";
import { MAX_ACTIVE_JOB_IDS, MAX_GAUGES, MAX_REDIS_CLIENTS, MAX_SHORT_TEXT } from "./limits.js";

/** The parts of a BullMQ job the SDK reads. */
export interface JobLike {
  id?: string | undefined;
  timestamp?: number;
  processedOn?: number | undefined;
  finishedOn?: number | undefined;
}

/** The parts of an ioredis client the SDK uses (to ask Redis who the worker's connections are). */
export interface RedisCommandClient {
  call(command: string, ...args: string[]): Promise<unknown>;
}

/** The parts of a BullMQ Worker the SDK uses; BullMQ 5 and 6 workers both fit. */
export interface WorkerLike {
  readonly name: string;
  readonly opts: { concurrency?: number };
  on(event: "active", listener: (job: never, prev: string) => void): unknown;
  on(event: "completed", listener: (job: never, result: never, prev: string) => void): unknown;
  on(event: "failed", listener: (job: never, error: Error, prev: string) => void): unknown;
  on(event: "closed", listener: () => void): unknown;
  pause(doNotWaitActive?: boolean): Promise<void>;
  resume(): unknown;
  close(force?: boolean): Promise<void>;
  waitUntilReady(): Promise<unknown>;
}

/** A custom gauge: called on every beat; a throwing or non-finite reading is left out of that beat. */
export type GaugeReader = () => number;

/** Options of `instrument()`: how to reach the service, plus what only a BullMQ worker has. */
export interface InstrumentOptions extends ConnectionOptions {
  /**
   * How long a cancelled job may take to honour its abort signal before the CANCEL_JOB is answered as failed
   * (JavaScript cannot stop a promise that ignores its signal); default 2000 ms.
   */
  cancelGraceMs?: number;
  /** Gauges to report from the start (more with `gauge()`). */
  gauges?: Record<string, GaugeReader>;
}

interface ActiveJob {
  id: string;
  startedMs: number;
  /** Resolves when the job's attempt ends (completed or failed), to tell a cancellation took effect. */
  ended: Promise<"completed" | "failed">;
  end: (how: "completed" | "failed") => void;
}

interface ConnectionInternals {
  client?: Promise<unknown>;
  packageVersion?: string;
}

/** Where BullMQ keeps its connections: on the worker (BullMQ 5) or on its backend (BullMQ 6). */
interface WorkerInternals {
  connection?: ConnectionInternals;
  blockingConnection?: ConnectionInternals;
  backend?: { connection?: ConnectionInternals; blockingConnection?: ConnectionInternals };
  cancelJob?: (jobId: string, reason?: string) => boolean;
}

/**
 * A BullMQ worker reporting to the heartbeat service and obeying its commands: QUIET stops taking jobs (the
 * active ones finish), RESUME takes them again, STOP closes gracefully and says goodbye, CANCEL_JOB aborts one
 * job through BullMQ's own cancellation (the processor must take the `signal` argument).
 */
export class InstrumentedWorker<W extends WorkerLike = WorkerLike> {
  /** The heartbeat client, started and stopped with this wrapper. */
  readonly heartbeat: HeartbeatClient;
  /** Resolves once the worker is closed and the goodbye said (after `close()` or a STOP command). */
  readonly closed: Promise<void>;

  private readonly active = new Map<string, ActiveJob>();
  private readonly gauges = new Map<string, GaugeReader>();
  private readonly cancelGraceMs: number;
  private state: WorkerState = WorkerState.WORKER_STATE_RUNNING;
  private processed = 0;
  private failed = 0;
  private redisClients: RedisClient[] = [];
  private shutdown: Promise<void> | undefined;
  private resolveClosed!: () => void;

  /** Wrap `worker` (already constructed, running or about to run); beating starts at once. */
  constructor(
    readonly worker: W,
    options: InstrumentOptions = {},
  ) {
    this.cancelGraceMs = options.cancelGraceMs ?? 2000;
    for (const [name, read] of Object.entries(options.gauges ?? {})) this.gauge(name, read);
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.heartbeat = new HeartbeatClient({
      ...options,
      queues: [worker.name],
      concurrency: concurrencyOf(worker),
      report: () => this.stats(),
      commandHandler: (command) => this.handleCommand(command),
    });
    worker.on("active", (job: JobLike) => this.onActive(job));
    worker.on("completed", (job: JobLike) => this.onEnded(job, "completed"));
    worker.on("failed", (job: JobLike | undefined) => this.onEnded(job, "failed"));
    // An application that closes the BullMQ worker itself still gets its goodbye said.
    worker.on("closed", () => void this.close(false, "worker closed"));
    this.heartbeat.start();
    void this.readRedisClients();
  }

  /** RUNNING, QUIET or STOPPING. */
  get workerState(): WorkerState {
    return this.state;
  }

  /** Ids of the jobs running now. */
  get activeJobIds(): string[] {
    return [...this.active.keys()];
  }

  /** The BullMQ version the worker comes from, as its connection says ("unknown" if it does not). */
  get bullmqVersion(): string {
    const internals = this.worker as unknown as WorkerInternals;
    return (internals.backend?.connection ?? internals.connection)?.packageVersion ?? "unknown";
  }

  /** Report `read()` as the custom gauge `name` on every beat (at most 32 gauges, names up to 64 characters). */
  gauge(name: string, read: GaugeReader): this {
    if (!name || name.length > MAX_SHORT_TEXT) throw new RangeError(`workermon: gauge names are 1-${MAX_SHORT_TEXT} characters`);
    if (!this.gauges.has(name) && this.gauges.size >= MAX_GAUGES) throw new RangeError(`workermon: at most ${MAX_GAUGES} gauges`);
    this.gauges.set(name, read);
    return this;
  }

  /** The numbers reported on every beat. */
  stats(): WorkerStats {
    // BullMQ lets an application change a worker's concurrency while it runs.
    this.heartbeat.concurrency = concurrencyOf(this.worker);
    const gauges: Record<string, number> = {};
    for (const [name, read] of this.gauges) {
      try {
        const value = read();
        if (Number.isFinite(value)) gauges[name] = value;
      } catch {
        // One broken gauge must not cost the beat its other readings.
      }
    }
    return {
      activeJobs: this.active.size,
      processedTotal: this.processed,
      failedTotal: this.failed,
      activeJobIds: [...this.active.keys()].slice(0, MAX_ACTIVE_JOB_IDS),
      state: this.state,
      gauges,
      redisClients: this.redisClients,
    };
  }

  /** Stop taking new jobs; the active ones carry on (QUIET). */
  async quiet(): Promise<CommandOutcome> {
    if (this.state === WorkerState.WORKER_STATE_STOPPING) return { ok: false, result: "the worker is stopping" };
    this.state = WorkerState.WORKER_STATE_QUIET;
    await this.worker.pause(true);
    return { ok: true, result: `quiet: taking no new jobs, ${this.active.size} still active` };
  }

  /** Take jobs again after `quiet()` (RESUME). */
  async resume(): Promise<CommandOutcome> {
    if (this.state === WorkerState.WORKER_STATE_STOPPING) return { ok: false, result: "the worker is stopping" };
    await this.worker.resume();
    this.state = WorkerState.WORKER_STATE_RUNNING;
    return { ok: true, result: "running: taking jobs again" };
  }

  /**
   * Cancel one running job through BullMQ's own cancellation (CANCEL_JOB): ok only once the job's attempt
   * actually ended; not ok when it is not running here or ignored its abort signal for `cancelGraceMs`;
   * unsupported when the installed BullMQ has no `Worker.cancelJob`.
   */
  async cancelJob(jobId: string, reason = ""): Promise<CommandOutcome> {
    const cancel = (this.worker as unknown as WorkerInternals).cancelJob;
    if (typeof cancel !== "function") {
      return {
        ok: false,
        unsupported: true,
        result: `BullMQ ${this.bullmqVersion} has no job cancellation (Worker.cancelJob); upgrade BullMQ to cancel jobs`,
      };
    }
    const entry = this.active.get(jobId);
    if (entry === undefined) return { ok: false, result: `job ${jobId} is not running on this worker` };
    const why = reason || "cancelled by an operator";
    if (!cancel.call(this.worker, jobId, why)) {
      return { ok: false, result: `job ${jobId} cannot be cancelled: its processor takes no abort signal (declare (job, token, signal))` };
    }
    const ended = await Promise.race([entry.ended, delay(this.cancelGraceMs).then(() => undefined)]);
    if (ended === undefined) {
      return { ok: false, result: `job ${jobId} ignored its abort signal for ${this.cancelGraceMs} ms; it still runs` };
    }
    if (ended === "completed") return { ok: true, result: `job ${jobId} completed before it could be cancelled` };
    return { ok: true, result: `job ${jobId} cancelled (its processor honoured the abort signal)` };
  }

  /** Close the worker (waiting for its active jobs unless `force`), then say goodbye; resolves when done. */
  close(force = false, reason = "worker closed"): Promise<void> {
    if (this.shutdown === undefined) {
      this.state = WorkerState.WORKER_STATE_STOPPING;
      this.heartbeat.requestBeat();
      this.shutdown = this.doClose(force, reason);
    } else if (force) {
      // A forced close during a graceful one cuts it short.
      void this.worker.close(true).catch(() => undefined);
    }
    return this.shutdown;
  }

  /** Carry out one command from the heartbeat service; its outcome becomes the ack. */
  async handleCommand(command: WorkerCommand): Promise<CommandOutcome> {
    switch (command.type) {
      case CommandType.COMMAND_TYPE_QUIET:
        return this.quiet();
      case CommandType.COMMAND_TYPE_RESUME:
        return this.resume();
      case CommandType.COMMAND_TYPE_STOP: {
        const active = this.active.size;
        void this.close(false, command.reason ? `stop command: ${command.reason}` : "stop command");
        return { ok: true, result: `stopping: finishing ${active} active jobs, then exiting` };
      }
      case CommandType.COMMAND_TYPE_CANCEL_JOB:
        if (!command.jobId) return { ok: false, result: "CANCEL_JOB needs a job_id" };
        return this.cancelJob(command.jobId, command.reason);
      default:
        return { ok: false, unsupported: true, result: `unsupported command type ${command.type}` };
    }
  }

  // --- internals ----------------------------------------------------------------------------------------

  private async doClose(force: boolean, reason: string): Promise<void> {
    try {
      await this.worker.close(force);
    } catch (err) {
      console.warn(`workermon: closing the BullMQ worker for queue ${this.worker.name} failed: ${describe(err)}`);
    } finally {
      await this.heartbeat.stop(true, reason);
      this.resolveClosed();
    }
  }

  private onActive(job: JobLike): void {
    if (job.id === undefined) return;
    let end!: (how: "completed" | "failed") => void;
    const ended = new Promise<"completed" | "failed">((resolve) => (end = resolve));
    this.active.set(job.id, { id: job.id, startedMs: job.processedOn ?? Date.now(), ended, end });
  }

  private onEnded(job: JobLike | undefined, how: "completed" | "failed"): void {
    if (how === "completed") this.processed += 1;
    else this.failed += 1;
    if (job?.id === undefined) return;
    const entry = this.active.get(job.id);
    this.active.delete(job.id);
    entry?.end(how);
    // Removed-on-completion jobs leave no timestamps behind; this is the only record of their duration.
    const started = job.processedOn ?? entry?.startedMs;
    if (started !== undefined) {
      this.heartbeat.recordJob(this.worker.name, started, job.finishedOn ?? Date.now(), job.timestamp);
    }
  }

  /** The worker's own Redis connections as Redis names them, read once both are connected. */
  private async readRedisClients(): Promise<void> {
    const internals = this.worker as unknown as WorkerInternals;
    const holder = internals.backend ?? internals;
    try {
      await this.worker.waitUntilReady();
    } catch {
      return;
    }
    for (const connection of [holder.connection, holder.blockingConnection]) {
      if (connection?.client === undefined || this.redisClients.length >= MAX_REDIS_CLIENTS) continue;
      try {
        const client = (await connection.client) as RedisCommandClient;
        const info = parseClientInfo(String(await client.call("CLIENT", "INFO")));
        if (info !== undefined && !this.redisClients.some((c) => c.id === info.id)) {
          this.redisClients = [...this.redisClients, info];
          this.heartbeat.requestBeat();
        }
      } catch {
        // A Redis without CLIENT INFO (before 6.2) or a connection closed meanwhile: the worker is only
        // shown twice, never harmed.
      }
    }
  }
}

/** Wrap a BullMQ worker so it reports to Worker Monitor and obeys its commands (two lines with its `new Worker`). */
export function instrument<W extends WorkerLike>(worker: W, options: InstrumentOptions = {}): InstrumentedWorker<W> {
  return new InstrumentedWorker(worker, options);
}

/** `id=` and `addr=` of a `CLIENT INFO` line. */
export function parseClientInfo(line: string): RedisClient | undefined {
  const id = /(?:^|\s)id=(\d+)/.exec(line)?.[1];
  const addr = /(?:^|\s)addr=(\S+)/.exec(line)?.[1];
  if (id === undefined || addr === undefined) return undefined;
  return { id: Number(id), addr: addr.slice(0, MAX_SHORT_TEXT) };
}

function concurrencyOf(worker: WorkerLike): number {
  const live = (worker as unknown as { concurrency?: unknown }).concurrency;
  return typeof live === "number" ? live : (worker.opts.concurrency ?? 1);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
