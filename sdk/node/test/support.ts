/** What the Node SDK's tests share: the real suite (HeartbeatService over gRPC), tokens, BullMQ versions. */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as bullmq6 from "bullmq";
import * as bullmq5 from "bullmq5";
import type { WorkerLike } from "../src/index.js";
import {
  type Command,
  CommandStatus,
  CommandType,
  GetCommandRequest,
  type GetCommandResponse,
  type GetQueueTimingsResponse,
  type GetWorkerResponse,
  type SendCommandResponse,
  GetQueueTimingsRequest,
  GetWorkerRequest,
  HeartbeatServiceClient,
  ListWorkersRequest,
  type ListWorkersResponse,
  type JobTimings,
  SendCommandRequest,
  type Worker as RegistryWorker,
} from "../src/gen/workermon/heartbeat/v1/heartbeat_service.js";

// dist-test/test/support.js -> the repository root
const require = createRequire(import.meta.url);
const bullmq6Version = String((require("bullmq/package.json") as { version: string }).version);
const bullmq5Version = String((require("bullmq5/package.json") as { version: string }).version);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");

/** The parts of a BullMQ Queue the tests use. */
export interface QueueLike {
  add(name: string, data: object): Promise<{ id?: string | undefined }>;
  getJob(id: string): Promise<{ failedReason: string; getState(): Promise<string> } | undefined>;
  getWaitingCount(): Promise<number>;
  getCompletedCount(): Promise<number>;
  close(): Promise<void>;
}

/** A processor as both BullMQ versions take it (the third parameter makes BullMQ pass an abort signal). */
export type Processor = (job: never, token: string | undefined, signal: AbortSignal | undefined) => Promise<unknown>;

/** One BullMQ version under test: a Queue and a Worker of it (typed as the SDK takes workers: both fit). */
export interface BullVersion {
  label: string;
  newQueue(name: string, opts: bullmq6.QueueOptions): QueueLike;
  newWorker(name: string, processor: Processor, opts: bullmq6.WorkerOptions): WorkerLike;
}

/** BullMQ 6 (package `bullmq`) and BullMQ 5 (package `bullmq5`, an alias of the latest 5.x). */
export const VERSIONS: BullVersion[] = [
  {
    label: `BullMQ ${bullmq6Version}`,
    newQueue: (name, opts) => new bullmq6.Queue(name, opts),
    newWorker: (name, processor, opts) => new bullmq6.Worker(name, processor as bullmq6.Processor, opts),
  },
  {
    label: `BullMQ ${bullmq5Version}`,
    newQueue: (name, opts) => new bullmq5.Queue(name, opts as bullmq5.QueueOptions),
    newWorker: (name, processor, opts) => new bullmq5.Worker(name, processor as bullmq5.Processor, opts as bullmq5.WorkerOptions),
  },
];

/** Poll `condition` every 50 ms until it returns a truthy value (returned), failing after `limitMs`. */
export async function waitFor<T>(condition: () => Promise<T> | T, what: string, limitMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + limitMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${limitMs} ms${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** ioredis options for a redis:// URL, as BullMQ workers need them. */
export function connectionOptions(url: string): { host: string; port: number; db: number; maxRetriesPerRequest: null } {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    db: Number(parsed.pathname.slice(1) || 0),
    maxRetriesPerRequest: null,
  };
}

// Marks the suite process's answers among its other output (tests/support/node_sdk_suite.py).
const REPLY_MARK = "@@workermon-node-sdk-suite ";

type Reply = Record<string, unknown> & { id?: number; error?: string };

/**
 * The suite for one test file: HeartbeatService (tests/support/node_sdk_suite.py) on REDIS_URL or an
 * embedded Redis, with a suite Redis prefix and a BullMQ prefix of its own, both deleted at `stop()`.
 */
export class Suite {
  readonly bullPrefix = `wmnode-${randomUUID().slice(0, 8)}`;
  readonly redisPrefix = `wmtest-node-${randomUUID().slice(0, 8)}`;
  target = "";
  redisUrl = "";
  private child: ChildProcessWithoutNullStreams | undefined;
  private readonly waiting = new Map<number, (reply: Reply) => void>();
  private nextId = 1;
  private viewer: { stub: HeartbeatServiceClient; meta: () => grpc.Metadata } | undefined;
  private service: { stub: HeartbeatServiceClient; meta: () => grpc.Metadata } | undefined;

  /** Start the suite and wait until it serves. */
  async start(): Promise<void> {
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) {
      // Hermetic: the suite gets only the settings the test gives it (REDIS_URL is the repository's convention).
      if (!key.startsWith("WORKERMON_") && key !== "DATABASE_URL") env[key] = value;
    }
    const child = spawn(
      join(ROOT, ".venv", "bin", "python"),
      ["-m", "tests.support.node_sdk_suite", "--redis-prefix", this.redisPrefix, "--bull-prefix", this.bullPrefix],
      { cwd: ROOT, env, stdio: ["pipe", "pipe", "pipe"] },
    );
    this.child = child;
    const stderr: string[] = [];
    child.stderr.on("data", (chunk: Buffer) => {
      stderr.push(chunk.toString());
      if (stderr.length > 200) stderr.shift();
    });
    const lines = createInterface({ input: child.stdout });
    const first = new Promise<Reply>((resolveFirst, rejectFirst) => {
      child.once("exit", (code) => rejectFirst(new Error(`the suite exited with ${code}: ${stderr.join("")}`)));
      const onLine = (line: string): void => {
        if (!line.startsWith(REPLY_MARK)) return;
        lines.off("line", onLine);
        resolveFirst(JSON.parse(line.slice(REPLY_MARK.length)) as Reply);
      };
      lines.on("line", onLine);
    });
    const ready = await first;
    this.target = String(ready.target);
    this.redisUrl = String(ready.redisUrl);
    lines.on("line", (line) => {
      if (!line.startsWith(REPLY_MARK)) return;
      const reply = JSON.parse(line.slice(REPLY_MARK.length)) as Reply;
      const answer = this.waiting.get(Number(reply.id));
      this.waiting.delete(Number(reply.id));
      answer?.(reply);
    });
    this.viewer = this.client(await this.token("viewer"));
    this.service = this.client(String((await this.request({ cmd: "service_token" })).token));
  }

  /** Stop the suite; it deletes its keys and the BullMQ prefix's, and any Redis it started. */
  async stop(): Promise<void> {
    this.viewer?.stub.close();
    this.service?.stub.close();
    const child = this.child;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.stdin.end();
    await exited;
  }

  /** One request to the suite process (see tests/support/node_sdk_suite.py). */
  async request(request: Record<string, unknown>): Promise<Reply> {
    const id = this.nextId++;
    const reply = await new Promise<Reply>((r) => {
      this.waiting.set(id, r);
      this.child?.stdin.write(JSON.stringify({ id, ...request }) + "\n");
    });
    if (reply.error) throw new Error(reply.error);
    return reply;
  }

  /** A token: `worker` ones are bound to `workerId`, as `workermon token --role worker --worker ID` mints them. */
  async token(role: "worker" | "viewer", workerId?: string): Promise<string> {
    return String((await this.request({ cmd: "mint", role, worker: workerId })).token);
  }

  /** Stop HeartbeatService (a monitor outage); `restartHeartbeat()` brings it back on the same port. */
  async stopHeartbeat(): Promise<void> {
    await this.request({ cmd: "stop_heartbeat" });
  }

  /** One beat of a Python worker (the Python SDK's TimingRecorder) carrying a sketch of `samples` ms. */
  async pythonTimings(worker: string, queue: string, finishedMs: number, samples: number[]): Promise<void> {
    await this.request({ cmd: "python_timings", worker, queue, finishedMs, samples });
  }

  /** Start HeartbeatService again after `stopHeartbeat()`. */
  async restartHeartbeat(): Promise<void> {
    await this.request({ cmd: "start_heartbeat" });
  }

  /** The worker as GetWorker shows it to a viewer, undefined before its first beat. */
  async worker(workerId: string): Promise<RegistryWorker | undefined> {
    try {
      const response = await call<GetWorkerResponse>((cb) => this.viewer!.stub.getWorker(GetWorkerRequest.fromPartial({ workerId }), this.viewer!.meta(), cb));
      return response.worker;
    } catch (err) {
      if ((err as grpc.ServiceError).code === grpc.status.NOT_FOUND) return undefined;
      throw err;
    }
  }

  /** Every worker ListWorkers shows for `queue` (instrumented first, then those seen only in CLIENT LIST). */
  async listWorkers(queue: string): Promise<RegistryWorker[]> {
    const response = await call<ListWorkersResponse>((cb) =>
      this.viewer!.stub.listWorkers(ListWorkersRequest.fromPartial({ queue, pageSize: 500 }), this.viewer!.meta(), cb),
    );
    return response.workers;
  }

  /** Wait until GetWorker shows the worker matching `check`; returns it. */
  async workerWhere(workerId: string, what: string, check: (w: RegistryWorker) => boolean, limitMs = 20_000): Promise<RegistryWorker> {
    let seen: RegistryWorker | undefined;
    try {
      return await waitFor(async () => {
        seen = await this.worker(workerId);
        return seen !== undefined && check(seen) ? seen : undefined;
      }, what, limitMs);
    } catch (err) {
      // Say what the service showed last: a failure on another machine is then readable from its log.
      const report = seen?.report;
      const shown = report === undefined ? "no report" : JSON.stringify({ ...report, timings: undefined, startedAt: undefined });
      throw new Error(`${(err as Error).message}; last report: ${shown}`);
    }
  }

  /** Send a command as MonitorService does and wait until the worker answered it (or it failed). */
  async command(workerId: string, type: CommandType, jobId = "", reason = ""): Promise<Command> {
    const sent = await call<SendCommandResponse>((cb) =>
      this.service!.stub.sendCommand(SendCommandRequest.fromPartial({ workerId, type, jobId, reason }), this.service!.meta(), cb),
    );
    const commandId = sent.command!.commandId;
    const pending = [CommandStatus.COMMAND_STATUS_PENDING, CommandStatus.COMMAND_STATUS_DELIVERED];
    return waitFor(async () => {
      const got = await call<GetCommandResponse>((cb) => this.viewer!.stub.getCommand(GetCommandRequest.fromPartial({ commandId }), this.viewer!.meta(), cb));
      return got.command !== undefined && !pending.includes(got.command.status) ? got.command : undefined;
    }, `an answer to command ${CommandType[type]}`);
  }

  /** The service's merge of every worker's timings for `queue` in the minute starting at `minuteMs`. */
  async queueTimings(queue: string, minuteMs: number): Promise<JobTimings | undefined> {
    const response = await call<GetQueueTimingsResponse>((cb) =>
      this.viewer!.stub.getQueueTimings(
        GetQueueTimingsRequest.fromPartial({ queues: [queue], minuteTime: new Date(minuteMs) }),
        this.viewer!.meta(),
        cb,
      ),
    );
    return response.timings.find((t) => t.queue === queue);
  }

  private client(token: string): { stub: HeartbeatServiceClient; meta: () => grpc.Metadata } {
    const meta = (): grpc.Metadata => {
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${token}`);
      return metadata;
    };
    return { stub: new HeartbeatServiceClient(this.target, grpc.credentials.createInsecure()), meta };
  }
}

/** A unary grpc-js call as a promise. */
export function call<T>(invoke: (cb: (err: grpc.ServiceError | null, value?: T) => void) => unknown): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    invoke((err, value) => (err ? reject(err) : resolvePromise(value as T)));
  });
}

/** A queue name unique to this run. */
export function queueName(what: string): string {
  return `${what}-${randomUUID().slice(0, 8)}`;
}
