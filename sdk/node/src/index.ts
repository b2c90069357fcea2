/** Worker Monitor SDK for Node: `instrument(worker, options)` makes a BullMQ worker report and obey commands. */
export { Backoff } from "./backoff.js";
export {
  type CommandHandler,
  type ConnectionOptions,
  defaultWorkerId,
  HeartbeatClient,
  type HeartbeatClientOptions,
  type Logger,
  type TokenSource,
  type WorkerStats,
} from "./client.js";
export {
  type GaugeReader,
  instrument,
  type InstrumentOptions,
  InstrumentedWorker,
  type JobLike,
  parseClientInfo,
  type WorkerLike,
} from "./bullmq.js";
export { CommandLedger, type CommandOutcome } from "./ledger.js";
export { RELATIVE_ACCURACY, sketchFromMessage, sketchMessage, TimingRecorder } from "./timings.js";
export { SDK_NAME, VERSION } from "./version.js";
export {
  CommandStatus,
  CommandType,
  WorkerState,
  type DurationSketch,
  type JobTimings,
  type WorkerCommand,
  type WorkerReport,
} from "./gen/workermon/heartbeat/v1/heartbeat_service.js";
