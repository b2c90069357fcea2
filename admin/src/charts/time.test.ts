import { describe, expect, it } from "vitest";
import type { TrendPoint, WorkerHistoryPoint } from "../api/types";
import { setFormatLocale } from "../format";
import { axisNumber, axisTime, categoryColor, failureCategories, gaugeNames, markIsolated, minuteGrid, trendRange } from "./time";

describe("trend ranges", () => {
  it("reads the range from the URL, falling back to one hour", () => {
    expect(trendRange("7d").hours).toBe(168);
    expect(trendRange("30d").hours).toBe(720);
    expect(trendRange("24h").hours).toBe(24);
    expect(trendRange(null).key).toBe("1h");
    expect(trendRange("2y").key).toBe("1h");
  });

  it("labels the time axis by the range", () => {
    const at = new Date(Date.UTC(2031, 2, 4, 15, 30));
    const day = axisTime(at, 24, true, "en-GB");
    const week = axisTime(at, 168, true, "en-GB");
    const month = axisTime(at, 720, true, "en-GB");
    expect(day).toMatch(/^\d\d:\d\d$/);
    expect(week).toMatch(/^[A-Z][a-z]{2},? \d\d:\d\d$/);
    expect(month).toMatch(/^\d{1,2} Mar$/);
    // Tooltips carry date and time whatever the range.
    expect(axisTime(at, 1, false, "en-GB")).toMatch(/Mar.*\d\d:\d\d/);
  });
});

describe("failure categories", () => {
  it("lists categories with failures in range, most failures first", () => {
    const points: TrendPoint[] = [
      { hasData: true, failuresByCategory: { network: "2", timeout: "1" } },
      { hasData: false, failuresByCategory: {} },
      { hasData: true, failuresByCategory: { timeout: "4", auth: "0" } },
    ];
    expect(failureCategories(points)).toEqual(["timeout", "network"]);
    expect(failureCategories([{ hasData: true, failuresByCategory: {} }])).toEqual([]);
  });

  it("gives each category a stable colour", () => {
    expect(categoryColor("timeout")).toBe(categoryColor("timeout"));
    expect(categoryColor("timeout")).not.toBe(categoryColor("network"));
    expect(categoryColor("my_category")).toBe(categoryColor("my_category"));
  });
});

describe("worker history grid", () => {
  it("puts each point in its minute and leaves minutes without a beat empty", () => {
    const start = Date.UTC(2031, 2, 4, 10, 0, 30);
    const points: WorkerHistoryPoint[] = [
      { time: new Date(Date.UTC(2031, 2, 4, 10, 1)).toISOString(), activeJobs: 3, gauges: { custom: { pool: 2 } } },
      { time: new Date(Date.UTC(2031, 2, 4, 10, 3)).toISOString(), activeJobs: 5, gauges: { custom: { browsers: 1 } } },
      // Before the window: left out.
      { time: new Date(Date.UTC(2031, 2, 4, 9, 0)).toISOString(), activeJobs: 9 },
    ];
    const { times, at } = minuteGrid(points, start, start + 4 * 60_000);
    expect(times.map((t) => t.getUTCMinutes())).toEqual([0, 1, 2, 3, 4]);
    expect(at.map((p) => (p ? p.activeJobs : null))).toEqual([null, 3, null, 5, null]);
    expect(gaugeNames(points)).toEqual(["browsers", "pool"]);
  });
});

describe("isolated marks", () => {
  it("marks a value only where no value stands beside it", () => {
    const show = markIsolated([null, 4, null, 1, 2, null, 0]);
    expect([0, 1, 2, 3, 4, 5, 6].map((index) => show({ index }))).toEqual([false, true, false, false, false, false, true]);
  });
});

describe("value axis", () => {
  it("keeps ticks short", () => {
    expect(axisNumber(29.456)).toBe("29.5");
    expect(axisNumber(196_437_504 / (1024 * 1024))).toBe("187.3");
    expect(axisNumber(1_200)).toBe("1.2K");
    // In the UI's language: no English unit left on a Korean chart.
    setFormatLocale("ko-KR");
    try {
      expect(axisNumber(1_200)).toBe("1.2천");
    } finally {
      setFormatLocale("en-US");
    }
    expect(axisNumber(3_600_000)).toBe("3.6M");
    expect(axisNumber(null)).toBe("");
  });
});
