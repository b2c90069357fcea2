// Worker Monitor test fixture: adds jobs to a queue with Node BullMQ and runs a Node worker on it.
//
//   node produce.mjs <redis url> <prefix> <queue> <mode>
//
// mode "mixed": add the fixture jobs, then work; "work": only work; "produce": only add.
// Prints one JSON object per line ({"event": "ready", ...}); stops on a "stop" line or end of stdin.
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';
import readline from 'node:readline';

const [url, prefix, queueName, mode = 'mixed'] = process.argv.slice(2);
if (!url || !prefix || !queueName || !['mixed', 'work', 'produce'].includes(mode)) {
  console.error('usage: node produce.mjs <redis url> <prefix> <queue> <mixed|work|produce>');
  process.exit(2);
}

const connection = new IORedis(url, { maxRetriesPerRequest: null });
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
  await queue.close();
  await connection.quit();
  process.exit(code);
}

try {
  const ids = mode === 'work' ? {} : await produce();
  if (mode !== 'produce') work();
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
