/** The process's own readings for every beat: CPU since the previous beat, RSS, event-loop lag. */
import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";

/** CPU %, RSS and event-loop lag of this process, each read once per beat. */
export class ProcessReadings {
  private lastCpu = process.cpuUsage();
  private lastWall = process.hrtime.bigint();
  private readonly loop: IntervalHistogram;

  /** Start measuring; the histogram samples the event loop every `resolutionMs`. */
  constructor(resolutionMs = 20) {
    this.loop = monitorEventLoopDelay({ resolution: resolutionMs });
    this.loop.enable();
  }

  /** CPU use since the previous call, in percent of one core (as psutil reports it for Python workers). */
  cpuPercent(): number {
    const now = process.hrtime.bigint();
    const used = process.cpuUsage(this.lastCpu);
    const wallUs = Number(now - this.lastWall) / 1000;
    this.lastCpu = process.cpuUsage();
    this.lastWall = now;
    return wallUs > 0 ? (100 * (used.user + used.system)) / wallUs : 0;
  }

  /** Resident set size in bytes. */
  rssBytes(): number {
    return process.memoryUsage.rss();
  }

  /**
   * The worst event-loop delay since the previous call, in milliseconds: a timer the loop ran that much late
   * means every job of this process waited as long.
   */
  eventLoopLagMs(): number {
    const worst = this.loop.count > 0 ? this.loop.max / 1e6 : 0;
    this.loop.reset();
    return Number.isFinite(worst) && worst > 0 ? worst : 0;
  }

  /** Stop the event-loop sampling. */
  close(): void {
    this.loop.disable();
  }
}
