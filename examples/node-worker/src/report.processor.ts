/** The job logic: a processor class that gets its collaborators through its constructor, as a NestJS provider would. */
import type { Job } from "bullmq";

/** A pool of headless browsers (stands in for Playwright): the worker reports how many are open. */
export class BrowserPool {
  private open = 0;

  /** Browsers open now (reported as the `open_browsers` gauge). */
  get size(): number {
    return this.open;
  }

  /** Render one page in a browser of the pool; gives up when `signal` aborts. */
  async render(page: number, signal: AbortSignal | undefined): Promise<void> {
    this.open += 1;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, 250 + Math.random() * 250);
        signal?.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(new Error(`page ${page} not rendered: ${String(signal.reason)}`));
        });
      });
    } finally {
      this.open -= 1;
    }
  }
}

/** Where the processor logs. */
export interface Log {
  log(message: string): void;
}

/** What a report job carries. */
export interface ReportData {
  account?: number;
  pages?: number;
}

/** Builds monthly reports, page by page; honours the abort signal so a CANCEL_JOB stops it between pages. */
export class ReportProcessor {
  /** Take the browser pool and a logger, as NestJS would inject them. */
  constructor(
    private readonly browsers: BrowserPool,
    private readonly logger: Log,
  ) {}

  /** BullMQ's processor: the third parameter makes BullMQ hand over an abort signal for cancellation. */
  async process(job: Job<ReportData>, _token: string | undefined, signal: AbortSignal | undefined): Promise<{ pages: number }> {
    const pages = job.data.pages ?? 4 + Math.floor(Math.random() * 8);
    for (let page = 0; page < pages; page++) {
      if (signal?.aborted) throw new Error(`report cancelled: ${String(signal.reason)}`);
      await this.browsers.render(page, signal);
      await job.updateProgress(Math.round(((page + 1) * 100) / pages));
    }
    this.logger.log(`report for account ${job.data.account ?? "?"}: ${pages} pages`);
    return { pages };
  }
}
