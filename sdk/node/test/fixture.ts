/** A BullMQ worker under test: jobs whose data says how they behave, and gates the test opens. */
import { randomUUID } from "node:crypto";
import { instrument, type InstrumentedWorker, type InstrumentOptions } from "../src/index.js";
import { type BullVersion, connectionOptions, type Processor, type QueueLike, type Suite } from "./support.js";

/** What a test job does: fail, take `ms`, or hold until its gate opens (honouring its abort signal unless told not to). */
export interface JobData {
  ms?: number;
  fail?: boolean;
  hold?: boolean;
  ignoreSignal?: boolean;
}

/** A running instrumented worker, its queue, and the gates of its held jobs. */
export interface Running {
  workerId: string;
  queueName: string;
  queue: QueueLike;
  worker: ReturnType<BullVersion["newWorker"]>;
  monitor: InstrumentedWorker;
  /** Open the gate of a held job (it then completes). */
  release(jobId: string): void;
  /** Close the monitor (if still open) and the queue. */
  stop(): Promise<void>;
}

/** Start a worker of `version` on a fresh queue, instrumented with the test's token and target. */
export async function startWorker(
  suite: Suite,
  version: BullVersion,
  what: string,
  options: Partial<InstrumentOptions> & { concurrency?: number } = {},
): Promise<Running> {
  const workerId = `node-${what}-${randomUUID().slice(0, 8)}`;
  const queueName = `${what}-${randomUUID().slice(0, 8)}`;
  const connection = connectionOptions(suite.redisUrl);
  const gates = new Map<string, () => void>();
  const opened = new Set<string>();
  async function processor(job: { id?: string; data: JobData }, _token: string | undefined, signal: AbortSignal | undefined): Promise<string> {
    const data = job.data;
    if (data.fail) throw new Error("the job failed on purpose");
    if (data.hold) {
      await new Promise<void>((resolve, reject) => {
        const id = String(job.id);
        if (opened.has(id)) return resolve();
        gates.set(id, resolve);
        if (!data.ignoreSignal) signal?.addEventListener("abort", () => reject(new Error(`aborted: ${String(signal.reason)}`)));
      });
    } else {
      await new Promise((r) => setTimeout(r, data.ms ?? 5));
    }
    return "done";
  }
  const queue = version.newQueue(queueName, { connection, prefix: suite.bullPrefix });
  const worker = version.newWorker(queueName, processor as Processor, {
    connection,
    prefix: suite.bullPrefix,
    concurrency: options.concurrency ?? 2,
    drainDelay: 1,
  });
  // The two lines an application adds:
  const token = await suite.token("worker", workerId);
  const monitor = instrument(worker, { target: suite.target, token, workerId, ...options });
  return {
    workerId,
    queueName,
    queue,
    worker,
    monitor,
    release(jobId) {
      opened.add(jobId);
      gates.get(jobId)?.();
    },
    async stop() {
      for (const open of gates.values()) open();
      await monitor.close(true, "test finished");
      await queue.close();
    },
  };
}
