// Worker Monitor benchmark baseline: bull-board serving the benchmark's BullMQ queues.
//
//   node board.mjs <redis url> <bullmq prefix> <queue>[,<queue>...]
//
// Listens on a free loopback port and prints `PORT <n>` once it accepts requests (the same handshake
// as `python -m bench.server`); serves until SIGTERM.
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Queue } from 'bullmq';
import express from 'express';
import IORedis from 'ioredis';

const [url, prefix, names] = process.argv.slice(2);
if (!url || !prefix || !names) {
  console.error('usage: node board.mjs <redis url> <bullmq prefix> <queue>[,<queue>...]');
  process.exit(2);
}

// One client for every queue: BullMQ 6 needs a constructed client under native ESM, and its Queue
// uses no blocking command, so one connection serves them all.
const connection = new IORedis(url, { maxRetriesPerRequest: null });
const queues = names.split(',').map((name) => new Queue(name, { connection, prefix }));
await Promise.all(queues.map((queue) => queue.waitUntilReady()));

const serverAdapter = new ExpressAdapter();
serverAdapter.setBasePath('/');
createBullBoard({ queues: queues.map((queue) => new BullMQAdapter(queue)), serverAdapter });

const app = express();
app.use('/', serverAdapter.getRouter());
const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});

async function stop() {
  server.close();
  server.closeAllConnections();
  await Promise.allSettled(queues.map((queue) => queue.close()));
  connection.disconnect();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
