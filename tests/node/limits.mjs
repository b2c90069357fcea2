// Worker Monitor test fixture: queues held back by BullMQ's limits, written by Node BullMQ itself.
//
//   node limits.mjs <redis url> <prefix> <queue> <mode> [bullmq|bullmq5]
//
// The last argument picks the BullMQ major version (6 by default; `bullmq5` is BullMQ 5 under an npm
// alias), so each layout is written by the BullMQ that defines it.
// ratelimit:   a rate limit of 2 jobs per minute, 5 jobs and a worker: 2 run, 3 wait. A global limit
//              (`setGlobalRateLimit`, stored in the meta hash) where this BullMQ has one; a BullMQ 5
//              without it (5.47 has none) gets the limit through the worker's `limiter` option, which
//              Redis never sees: only the limiter's window shows.
// concurrency: global concurrency 2, 4 jobs that hang, a worker of concurrency 4: 2 run, 2 wait.
// priorities:  prioritized jobs (priorities 1, 5, 2097151) and deduplicated jobs, no worker.
// stall:       a worker with a 1 s lock that starts one job and hangs (the test then kills it).
// recover:     a worker that checks for stalled jobs every 300 ms and completes what it takes.
// Prints one JSON object per line ({"event": "ready", ...}); stops on a "stop" line or end of stdin.
import readline from 'node:readline';

const [url, prefix, queueName, mode, pkg = 'bullmq'] = process.argv.slice(2);
const modes = ['ratelimit', 'concurrency', 'priorities', 'stall', 'recover'];
if (!url || !prefix || !queueName || !modes.includes(mode) || !['bullmq', 'bullmq5'].includes(pkg)) {
  console.error(`usage: node limits.mjs <redis url> <prefix> <queue> <${modes.join('|')}> [bullmq|bullmq5]`);
  process.exit(2);
}
const { Queue, Worker } = await import(pkg);

// Options rather than a client: each BullMQ version connects with the ioredis it was built for.
const parsed = new URL(url);
const connection = {
  host: parsed.hostname,
  port: Number(parsed.port || 6379),
  db: Number(parsed.pathname.slice(1) || 0),
  maxRetriesPerRequest: null,
};
const queue = new Queue(queueName, { connection, prefix });
const say = (event, extra = {}) => process.stdout.write(JSON.stringify({ event, ...extra }) + '\n');
const hang = () => new Promise(() => {});
let worker = null;

function startWorker(processor, opts = {}) {
  worker = new Worker(queueName, processor, { connection, prefix, name: `node-${mode}`, ...opts });
  worker.on('error', (err) => say('error', { message: String(err) }));
  return worker;
}

async function setUp() {
  const ids = {};
  if (mode === 'ratelimit') {
    const global = typeof queue.setGlobalRateLimit === 'function';
    if (global) await queue.setGlobalRateLimit(2, 60_000);
    for (let n = 0; n < 5; n++) await queue.add('limited', { n });
    startWorker(async (job) => ({ n: job.data.n }), {
      concurrency: 1,
      ...(global ? {} : { limiter: { max: 2, duration: 60_000 } }),
    });
    ids.global = global;
  } else if (mode === 'concurrency') {
    await queue.setGlobalConcurrency(2);
    for (let n = 0; n < 4; n++) await queue.add('slow', { n });
    startWorker(hang, { concurrency: 4 });
  } else if (mode === 'priorities') {
    ids.prio = [];
    for (const priority of [1, 1, 1, 5, 5, 2097151]) {
      ids.prio.push((await queue.add('prio', { priority }, { priority })).id);
    }
    ids.kept = (await queue.add('dedup', { n: 0 }, { deduplication: { id: 'user-42' } })).id;
    ids.dropped = (await queue.add('dedup', { n: 1 }, { deduplication: { id: 'user-42' } })).id;
    ids.ttl = (await queue.add('dedup', { n: 2 }, { deduplication: { id: 'burst', ttl: 600_000 } })).id;
  } else if (mode === 'stall') {
    ids.job = (await queue.add('stuck', { n: 0 })).id;
    const started = new Promise((resolve) => {
      startWorker(
        async () => {
          resolve();
          await hang();
        },
        { lockDuration: 1000, stalledInterval: 1000 },
      );
    });
    await started;
  } else if (mode === 'recover') {
    startWorker(async (job) => ({ recovered: job.id }), { stalledInterval: 300, maxStalledCount: 5 });
  }
  return ids;
}

async function stop(code) {
  if (worker) await worker.close(true);
  await queue.close();
  process.exit(code);
}

try {
  say('ready', { ids: await setUp(), pid: process.pid, version: await queue.getVersion?.() });
} catch (err) {
  say('error', { message: String(err) });
  await stop(1);
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === 'stop') stop(0);
});
lines.on('close', () => stop(0));
