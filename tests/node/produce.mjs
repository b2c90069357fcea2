// Worker Monitor test fixture: adds jobs to a queue with Node BullMQ and runs a Node worker on it.
//
//   node produce.mjs <redis url> <prefix> <queue> <mode> [bullmq|bullmq5]
//
// mode "mixed": add the fixture jobs, then work; "work": only work; "produce": only add; "flows": add a
// three-level flow across <queue> and <queue>-kids and two job schedulers on <queue>-sched, then work
// both flow queues (see flows()).
// Prints one JSON object per line ({"event": "ready", ...}); stops on a "stop" line or end of stdin.
import IORedis from 'ioredis';
import readline from 'node:readline';

const [url, prefix, queueName, mode = 'mixed', pkg = 'bullmq'] = process.argv.slice(2);
if (!['bullmq', 'bullmq5'].includes(pkg)) {
  console.error('the package is bullmq (6) or bullmq5');
  process.exit(2);
}
const { FlowProducer, Queue, Worker } = await import(pkg);
if (!url || !prefix || !queueName || !['mixed', 'work', 'produce', 'flows'].includes(mode)) {
  console.error('usage: node produce.mjs <redis url> <prefix> <queue> <mixed|work|produce|flows>');
  process.exit(2);
}

// BullMQ 5 brings its own ioredis: it gets connection options rather than a client of ioredis 6.
const parsed = new URL(url);
const connection =
  pkg === 'bullmq'
    ? new IORedis(url, { maxRetriesPerRequest: null })
    : { host: parsed.hostname, port: Number(parsed.port || 6379), db: Number(parsed.pathname.slice(1) || 0), maxRetriesPerRequest: null };
const queue = new Queue(queueName, { connection, prefix });
const say = (event, extra = {}) => process.stdout.write(JSON.stringify({ event, ...extra }) + '\n');

async function produce() {
  const ids = { ok: [], flaky: [], later: [], prio: [] };
  for (let n = 0; n < 3; n++) {
    ids.ok.push((await queue.add('ok', { n, text: 'héllo wörld' })).id);
  }
  for (let n = 0; n < 2; n++) {
    ids.flaky.push((await queue.add('flaky', { n }, { attempts: 1 })).id);
  }
  for (let n = 0; n < 2; n++) {
    ids.later.push((await queue.add('later', { n }, { delay: 3_600_000 * (n + 1) })).id);
  }
  ids.prio.push((await queue.add('prio', { n: 0 }, { priority: 4 })).id);
  return ids;
}

// root (queue) waits on: mid (queue, itself parent of g1 and g2 in kids), bad (fails, no option: keeps the
// root waiting for ever), ign (fails, ignoreDependencyOnFailure) and hold (delayed an hour). Once the
// workers are done the root is stuck in waiting-children with bad and hold pending.
const extraWorkers = [];
async function flows() {
  const kids = `${queueName}-kids`;
  const producer = new FlowProducer({ connection, prefix });
  const tree = await producer.add({
    name: 'root',
    queueName,
    data: { level: 0 },
    children: [
      {
        name: 'mid',
        queueName,
        data: { level: 1 },
        children: [
          { name: 'ok', queueName: kids, data: { n: 1 } },
          { name: 'ok', queueName: kids, data: { n: 2 } },
        ],
      },
      { name: 'bad', queueName: kids, data: { level: 1 } },
      { name: 'ign', queueName: kids, data: { level: 1 }, opts: { ignoreDependencyOnFailure: true } },
      { name: 'hold', queueName: kids, data: { level: 1 }, opts: { delay: 3_600_000 } },
    ],
  });
  await producer.close();
  const byName = {};
  const walk = (node) => {
    byName[node.job.name === 'ok' ? `ok${node.job.data.n}` : node.job.name] = node.job.id;
    for (const child of node.children ?? []) walk(child);
  };
  walk(tree);
  const sched = new Queue(`${queueName}-sched`, { connection, prefix });
  await sched.upsertJobScheduler(
    'hourly',
    { every: 3_600_000, startDate: Date.now() + 60_000 },
    { name: 'tick', data: { x: 1 }, opts: { attempts: 2 } },
  );
  await sched.upsertJobScheduler(
    'nightly',
    { pattern: '0 3 * * *', tz: 'Asia/Seoul', limit: 10 },
    { name: 'report', data: { kind: 'daily' } },
  );
  await sched.close();
  for (const name of [queueName, kids]) {
    const w = new Worker(
      name,
      async (job) => {
        if (job.name === 'bad' || job.name === 'ign') throw new Error(`${job.name} child failed`);
        return { done: job.name, n: job.data.n ?? null };
      },
      { connection, prefix, concurrency: 2 },
    );
    w.on('error', (err) => say('error', { message: String(err) }));
    extraWorkers.push(w);
  }
  return byName;
}

let worker = null;
function work() {
  worker = new Worker(
    queueName,
    async (job) => {
      await job.log(`node processing ${job.id}`);
      await job.updateProgress(40);
      // Fails on its first run only, so a retry from outside succeeds.
      if (job.name === 'flaky' && job.attemptsMade === 0) {
        throw new Error('ECONNREFUSED 127.0.0.1:9 (first run)');
      }
      return { handled: job.id, by: 'node', text: job.data.text ?? null };
    },
    { connection, prefix, concurrency: 2, name: 'node-worker-1' },
  );
  worker.on('error', (err) => say('error', { message: String(err) }));
}

async function stop(code) {
  if (worker) await worker.close();
  for (const w of extraWorkers) await w.close();
  await queue.close();
  if (connection instanceof IORedis) await connection.quit();
  process.exit(code);
}

try {
  const ids = mode === 'flows' ? await flows() : mode === 'work' ? {} : await produce();
  if (mode !== 'produce' && mode !== 'flows') work();
  say('ready', { ids });
} catch (err) {
  say('error', { message: String(err) });
  await stop(1);
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === 'stop') stop(0);
});
lines.on('close', () => stop(0));
