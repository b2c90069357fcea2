// Worker Monitor benchmark workload: the MonitorService benchmark's queues, made by Node BullMQ itself.
//
//   node workload.mjs <redis url> <bullmq prefix> <queue>[,<queue>...] <completed> <failed> <waiting> <delayed>
//
// For every queue: Queue.addBulk of the jobs to run and of the delayed ones (hours ahead), BullMQ
// Workers that complete them or fail the planned share (one attempt, so no retry muddles the counts);
// once every run job has finished and the Workers are closed, Queue.addBulk of the jobs left waiting.
// Prints one JSON line: the seconds of each step and getJobCounts of every queue; exits 1 on an error.
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const [url, prefix, names, ...shares] = process.argv.slice(2);
const [completed, failed, waiting, delayed] = shares.map(Number);
if (!url || !prefix || !names || shares.length !== 4 || shares.some((s) => !/^\d+$/.test(s))) {
  console.error(
    'usage: node workload.mjs <redis url> <bullmq prefix> <queue>[,...] <completed> <failed> <waiting> <delayed>',
  );
  process.exit(2);
}
// Jobs in flight per Worker: enough that round trips to Redis overlap and processing is Redis-bound.
const CONCURRENCY = 200;
// Queues worked at once: every Worker holds a blocking connection, and fewer Workers each busier
// finish sooner than many idle ones polling.
const WORKERS_AT_ONCE = 10;
const HOUR_MS = 3_600_000;
const FAILURES = ['Request timed out after 30000 ms', 'HTTP 429 Too Many Requests', 'connect ECONNREFUSED'];

const connection = new IORedis(url, { maxRetriesPerRequest: null });
const queues = names.split(',').map((name) => new Queue(name, { connection, prefix }));
const seconds = (since) => (performance.now() - since) / 1000;

function job(queue, n, extra = {}) {
  // The queue's kind (its name without the number) names its jobs, as a fleet's producers do.
  return { name: queue.name.replace(/-\d+$/, ''), data: { account: (n * 7919) % 100_000, n, ...extra } };
}

// Failing jobs are spread evenly over the run ones: every `stride`-th, up to `failed` of them.
function runJobs(queue) {
  const total = completed + failed;
  const stride = failed ? total / failed : Infinity;
  const jobs = [];
  for (let n = 0; n < total; n++) {
    const fail = Math.floor(n / stride) !== Math.floor((n + 1) / stride);
    jobs.push(job(queue, n, fail ? { fail: FAILURES[n % FAILURES.length] } : {}));
  }
  for (let n = 0; n < delayed; n++) {
    jobs.push({ ...job(queue, total + n), opts: { delay: (1 + (n % 6)) * HOUR_MS } });
  }
  return jobs;
}

async function work(queue) {
  const target = completed + failed;
  if (!target) return;
  let done = 0;
  let finish;
  const finished = new Promise((resolve) => {
    finish = resolve;
  });
  const count = () => {
    done += 1;
    if (done === target) finish();
  };
  // A client of its own: the Worker duplicates it for its blocking connection but leaves it open.
  const client = new IORedis(url, { maxRetriesPerRequest: null });
  const worker = new Worker(
    queue.name,
    async (j) => {
      if (j.data.fail) throw new Error(j.data.fail);
      return { ok: true };
    },
    { connection: client, prefix, concurrency: CONCURRENCY },
  );
  worker.on('completed', count);
  worker.on('failed', count);
  worker.on('error', (err) => console.error(`worker ${queue.name}: ${err}`));
  await finished;
  await worker.close();
  await client.quit();
}

async function inBatches(items, size, step) {
  for (let first = 0; first < items.length; first += size) {
    await Promise.all(items.slice(first, first + size).map(step));
  }
}

try {
  const began = performance.now();
  await Promise.all(queues.map((queue) => queue.waitUntilReady()));
  await inBatches(queues, WORKERS_AT_ONCE, (queue) => queue.addBulk(runJobs(queue)));
  const added = performance.now();
  await inBatches(queues, WORKERS_AT_ONCE, work);
  const worked = performance.now();
  await inBatches(queues, WORKERS_AT_ONCE, (queue) =>
    queue.addBulk(Array.from({ length: waiting }, (_, k) => job(queue, completed + failed + delayed + k))),
  );
  const counts = {};
  for (const queue of queues) {
    const c = await queue.getJobCounts('completed', 'failed', 'wait', 'delayed', 'active', 'prioritized');
    counts[queue.name] = {
      completed: c.completed,
      failed: c.failed,
      waiting: c.wait,
      delayed: c.delayed,
      active: c.active,
      prioritized: c.prioritized,
    };
  }
  const report = {
    add_s: (added - began) / 1000,
    work_s: (worked - added) / 1000,
    seconds: seconds(began),
    counts,
  };
  process.stdout.write(JSON.stringify(report) + '\n');
  await Promise.all(queues.map((queue) => queue.close()));
  await connection.quit();
} catch (err) {
  console.error(err);
  process.exit(1);
}
