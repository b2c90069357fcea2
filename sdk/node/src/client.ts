/**
 * Heartbeat client: reports a worker to the Worker Monitor heartbeat service over BeatStream and hands the
 * commands it receives to a handler. It never throws into the worker and never blocks it: when the service is
 * down it logs (rate-limited), backs off with full jitter and reconnects while the worker carries on.
 */
import { hostname } from "node:os";
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import {
  BeatRequest,
  BeatStreamRequest,
  type BeatStreamResponse,
  type CommandType,
  GoodbyeRequest,
  HeartbeatServiceClient,
  type JobTimings,
  type RedisClient,
  type WorkerCommand,
  WorkerReport,
  WorkerState,
} from "./gen/workermon/heartbeat/v1/heartbeat_service.js";
import { Backoff } from "./backoff.js";
import { CommandLedger, type CommandOutcome } from "./ledger.js";
import {
  MAX_ACKS_PER_BEAT,
  MAX_ACTIVE_JOB_IDS,
  MAX_GAUGES,
  MAX_JOB_ID,
  MAX_LABEL_VALUE,
  MAX_LABELS,
  MAX_QUEUES,
  MAX_REDIS_CLIENTS,
  MAX_SHORT_TEXT,
  WORKER_ID_RE,
} from "./limits.js";
import { ProcessReadings } from "./readings.js";
import { TimingRecorder } from "./timings.js";
import { SDK_NAME } from "./version.js";

export { WorkerState };
export type { CommandType, WorkerCommand };

/** Where the SDK's log lines go; `console` fits. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** A token, or a function returning a fresh one (called on every connect and every unary call). */
export type TokenSource = string | (() => string);

/** The live numbers a worker reports on every beat. */
export interface WorkerStats {
  activeJobs: number;
  processedTotal: number;
  failedTotal: number;
  activeJobIds: readonly string[];
  state: WorkerState;
  gauges: Readonly<Record<string, number>>;
  redisClients: readonly RedisClient[];
}

/** Carries out one command; the outcome becomes its ack. */
export type CommandHandler = (command: WorkerCommand) => Promise<CommandOutcome>;

/** How to reach and identify with the heartbeat service (the options both the client and the BullMQ wrapper take). */
export interface ConnectionOptions {
  /** host:port of the suite's gRPC server; default `$WORKERMON_TARGET`. */
  target?: string;
  /** A worker token bound to this worker id; default `$WORKERMON_TOKEN`. */
  token?: TokenSource;
  /** Stable name of the worker (1-200 of letters, digits and . _ : @ / -); default `<hostname>-<pid>`. */
  workerId?: string;
  /** Free-form labels (at most 32). */
  labels?: Record<string, string>;
  /** Version of the worker's own code. */
  version?: string;
  /** TLS credentials; default an insecure channel. */
  credentials?: grpc.ChannelCredentials;
  /** More grpc-js channel options (they override the SDK's reconnect options). */
  channelOptions?: grpc.ChannelOptions;
  /** Paces retries after a failure (default 500 ms doubling to 5 s, full jitter). */
  backoff?: Backoff;
  /** Beat interval until the service states its own (default 10 s). */
  beatIntervalMs?: number;
  /** Bound on a unary call and on a silent stream (default 10 s). */
  rpcTimeoutMs?: number;
  /** Bound on the final acks and the goodbye at close (default 2 s). */
  goodbyeTimeoutMs?: number;
  /** Where log lines go (default: console, rate-limited for repeating failures). */
  logger?: Logger;
}

/** Everything the standalone client takes: connection options plus what to report and who handles commands. */
export interface HeartbeatClientOptions extends ConnectionOptions {
  queues?: readonly string[];
  concurrency?: number;
  /** Called on every beat for the live numbers. */
  report?: () => WorkerStats;
  /** Carries out the commands the service sends. */
  commandHandler?: CommandHandler;
}

// gRPC's own reconnect backoff (default 1 s growing to 120 s) decides when a lost connection is tried again;
// capped so the channel finds a returning service within ~3 s, as the Python SDK does.
const RECONNECT_OPTIONS: grpc.ChannelOptions = {
  "grpc.initial_reconnect_backoff_ms": 500,
  "grpc.max_reconnect_backoff_ms": 3000,
};
const LOG_INTERVAL_MS = 30_000;
const OPERATOR_CODES = new Set<number>([
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.UNIMPLEMENTED,
]);
const EMPTY_STATS: WorkerStats = {
  activeJobs: 0,
  processedTotal: 0,
  failedTotal: 0,
  activeJobIds: [],
  state: WorkerState.WORKER_STATE_RUNNING,
  gauges: {},
  redisClients: [],
};

/** `<hostname>-<pid>` with any character the service does not accept replaced by `-`. */
export function defaultWorkerId(): string {
  return `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9._:@/-]/g, "-").slice(-200);
}

/** Beats to the heartbeat service in the background and carries out the commands it sends. */
export class HeartbeatClient {
  readonly workerId: string;
  readonly instanceId = randomUUID();
  readonly hostname = hostname();
  readonly pid = process.pid;
  readonly target: string;
  readonly queues: string[];
  readonly labels: Record<string, string>;
  readonly version: string;
  concurrency: number;
  /** Durations of finished jobs waiting to go out with a beat. */
  readonly timings = new TimingRecorder();
  /** True while the last exchange with the service succeeded. */
  connected = false;
  /** The most recent failure talking to the service (kept after a recovery). */
  lastError: Error | undefined;
  /** Beats written to the service. */
  beatsSent = 0;
  /** Responses received from the service. */
  responses = 0;

  private readonly token: TokenSource;
  private readonly stub: HeartbeatServiceClient;
  private readonly backoff: Backoff;
  private readonly rpcTimeoutMs: number;
  private readonly goodbyeTimeoutMs: number;
  private readonly logger: Logger;
  private readonly report: (() => WorkerStats) | undefined;
  private readonly handler: CommandHandler | undefined;
  private readonly readings = new ProcessReadings();
  private readonly ledger = new CommandLedger();
  private readonly startedAt = new Date(Date.now() - process.uptime() * 1000);
  private intervalMs: number;
  private lastStats: WorkerStats = EMPTY_STATS;
  private failures = 0;
  private lastFailureLog = -Infinity;
  private suppressed = 0;
  private running: Promise<void> | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  private endSession: (() => void) | undefined;
  private readonly commands: WorkerCommand[] = [];
  private draining = false;

  /** Configure the client; nothing connects until `start()`. Throws on options the service would refuse. */
  constructor(options: HeartbeatClientOptions) {
    const target = options.target ?? process.env.WORKERMON_TARGET;
    if (!target) throw new Error("workermon: no target: pass `target` or set WORKERMON_TARGET (host:port)");
    const token = options.token ?? process.env.WORKERMON_TOKEN;
    if (!token) throw new Error("workermon: no token: pass `token` or set WORKERMON_TOKEN (a worker token)");
    this.workerId = options.workerId ?? defaultWorkerId();
    if (!WORKER_ID_RE.test(this.workerId)) {
      throw new Error(`workermon: invalid workerId ${JSON.stringify(this.workerId)}: use 1-200 letters, digits or . _ : @ / -`);
    }
    this.queues = [...(options.queues ?? [])];
    if (this.queues.length > MAX_QUEUES) throw new Error(`workermon: at most ${MAX_QUEUES} queues, got ${this.queues.length}`);
    this.labels = { ...(options.labels ?? {}) };
    if (Object.keys(this.labels).length > MAX_LABELS) throw new Error(`workermon: at most ${MAX_LABELS} labels`);
    for (const [key, value] of Object.entries(this.labels)) {
      // The service refuses every beat of a report with a longer label: refuse it here, once.
      if (key.length > MAX_SHORT_TEXT || value.length > MAX_LABEL_VALUE) {
        throw new Error(`workermon: label ${JSON.stringify(key)}: keys are at most ${MAX_SHORT_TEXT} characters, values ${MAX_LABEL_VALUE}`);
      }
    }
    this.version = (options.version ?? "").slice(0, MAX_SHORT_TEXT);
    this.concurrency = options.concurrency ?? 1;
    this.target = target;
    this.token = token;
    this.report = options.report;
    this.handler = options.commandHandler;
    this.backoff = options.backoff ?? new Backoff();
    this.intervalMs = options.beatIntervalMs ?? 10_000;
    this.rpcTimeoutMs = options.rpcTimeoutMs ?? 10_000;
    this.goodbyeTimeoutMs = options.goodbyeTimeoutMs ?? 2_000;
    this.logger = options.logger ?? defaultLogger;
    this.stub = new HeartbeatServiceClient(target, options.credentials ?? grpc.credentials.createInsecure(), {
      ...RECONNECT_OPTIONS,
      ...options.channelOptions,
    });
  }

  /** Milliseconds between beats, as last stated by the service. */
  get beatIntervalMs(): number {
    return this.intervalMs;
  }

  /** Start beating in the background; returns at once, whether or not the service is reachable. */
  start(): void {
    if (this.running !== undefined || this.stopping) return;
    this.running = this.beatForever();
  }

  /** Send a beat now rather than at the next interval (after a state change, an ack). */
  requestBeat(): void {
    this.wake?.();
  }

  /** Report one finished job's processing (and, with `enqueuedMs`, wait) time with the next beat. */
  recordJob(queue: string, startedMs: number, finishedMs: number, enqueuedMs?: number): void {
    this.timings.record(queue, finishedMs, finishedMs - startedMs, enqueuedMs === undefined ? undefined : startedMs - enqueuedMs);
  }

  /**
   * Stop beating, deliver pending acks, say goodbye and close the channel. Never throws; talking to the
   * service is bounded by `goodbyeTimeoutMs` in all, so a dead service cannot hold up the worker's exit.
   */
  async stop(goodbye = true, reason = "shutdown"): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.endSession?.();
    this.wake?.();
    await this.running;
    this.connected = false;
    const deadline = Date.now() + this.goodbyeTimeoutMs;
    try {
      if (this.running !== undefined) {
        // A last report: the totals of the jobs the close waited for, and the ack of a STOP, must not be
        // lost to the goodbye that follows.
        const acks = this.ledger.outgoing();
        await this.unary("beat", BeatRequest.fromPartial({ report: this.buildReport(), acks }), deadline);
        this.ledger.confirm();
        this.timings.confirm();
      }
      if (goodbye && this.running !== undefined) {
        await this.unary(
          "goodbye",
          GoodbyeRequest.fromPartial({ workerId: this.workerId, instanceId: this.instanceId, reason: reason.slice(0, 500) }),
          deadline,
        );
      }
    } catch (err) {
      this.lastError = asError(err);
      this.logger.warn(`workermon: could not say goodbye to ${this.target}: ${describe(err)}`);
    } finally {
      this.readings.close();
      this.stub.close();
    }
  }

  /** The report for the next beat: the static identity, `report()` and the process readings. */
  buildReport(): WorkerReport {
    try {
      if (this.report !== undefined) this.lastStats = this.report();
    } catch (err) {
      // A broken report callback must not silence the heartbeat; send the last good numbers.
      this.logFailure(`workermon: worker report callback failed: ${describe(err)}`);
    }
    const stats = this.lastStats;
    const custom: Record<string, number> = {};
    for (const [name, value] of Object.entries(stats.gauges).slice(0, MAX_GAUGES)) {
      if (Number.isFinite(value)) custom[name.slice(0, MAX_SHORT_TEXT)] = value;
    }
    return WorkerReport.fromPartial({
      workerId: this.workerId,
      instanceId: this.instanceId,
      hostname: this.hostname,
      pid: this.pid,
      queues: this.queues,
      labels: this.labels,
      version: this.version,
      concurrency: this.concurrency,
      activeJobs: stats.activeJobs,
      processedTotal: stats.processedTotal,
      failedTotal: stats.failedTotal,
      activeJobIds: stats.activeJobIds.slice(0, MAX_ACTIVE_JOB_IDS).map((id) => id.slice(0, MAX_JOB_ID)),
      gauges: {
        cpuPercent: this.readings.cpuPercent(),
        rssBytes: this.readings.rssBytes(),
        eventLoopLagMs: this.readings.eventLoopLagMs(),
        custom,
      },
      state: stats.state,
      startedAt: this.startedAt,
      sdk: SDK_NAME,
      timings: this.timings.outgoing() satisfies JobTimings[],
      redisClients: stats.redisClients.slice(0, MAX_REDIS_CLIENTS),
    });
  }

  // --- beating ------------------------------------------------------------------------------------------

  private async beatForever(): Promise<void> {
    while (!this.stopping) {
      try {
        await this.streamSession();
      } catch (err) {
        if (this.stopping) break;
        this.onFailure(err);
      }
      if (this.stopping) break;
      // Never longer than a beat interval: a worker that does not beat looks down.
      const delay = this.backoff.delay(this.failures, this.intervalMs);
      this.failures += 1;
      await this.pause(delay);
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        if (this.stopping) done();
      };
    });
  }

  private streamSession(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const call = this.stub.beatStream(this.metadata(), {});
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      let lastResponse = Date.now();
      const finish = (err?: Error): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.wake = undefined;
        this.endSession = undefined;
        call.cancel();
        if (err === undefined) resolve();
        else reject(err);
      };
      const beat = (): void => {
        if (finished) return;
        if (this.stopping) return finish();
        const silence = Date.now() - lastResponse;
        if (silence > 3 * this.intervalMs + this.rpcTimeoutMs) {
          return finish(new Error(`no answer on the beat stream for ${Math.round(silence / 1000)}s`));
        }
        try {
          call.write(BeatStreamRequest.fromPartial({ report: this.buildReport(), acks: this.ledger.outgoing() }));
        } catch (err) {
          // Runs in a timer: anything thrown here would be the worker's uncaught exception.
          return finish(asError(err));
        }
        this.beatsSent += 1;
        timer = setTimeout(beat, this.intervalMs);
      };
      call.on("data", (response: BeatStreamResponse) => {
        lastResponse = Date.now();
        const before = this.intervalMs;
        this.onResponse(response);
        if (this.intervalMs < before) this.wake?.();
      });
      call.on("error", (err: Error) => finish(err));
      call.on("end", () => finish(new Error("the service closed the beat stream")));
      this.wake = () => {
        if (finished) return;
        clearTimeout(timer);
        timer = setTimeout(beat, 0);
      };
      this.endSession = () => finish();
      beat();
    });
  }

  private onResponse(response: BeatStreamResponse): void {
    this.ledger.confirm();
    this.timings.confirm();
    this.responses += 1;
    if (!this.connected) this.logger.info(`workermon: connected to ${this.target} as ${this.workerId}`);
    this.connected = true;
    this.failures = 0;
    const interval = response.beatInterval;
    if (interval !== undefined) {
      const ms = interval.seconds * 1000 + interval.nanos / 1e6;
      // Bounds guard against a misconfigured service making workers spin or go silent.
      if (ms > 0) this.intervalMs = Math.min(Math.max(ms, 100), 3_600_000);
    }
    for (const command of response.commands) this.accept(command);
  }

  private onFailure(err: unknown): void {
    this.connected = false;
    this.lastError = asError(err);
    const code = (err as Partial<grpc.ServiceError>).code;
    // A retry will not fix these on its own: someone has to change a token, a role or the SDK.
    const level = code !== undefined && OPERATOR_CODES.has(code) ? "error" : "warn";
    this.logFailure(`workermon: heartbeat to ${this.target} failed (${describe(err)}); retrying`, level);
  }

  private logFailure(message: string, level: "warn" | "error" = "warn"): void {
    const now = Date.now();
    if (now - this.lastFailureLog < LOG_INTERVAL_MS) {
      this.suppressed += 1;
      return;
    }
    const extra = this.suppressed > 0 ? ` (${this.suppressed} similar messages suppressed)` : "";
    this.logger[level](message + extra);
    this.lastFailureLog = now;
    this.suppressed = 0;
  }

  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    const token = typeof this.token === "function" ? this.token() : this.token;
    metadata.set("authorization", `Bearer ${token}`);
    return metadata;
  }

  private unary(method: "beat", request: BeatRequest, deadline: number): Promise<unknown>;
  private unary(method: "goodbye", request: GoodbyeRequest, deadline: number): Promise<unknown>;
  private unary(method: "beat" | "goodbye", request: BeatRequest | GoodbyeRequest, deadline: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const done = (err: grpc.ServiceError | null, response?: unknown): void => (err ? reject(err) : resolve(response));
      const options = { deadline };
      if (method === "beat") this.stub.beat(request as BeatRequest, this.metadata(), options, done);
      else this.stub.goodbye(request as GoodbyeRequest, this.metadata(), options, done);
    });
  }

  // --- commands -----------------------------------------------------------------------------------------

  private accept(command: WorkerCommand): void {
    if (!command.commandId) return;
    if (!this.ledger.admit(command.commandId)) {
      if (this.ledger.resend(command.commandId)) this.requestBeat();
      return;
    }
    if (this.commands.length >= MAX_ACKS_PER_BEAT) {
      this.ledger.complete(command.commandId, { ok: false, result: "too many commands waiting on this worker" });
      this.requestBeat();
      return;
    }
    this.commands.push(command);
    void this.drainCommands();
  }

  private async drainCommands(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      for (let command = this.commands.shift(); command !== undefined; command = this.commands.shift()) {
        const outcome = await this.execute(command);
        this.ledger.complete(command.commandId, outcome);
        this.requestBeat();
      }
    } finally {
      this.draining = false;
    }
  }

  private async execute(command: WorkerCommand): Promise<CommandOutcome> {
    if (this.handler === undefined) return { ok: false, result: "this worker does not take commands", unsupported: true };
    try {
      return await this.handler(command);
    } catch (err) {
      this.logger.error(`workermon: command ${command.commandId} failed: ${describe(err)}`);
      return { ok: false, result: describe(err) };
    }
  }
}

const defaultLogger: Logger = {
  info: (m) => console.info(m),
  warn: (m) => console.warn(m),
  error: (m) => console.error(m),
};

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** A failure in one line: the gRPC status name and details, or the error's name and message. */
export function describe(err: unknown): string {
  const e = asError(err);
  const code = (e as Partial<grpc.ServiceError>).code;
  if (typeof code === "number") return `${grpc.status[code] ?? code}: ${(e as grpc.ServiceError).details}`;
  return e.message ? `${e.name}: ${e.message}` : e.name;
}
