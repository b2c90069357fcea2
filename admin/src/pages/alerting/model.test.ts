import { describe, expect, it } from "vitest";
import { exportJson, lacksDefaultRoute, move, type AlertingConfig } from "./model";

describe("the alerting configuration model", () => {
  it("exports the proto JSON without output-only fields or defaults, keeping optional zeros", () => {
    const config: AlertingConfig = {
      revision: "7",
      author: "olivia",
      createTime: "2026-12-01T10:00:00Z",
      comment: "why",
      defaults: { backlogPendingMinutes: 0, enabled: false },
      overrides: [],
      channels: [{ name: "hook", type: "NOTIFICATION_CHANNEL_TYPE_WEBHOOK", url: "", urlHint: "https://x/…", headers: {}, sendResolved: false }],
      routes: [{ name: "all", types: [], severities: [], queueGlob: "", workerLabels: {}, channels: ["hook"], escalations: [], groupWaitSeconds: 0, continueMatching: false }],
    };
    expect(JSON.parse(exportJson(config))).toEqual({
      comment: "why",
      defaults: { backlogPendingMinutes: 0, enabled: false },
      channels: [{ name: "hook", type: "NOTIFICATION_CHANNEL_TYPE_WEBHOOK", sendResolved: false }],
      routes: [{ name: "all", channels: ["hook"], groupWaitSeconds: 0 }],
    });
  });

  it("moves items and checks the default route", () => {
    expect(move(["a", "b", "c"], 2, 1)).toEqual(["a", "c", "b"]);
    expect(move(["a", "b"], 0, -1)).toEqual(["a", "b"]);
    const any = { name: "x", types: [], severities: [], workerLabels: {}, channels: [], escalations: [] };
    expect(lacksDefaultRoute([])).toBe(false);
    expect(lacksDefaultRoute([any])).toBe(false);
    expect(lacksDefaultRoute([any, { ...any, severities: ["SEVERITY_CRITICAL"] }])).toBe(true);
  });
});
