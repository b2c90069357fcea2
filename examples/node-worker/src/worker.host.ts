/**
 * The BullMQ worker as a NestJS-style provider: created in `onModuleInit`, closed in `onApplicationShutdown`,
 * with the two lines that make it a Worker Monitor worker.
 */
import { Worker } from "bullmq";
import { instrument, type InstrumentedWorker } from "@workermon/sdk";
import type { BrowserPool, Log, ReportProcessor } from "./report.processor.js";

/** What the host needs from the environment (NestJS: a ConfigService). */
export interface WorkerConfig {
  queue: string;
  redisUrl: string;
  prefix: string;
  concurrency: number;
  workerId?: string;
  /** host:port of Worker Monitor; the SDK reads WORKERMON_TARGET when unset. */
  target?: string;
}

/** Owns the BullMQ worker and its monitoring for the lifetime of the application. */
export class ReportWorkerHost {
  private monitor: InstrumentedWorker<Worker> | undefined;

  /** The processor, its browser pool and a logger come in through the constructor. */
  constructor(
    private readonly config: WorkerConfig,
    private readonly processor: ReportProcessor,
    private readonly browsers: BrowserPool,
    private readonly logger: Log,
  ) {}

  /** Start the worker (NestJS calls this once the module's providers exist). */
  onModuleInit(): void {
    const worker = new Worker(this.config.queue, (job, token, signal) => this.processor.process(job, token, signal), {
      connection: redisOptions(this.config.redisUrl),
      prefix: this.config.prefix,
      concurrency: this.config.concurrency,
    });
    worker.on("error", (err) => this.logger.log(`bullmq: ${err.message}`));
    // The token comes from WORKERMON_TOKEN (a worker token bound to this worker id).
    this.monitor = instrument(worker, {
      target: this.config.target,
      workerId: this.config.workerId,
      labels: { team: "analytics", language: "node" },
      version: "example-1.0",
      gauges: { open_browsers: () => this.browsers.size },
    });
  }

  /** Resolves once the worker is closed: after `onApplicationShutdown`, or a STOP sent from Worker Monitor. */
  get closed(): Promise<void> {
    return this.monitor?.closed ?? Promise.resolve();
  }

  /** Finish the active jobs, then say goodbye (NestJS calls this on SIGTERM with enableShutdownHooks()). */
  async onApplicationShutdown(signal?: string): Promise<void> {
    await this.monitor?.close(false, signal ? `signal ${signal}` : "shutdown");
  }
}

/** ioredis options for a redis:// URL (BullMQ needs maxRetriesPerRequest: null on a worker's connection). */
export function redisOptions(url: string): { host: string; port: number; db: number; username?: string; password?: string; maxRetriesPerRequest: null } {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    db: Number(parsed.pathname.slice(1) || 0),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    maxRetriesPerRequest: null,
  };
}
