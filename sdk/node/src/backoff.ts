/** Retry timing for reconnecting to the heartbeat service (same shape as the Python SDK's Backoff). */

/**
 * Exponential backoff with full jitter: every delay is drawn uniformly from [0, min(cap, base * 2^attempt)],
 * so a fleet of workers that lost the service at the same moment does not come back at the same moment.
 */
export class Backoff {
  /** Create a backoff of `baseMs` doubling up to `capMs` (default 500 ms to 5 s, as in Python). */
  constructor(
    readonly baseMs: number = 500,
    readonly capMs: number = 5000,
  ) {
    if (!(baseMs > 0)) throw new RangeError(`backoff base must be positive, got ${baseMs}`);
    if (capMs < baseMs) throw new RangeError(`backoff cap (${capMs}) must not be below its base (${baseMs})`);
  }

  /** The largest delay allowed after `attempt` consecutive failures (0-based). */
  ceiling(attempt: number): number {
    return Math.min(this.capMs, this.baseMs * 2 ** Math.min(Math.max(attempt, 0), 64));
  }

  /** A random delay in [0, ceiling(attempt)], the window narrowed to `atMostMs`. */
  delay(attempt: number, atMostMs?: number, random: () => number = Math.random): number {
    const ceiling = this.ceiling(attempt);
    return random() * (atMostMs === undefined ? ceiling : Math.min(ceiling, atMostMs));
  }
}
