// Worker Monitor test fixture: fills a queue with Node BullMQ (6, or 5 through the `bullmq5` alias) for
// the search, bulk action, export and obliterate tests, then exits.
//
//   node search_fill.mjs <bullmq | bullmq5> <redis url> <prefix> <queue>
//
// Leaves: 1 failed `boom` job (reason "disk full on /var/data"), 3 waiting `ok` jobs with UTF-8 text,
// 2 delayed `later` jobs, 1 prioritized `prio` job and 1 waiting `dedup` job with a deduplication id.
// Prints one JSON line: {"event": "done", "version": <the package's version>, "ids": {...}}.
import IORedis from 'ioredis';
import { createRequire } from 'node:module';

const [pkg, url, prefix, queueName] = process.argv.slice(2);
if (!['bullmq', 'bullmq5'].includes(pkg) || !url || !prefix || !queueName) {
  console.error('usage: node search_fill.mjs <bullmq|bullmq5> <redis url> <prefix> <queue>');
  process.exit(2);
}
const { Queue, Worker, QueueEvents } = await import(pkg);
const version = createRequire(import.meta.url)(`${pkg}/package.json`).version;

const connection = new IORedis(url, { maxRetriesPerRequest: null });
const queue = new Queue(queueName, { connection, prefix });
const ids = {};

// The failed job first, alone in the queue, so the worker that fails it takes nothing else.
const events = new QueueEvents(queueName, { connection: new IORedis(url, { maxRetriesPerRequest: null }), prefix });
await events.waitUntilReady();
const boom = await queue.add('boom', { n: 0 }, { attempts: 1 });
ids.boom = boom.id;
const failed = new Promise((resolve) => events.on('failed', ({ jobId }) => jobId === boom.id && resolve()));
const worker = new Worker(
  queueName,
  async () => {
    throw new Error('disk full on /var/data');
  },
  { connection: new IORedis(url, { maxRetriesPerRequest: null }), prefix },
);
await failed;
await worker.close();
await events.close();

ids.ok = [];
for (let n = 0; n < 3; n++) ids.ok.push((await queue.add('ok', { n, text: 'héllo wörld' })).id);
ids.later = [];
for (let n = 0; n < 2; n++) ids.later.push((await queue.add('later', { n }, { delay: 3_600_000 * (n + 1) })).id);
ids.prio = (await queue.add('prio', { n: 0 }, { priority: 4 })).id;
ids.dedup = (await queue.add('dedup', { n: 0 }, { deduplication: { id: 'same-order' } })).id;

process.stdout.write(JSON.stringify({ event: 'done', version, ids }) + '\n');
await queue.close();
await connection.quit();
process.exit(0);
