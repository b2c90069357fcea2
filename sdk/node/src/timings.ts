/**
 * Durations of the jobs a worker finishes, per queue and minute, as mergeable DDSketch bins.
 *
 * A job removed on completion leaves no timestamps in Redis, so only the worker that ran it can say how long
 * it took. Same mapping as the suite's (logarithmic, 1 % relative accuracy, same gamma and bin keys as the
 * Python `ddsketch` package), so the service adds these bins to a Python worker's exactly.
 */
import { DDSketch } from "@datadog/sketches-js";
import { DurationSketch, JobTimings } from "./gen/workermon/heartbeat/v1/heartbeat_service.js";
import { MAX_TIMINGS } from "./limits.js";

export const RELATIVE_ACCURACY = 0.01;
export const MINUTE_MS = 60_000;

class Entry {
  readonly processing = new DDSketch({ relativeAccuracy: RELATIVE_ACCURACY });
  readonly wait = new DDSketch({ relativeAccuracy: RELATIVE_ACCURACY });

  merge(other: Entry): void {
    this.processing.merge(other.processing);
    this.wait.merge(other.wait);
  }
}

/** A sketch as the heartbeat contract carries it: gamma, exact count/sum/min/max, zero count, bins by key. */
export function sketchMessage(sketch: DDSketch): DurationSketch {
  const bins: Record<number, number> = {};
  const store = sketch.store;
  for (let i = 0; i < store.bins.length; i++) {
    const n = store.bins[i] ?? 0;
    if (n > 0) bins[i + store.offset] = n;
  }
  const empty = sketch.count === 0;
  return DurationSketch.fromPartial({
    gamma: sketch.mapping.gamma,
    count: sketch.count,
    sum: sketch.sum,
    min: empty ? 0 : sketch.min,
    max: empty ? 0 : sketch.max,
    zeroCount: sketch.zeroCount,
    bins,
  });
}

/** A sketch rebuilt from the contract's bins (any worker's, or the service's merge of several). */
export function sketchFromMessage(message: DurationSketch): DDSketch {
  const sketch = new DDSketch({ relativeAccuracy: RELATIVE_ACCURACY });
  if (Math.abs(sketch.mapping.gamma - message.gamma) > 1e-12 && message.count > 0) {
    throw new RangeError(`sketch gamma ${message.gamma} is not the suite's ${sketch.mapping.gamma}`);
  }
  for (const [key, n] of Object.entries(message.bins)) if (n > 0) sketch.store.add(Number(key), n);
  sketch.zeroCount = message.zeroCount;
  sketch.count = message.count;
  sketch.sum = message.sum;
  if (message.count > 0) {
    sketch.min = message.min;
    sketch.max = message.max;
  }
  return sketch;
}

/** Per-(queue, minute) sketches of finished jobs, kept (bounded) until a beat carrying them is answered. */
export class TimingRecorder {
  private open = new Map<string, Entry>();
  private inFlight = new Map<string, Entry>();

  /** Keep at most `maxEntries` (queue, minute) entries; the oldest minutes go first. */
  constructor(private readonly maxEntries = MAX_TIMINGS) {}

  /** Count one finished job attempt (completed or failed); `waitMs` when its enqueue time is known. */
  record(queue: string, finishedMs: number, processingMs: number, waitMs?: number): void {
    const key = entryKey(queue, finishedMs - (finishedMs % MINUTE_MS));
    let entry = this.open.get(key);
    if (entry === undefined) {
      entry = new Entry();
      this.open.set(key, entry);
    }
    entry.processing.accept(Math.max(processingMs, 0));
    if (waitMs !== undefined) entry.wait.accept(Math.max(waitMs, 0));
    this.bound(this.open);
  }

  /** Everything not yet confirmed, as messages for the next beat (it is now in flight). */
  outgoing(): JobTimings[] {
    for (const [key, entry] of this.open) {
      const flying = this.inFlight.get(key);
      if (flying === undefined) this.inFlight.set(key, entry);
      else flying.merge(entry);
    }
    this.open = new Map();
    this.bound(this.inFlight);
    return [...this.inFlight.entries()]
      .map(([key, entry]) => ({ ...parseKey(key), entry }))
      .sort((a, b) => a.minute - b.minute)
      .map(({ queue, minute, entry }) =>
        JobTimings.fromPartial({
          queue,
          minuteTime: new Date(minute),
          processing: sketchMessage(entry.processing),
          wait: sketchMessage(entry.wait),
        }),
      );
  }

  /** The service answered a beat carrying the in-flight timings: they are delivered. */
  confirm(): void {
    this.inFlight = new Map();
  }

  /** Entries waiting to be delivered. */
  get pending(): number {
    return this.open.size + this.inFlight.size;
  }

  private bound(entries: Map<string, Entry>): void {
    // Bounded memory matters more than a stale minute's durations.
    while (entries.size > this.maxEntries) {
      let oldest: string | undefined;
      let oldestMinute = Infinity;
      for (const key of entries.keys()) {
        const { minute } = parseKey(key);
        if (minute < oldestMinute) [oldest, oldestMinute] = [key, minute];
      }
      if (oldest === undefined) return;
      entries.delete(oldest);
    }
  }
}

function entryKey(queue: string, minute: number): string {
  return `${minute}\u0000${queue}`;
}

function parseKey(key: string): { queue: string; minute: number } {
  const cut = key.indexOf("\u0000");
  return { minute: Number(key.slice(0, cut)), queue: key.slice(cut + 1) };
}
