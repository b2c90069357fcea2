/**
 * BullMQ 5 and 6 workers instrumented with the SDK, and Node timings merged with Python ones, seen through the
 * real HeartbeatService (one suite process for the file: starting it costs seconds of CPU).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import { randomUUID } from "node:crypto";
import { Backoff, CommandStatus, CommandType, HeartbeatClient, RELATIVE_ACCURACY, sketchFromMessage, WorkerState } from "../src/index.js";
import { SDK_NAME } from "../src/version.js";
import { WorkerKind, WorkerStatus } from "../src/gen/workermon/heartbeat/v1/heartbeat_service.js";
import { startWorker } from "./fixture.js";
import { connectionOptions, Suite, VERSIONS, waitFor } from "./support.js";

const suite = new Suite();
before(() => suite.start());
after(() => suite.stop());

for (const version of VERSIONS) {
  describe(version.label, () => {
    test("the report arrives with the worker's figures", async () => {
      const run = await startWorker(suite, version, "report", { labels: { team: "node" }, version: "1.2.3" });
      try {
        let browsers = 3;
        run.monitor.gauge("open_browsers", () => browsers);
        const held = await run.queue.add("held", { hold: true });
        await run.queue.add("quick", { ms: 10 });
        await run.queue.add("quick", { ms: 30 });
        await run.queue.add("broken", { fail: true });
        const busy = await suite.workerWhere(run.workerId, "one job held, three finished", (w) =>
          (w.report?.processedTotal ?? 0) === 2 && w.report?.failedTotal === 1 && w.report.activeJobs === 1,
        );
        const report = busy.report!;
        assert.equal(busy.status, WorkerStatus.WORKER_STATUS_ONLINE);
        assert.equal(report.sdk, SDK_NAME);
        assert.match(report.sdk, /^workermon-node\/\d+\.\d+\.\d+$/);
        assert.equal(report.pid, process.pid);
        assert.deepEqual(report.queues, [run.queueName]);
        assert.equal(report.concurrency, 2);
        assert.deepEqual(report.labels, { team: "node" });
        assert.equal(report.version, "1.2.3");
        assert.deepEqual(report.activeJobIds, [String(held.id)]);
        assert.equal(report.state, WorkerState.WORKER_STATE_RUNNING);
        assert.equal(report.gauges?.custom.open_browsers, 3);
        assert.ok((report.gauges?.rssBytes ?? 0) > 1_000_000, "rss reported");
        assert.ok((report.gauges?.cpuPercent ?? -1) >= 0, "cpu reported");
        assert.ok(report.startedAt !== undefined && report.startedAt.getTime() <= Date.now());
        assert.equal(report.instanceId, run.monitor.heartbeat.instanceId);

        // Both BullMQ connections, as Redis itself lists them.
        const withClients = await suite.workerWhere(run.workerId, "both redis clients", (w) => w.report?.redisClients.length === 2);
        const redis = new Redis(suite.redisUrl);
        const listed = String(await redis.call("CLIENT", "LIST"));
        redis.disconnect();
        for (const own of withClients.report!.redisClients) {
          assert.match(listed, new RegExp(`(^|\\n)id=${own.id} addr=${own.addr.replace(/\./g, "\\.")} `), `client ${own.id} in CLIENT LIST`);
        }

        // A gauge and concurrency change show on the next beat; the event loop blocked for 250 ms shows as lag.
        // Lag is the worst delay since the previous beat, so it shows for one beat only: a newer beat found
        // without it makes the test block the loop again rather than count on catching that one beat.
        browsers = 5;
        (run.worker as unknown as { concurrency: number }).concurrency = 3;
        blockEventLoop(250);
        let beatAtBlock = withClients.lastSeenTime!.getTime();
        await suite.workerWhere(run.workerId, "event loop lag, the new gauge and concurrency", (w) => {
          const lagged = (w.report?.gauges?.eventLoopLagMs ?? 0) >= 100;
          const beat = w.lastSeenTime!.getTime();
          if (!lagged && beat > beatAtBlock) {
            beatAtBlock = beat;
            blockEventLoop(250);
          }
          return lagged && w.report?.gauges?.custom.open_browsers === 5 && w.report.concurrency === 3;
        });

        // Every finished attempt is in the minute's timings (a held job finishes after release).
        run.release(String(held.id));
        const done = await suite.workerWhere(run.workerId, "all four finished", (w) => w.report?.processedTotal === 3 && w.report.activeJobs === 0);
        assert.deepEqual(done.report!.activeJobIds, []);
        const now = Date.now();
        const counted = await waitFor(async () => {
          let count = 0;
          for (const minute of [now - (now % 60_000) - 60_000, now - (now % 60_000)]) {
            count += (await suite.queueTimings(run.queueName, minute))?.processing?.count ?? 0;
          }
          return count === 4 ? count : undefined;
        }, "four attempts in the queue's timings");
        assert.equal(counted, 4);
      } finally {
        await run.stop();
      }
    });

    test("QUIET stops taking jobs while the active ones finish; RESUME takes them again", async () => {
      const run = await startWorker(suite, version, "quiet");
      try {
        const first = await run.queue.add("held", { hold: true });
        const second = await run.queue.add("held", { hold: true });
        await suite.workerWhere(run.workerId, "two active jobs", (w) => w.report?.activeJobs === 2);

        const quiet = await suite.command(run.workerId, CommandType.COMMAND_TYPE_QUIET);
        assert.equal(quiet.status, CommandStatus.COMMAND_STATUS_ACKED, quiet.result);
        assert.match(quiet.result, /quiet: taking no new jobs, 2 still active/);
        await run.queue.add("later", { ms: 5 });
        await run.queue.add("later", { ms: 5 });
        run.release(String(first.id));
        run.release(String(second.id));
        const idle = await suite.workerWhere(run.workerId, "quiet with the active jobs finished", (w) =>
          w.report?.state === WorkerState.WORKER_STATE_QUIET && w.report.processedTotal === 2 && w.report.activeJobs === 0,
        );
        // Two more beats later it still has taken nothing new.
        const seen = idle.lastSeenTime!.getTime();
        const later = await suite.workerWhere(run.workerId, "two more beats", (w) => w.lastSeenTime!.getTime() >= seen + 1500);
        assert.equal(later.report!.processedTotal, 2);
        assert.equal(later.report!.activeJobs, 0);
        assert.equal(await run.queue.getWaitingCount(), 2);

        const resume = await suite.command(run.workerId, CommandType.COMMAND_TYPE_RESUME);
        assert.equal(resume.status, CommandStatus.COMMAND_STATUS_ACKED, resume.result);
        await suite.workerWhere(run.workerId, "running again, the waiting jobs done", (w) =>
          w.report?.state === WorkerState.WORKER_STATE_RUNNING && w.report.processedTotal === 4,
        );
        assert.equal(await run.queue.getWaitingCount(), 0);
      } finally {
        await run.stop();
      }
    });

    test("CANCEL_JOB cancels through BullMQ's cancellation, and says when it could not", async () => {
      const run = await startWorker(suite, version, "cancel", { cancelGraceMs: 500 });
      try {
        assert.equal(typeof (run.worker as unknown as { cancelJob?: unknown }).cancelJob, "function", `${version.label} has Worker.cancelJob`);
        const honours = await run.queue.add("held", { hold: true });
        const ignores = await run.queue.add("stubborn", { hold: true, ignoreSignal: true });
        await suite.workerWhere(run.workerId, "two active jobs", (w) => w.report?.activeJobs === 2);

        const cancelled = await suite.command(run.workerId, CommandType.COMMAND_TYPE_CANCEL_JOB, String(honours.id), "operator says so");
        assert.equal(cancelled.status, CommandStatus.COMMAND_STATUS_ACKED, cancelled.result);
        assert.match(cancelled.result, /cancelled/);
        assert.equal(await (await run.queue.getJob(String(honours.id)))?.getState(), "failed");
        const job = await run.queue.getJob(String(honours.id));
        assert.match(job?.failedReason ?? "", /operator says so/);

        const refused = await suite.command(run.workerId, CommandType.COMMAND_TYPE_CANCEL_JOB, String(ignores.id));
        assert.equal(refused.status, CommandStatus.COMMAND_STATUS_FAILED, refused.result);
        assert.match(refused.result, /ignored its abort signal/);
        assert.equal(await (await run.queue.getJob(String(ignores.id)))?.getState(), "active");

        const missing = await suite.command(run.workerId, CommandType.COMMAND_TYPE_CANCEL_JOB, "no-such-job");
        assert.equal(missing.status, CommandStatus.COMMAND_STATUS_FAILED);
        assert.match(missing.result, /not running on this worker/);
        run.release(String(ignores.id));
        await suite.workerWhere(run.workerId, "the stubborn job done", (w) => w.report?.processedTotal === 1 && w.report.failedTotal === 1);
      } finally {
        await run.stop();
      }
    });

    test("CANCEL_JOB on a BullMQ without Worker.cancelJob answers UNSUPPORTED, naming the version", async () => {
      // Both installed versions have cancelJob (BullMQ 5 gained it in 5.x): the method is hidden to stand for
      // an older release; the SDK looks for it on the worker it was given, so the path is the real one.
      const run = await startWorker(suite, version, "nocancel");
      try {
        Object.defineProperty(run.worker, "cancelJob", { value: undefined });
        const held = await run.queue.add("held", { hold: true });
        await suite.workerWhere(run.workerId, "one active job", (w) => w.report?.activeJobs === 1);
        const answer = await suite.command(run.workerId, CommandType.COMMAND_TYPE_CANCEL_JOB, String(held.id));
        assert.equal(answer.status, CommandStatus.COMMAND_STATUS_UNSUPPORTED, answer.result);
        assert.match(answer.result, new RegExp(`BullMQ ${version.label.split(" ")[1]!.replace(/\./g, "\\.")} has no job cancellation`));
        run.release(String(held.id));
        await suite.workerWhere(run.workerId, "the job done", (w) => w.report?.processedTotal === 1);
      } finally {
        await run.stop();
      }
    });

    test("with the monitor down the jobs keep completing, and the worker reconnects", async () => {
      const run = await startWorker(suite, version, "outage", { backoff: new Backoff(100, 1000) });
      try {
        await run.queue.add("before", { ms: 5 });
        await suite.workerWhere(run.workerId, "the first job reported", (w) => w.report?.processedTotal === 1);
        await suite.stopHeartbeat();
        try {
          for (let i = 0; i < 5; i++) await run.queue.add("during", { ms: 5 });
          await waitFor(async () => (await run.queue.getCompletedCount()) === 6, "six jobs completed with the monitor down");
          await waitFor(() => !run.monitor.heartbeat.connected, "the client noticing the outage");
        } finally {
          await suite.restartHeartbeat();
        }
        const back = await suite.workerWhere(run.workerId, "the worker back with every job counted", (w) =>
          w.report?.processedTotal === 6 && w.status === WorkerStatus.WORKER_STATUS_ONLINE,
        );
        assert.equal(back.report!.instanceId, run.monitor.heartbeat.instanceId, "the same process, reconnected");
        assert.ok(run.monitor.heartbeat.connected);
      } finally {
        await run.stop();
      }
    });

    test("a worker the application closes itself still says goodbye", async () => {
      const run = await startWorker(suite, version, "selfclose");
      try {
        await suite.workerWhere(run.workerId, "online", (w) => w.status === WorkerStatus.WORKER_STATUS_ONLINE);
        await run.worker.close();
        await run.monitor.closed;
        const gone = await suite.workerWhere(run.workerId, "offline", (w) => w.status === WorkerStatus.WORKER_STATUS_OFFLINE);
        assert.equal(gone.offlineReason, "goodbye: worker closed");
      } finally {
        await run.stop();
      }
    });

    test("the suite shows the worker once, not also as uninstrumented, by the Redis clients it reports", async () => {
      const run = await startWorker(suite, version, "once");
      const plainQueue = `plain-${randomUUID().slice(0, 8)}`;
      const plain = version.newWorker(plainQueue, async () => "done", {
        connection: connectionOptions(suite.redisUrl),
        prefix: suite.bullPrefix,
      });
      try {
        await suite.workerWhere(run.workerId, "both redis clients reported", (w) => w.report?.redisClients.length === 2);
        // A worker without the SDK, connected as long, shows as uninstrumented: the scan has seen both.
        const seen = await waitFor(async () => {
          const workers = await suite.listWorkers(plainQueue);
          return workers.some((w) => w.kind === WorkerKind.WORKER_KIND_UNINSTRUMENTED) ? workers : undefined;
        }, "the plain worker seen in CLIENT LIST");
        assert.equal(seen.length, 1);
        const mine = await suite.listWorkers(run.queueName);
        assert.deepEqual(
          mine.map((w) => [w.report?.workerId, w.kind]),
          [[run.workerId, WorkerKind.WORKER_KIND_INSTRUMENTED]],
        );
      } finally {
        await plain.close();
        await run.stop();
      }
    });

    test("STOP finishes the active job, says goodbye and resolves `closed`", async () => {
      const run = await startWorker(suite, version, "stop");
      try {
        const held = await run.queue.add("held", { hold: true });
        await suite.workerWhere(run.workerId, "one active job", (w) => w.report?.activeJobs === 1);
        const stop = await suite.command(run.workerId, CommandType.COMMAND_TYPE_STOP, "", "deploy");
        assert.equal(stop.status, CommandStatus.COMMAND_STATUS_ACKED, stop.result);
        assert.match(stop.result, /finishing 1 active jobs/);
        await suite.workerWhere(run.workerId, "stopping", (w) => w.report?.state === WorkerState.WORKER_STATE_STOPPING);
        run.release(String(held.id));
        await run.monitor.closed;
        assert.equal(await (await run.queue.getJob(String(held.id)))?.getState(), "completed");
        const gone = await suite.workerWhere(run.workerId, "offline after goodbye", (w) => w.status === WorkerStatus.WORKER_STATUS_OFFLINE);
        assert.match(gone.offlineReason, /goodbye: stop command: deploy/);
        assert.equal(gone.report?.processedTotal, 1);
      } finally {
        await run.stop();
      }
    });
  });
}

/** A deterministic stream of log-normal durations (ms): a few fast, most around 100 ms, a long tail. */
function samples(seed: number, n: number): number[] {
  let state = seed;
  const next = (): number => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return (state + 1) / 2_147_483_649;
  };
  return Array.from({ length: n }, () => {
    const normal = Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
    return Math.round(Math.exp(4.6 + 1.2 * normal) * 1000) / 1000;
  });
}

test("a Node sketch and a Python sketch merged by the service give the combined samples' quantiles within 1 %", async () => {
  const queue = `timings-${randomUUID().slice(0, 8)}`;
  const now = Date.now();
  const minute = now - (now % 60_000);
  const finished = minute + 1_000;
  const fromNode = samples(7, 1500);
  const fromPython = [...samples(11, 1000).map((v) => v * 3), 0, 0];

  const workerId = `node-timings-${randomUUID().slice(0, 8)}`;
  const client = new HeartbeatClient({ target: suite.target, token: await suite.token("worker", workerId), workerId, queues: [queue] });
  for (const value of fromNode) client.recordJob(queue, finished - value, finished);
  client.start();
  try {
    await waitFor(() => client.responses > 0 && client.timings.pending === 0, "the Node timings delivered");
  } finally {
    await client.stop();
  }
  await suite.pythonTimings(`python-timings-${randomUUID().slice(0, 8)}`, queue, finished, fromPython);

  const merged = await waitFor(async () => {
    const timings = await suite.queueTimings(queue, minute);
    return timings?.processing?.count === fromNode.length + fromPython.length ? timings.processing : undefined;
  }, "both sketches merged");
  const all = [...fromNode, ...fromPython].sort((a, b) => a - b);
  assert.equal(merged.zeroCount, 2);
  assert.equal(merged.min, 0);
  assert.equal(merged.max, all[all.length - 1]);
  assert.ok(Math.abs(merged.sum - all.reduce((a, b) => a + b, 0)) < 1e-6 * merged.sum);

  const sketch = sketchFromMessage(merged);
  for (const q of [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99]) {
    const rank = q * (all.length - 1);
    const candidates = [all[Math.floor(rank)]!, all[Math.ceil(rank)]!];
    const estimate = sketch.getValueAtQuantile(q);
    const error = Math.min(...candidates.map((exact) => Math.abs(estimate - exact) / exact));
    assert.ok(error <= RELATIVE_ACCURACY + 1e-9, `q${q}: ${estimate} vs exact ${candidates.join("/")} (${(error * 100).toFixed(3)} %)`);
  }
});


test("a token bound to another worker is logged as an error, and the worker's jobs go on", async () => {
  const errors: string[] = [];
  const logger = { info: () => undefined, warn: () => undefined, error: (m: string) => errors.push(m) };
  const run = await startWorker(suite, VERSIONS[0]!, "refused", { token: await suite.token("worker", "someone-else"), logger });
  try {
    await run.queue.add("quick", { ms: 5 });
    await waitFor(async () => (await run.queue.getCompletedCount()) === 1, "the job completed");
    await waitFor(() => errors.length > 0, "the refusal logged");
    assert.match(errors[0]!, /PERMISSION_DENIED/);
    assert.equal(await suite.worker(run.workerId), undefined, "never registered");
  } finally {
    await run.stop();
  }
});

/** Keep the event loop busy for `ms` (by the monotonic clock the SDK's lag reading uses). */
function blockEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy on purpose: a blocked event loop
  }
}
