/** The SDK's bounded parts, on their own. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff, CommandLedger, HeartbeatClient, parseClientInfo, RELATIVE_ACCURACY, TimingRecorder } from "../src/index.js";

test("the ledger keeps at most 100 unconfirmed acks and forgets the oldest ids", () => {
  const ledger = new CommandLedger(50);
  for (let i = 0; i < 150; i++) {
    assert.ok(ledger.admit(`c${i}`));
    ledger.complete(`c${i}`, { ok: true, result: "x".repeat(2000) });
  }
  assert.equal(ledger.pending, 100);
  assert.equal(ledger.remembered, 50);
  const sent = ledger.outgoing();
  assert.equal(sent[0]!.commandId, "c50");
  assert.equal(sent[0]!.result.length, 1000);
  assert.equal(ledger.admit("c149"), false, "a repeat is not carried out again");
  ledger.confirm();
  assert.equal(ledger.pending, 0);
  assert.ok(ledger.resend("c149"), "an answered command delivered again has its ack sent again");
  const unsupported = ledger.complete("u", { ok: true, result: "no", unsupported: true });
  assert.equal(unsupported.ok, false);
  assert.equal(unsupported.unsupported, true);
});

test("the backoff draws within [0, min(cap, base * 2^attempt)] and never above the beat interval", () => {
  const backoff = new Backoff(100, 1000);
  assert.equal(backoff.ceiling(0), 100);
  assert.equal(backoff.ceiling(3), 800);
  assert.equal(backoff.ceiling(50), 1000);
  assert.equal(backoff.delay(10, 300, () => 0.999999) <= 300, true);
  assert.equal(backoff.delay(2, undefined, () => 0.5), 200);
  assert.throws(() => new Backoff(0));
});

test("CLIENT INFO gives the connection's id and address", () => {
  const line = "id=4711 addr=127.0.0.1:53012 laddr=127.0.0.1:6379 fd=9 name=bull:ZW1haWxz age=3";
  assert.deepEqual(parseClientInfo(line), { id: 4711, addr: "127.0.0.1:53012" });
  assert.equal(parseClientInfo("garbage"), undefined);
});

test("the token comes from the options, else WORKERMON_TOKEN; a worker id the service refuses is refused", () => {
  const saved = process.env.WORKERMON_TOKEN;
  try {
    delete process.env.WORKERMON_TOKEN;
    assert.throws(() => new HeartbeatClient({ target: "127.0.0.1:1" }), /WORKERMON_TOKEN/);
    process.env.WORKERMON_TOKEN = "from-env";
    const client = new HeartbeatClient({ target: "127.0.0.1:1", workerId: "w-1" });
    assert.equal(client.workerId, "w-1");
    assert.throws(() => new HeartbeatClient({ target: "127.0.0.1:1", token: "t", workerId: "no spaces" }), /invalid workerId/);
    assert.throws(() => new HeartbeatClient({ target: "127.0.0.1:1", token: "t", labels: { team: "x".repeat(257) } }), /values 256/);
    void client.stop(false);
  } finally {
    if (saved === undefined) delete process.env.WORKERMON_TOKEN;
    else process.env.WORKERMON_TOKEN = saved;
  }
});

test("the recorder keeps at most 64 (queue, minute) entries, dropping the oldest minutes", () => {
  const recorder = new TimingRecorder();
  for (let m = 0; m < 100; m++) recorder.record("q", m * 60_000 + 5, 10, 2);
  const out = recorder.outgoing();
  assert.equal(out.length, 64);
  assert.equal(out[0]!.minuteTime!.getTime(), 36 * 60_000);
  assert.equal(out[0]!.processing!.bins[231], undefined);
  recorder.confirm();
  // The suite's mapping: 100 ms falls in bin 231 in Python's ddsketch too (LogarithmicMapping(0.01).key(100)).
  recorder.record("q", 0, 100);
  const again = recorder.outgoing().find((t) => t.minuteTime!.getTime() === 0)!;
  assert.equal(again.processing!.bins[231], 1);
  assert.equal(again.processing!.gamma, (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY));
  recorder.confirm();
  assert.equal(recorder.pending, 0);
});
