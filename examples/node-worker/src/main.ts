/**
 * The composition root: what NestJS's `NestFactory.createApplicationContext(WorkerModule)` and
 * `enableShutdownHooks()` would do, by hand. Run from sdk/node after `npm run build`:
 *
 *   WORKERMON_TARGET=127.0.0.1:50051 WORKERMON_TOKEN=$(uv run workermon token --role worker --sub reports --worker reports-node-1) \
 *   WORKER_ID=reports-node-1 QUEUE_REDIS_URL=redis://127.0.0.1:6379 node dist-example/main.js
 */
import { BrowserPool, ReportProcessor } from "./report.processor.js";
import { ReportWorkerHost } from "./worker.host.js";

const env = process.env;
const logger = { log: (message: string) => console.log(`[report-worker] ${message}`) };
const browsers = new BrowserPool();
const host = new ReportWorkerHost(
  {
    queue: env.QUEUE ?? "reports",
    redisUrl: env.QUEUE_REDIS_URL ?? env.REDIS_URL ?? "redis://127.0.0.1:6379",
    prefix: env.BULL_PREFIX ?? "bull",
    concurrency: Number(env.CONCURRENCY ?? 2),
    workerId: env.WORKER_ID,
    target: env.WORKERMON_TARGET,
  },
  new ReportProcessor(browsers, logger),
  browsers,
  logger,
);

host.onModuleInit();
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => void host.onApplicationShutdown(signal));
}
// After a shutdown hook or a STOP from Worker Monitor: the worker is closed and has said goodbye.
await host.closed;
logger.log("closed");
process.exit(0);
