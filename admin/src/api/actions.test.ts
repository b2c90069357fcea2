import { afterEach, describe, expect, it, vi } from "vitest";
import { jsonResponse } from "../test/utils";
import {
  incidentAction,
  jobAction,
  queueAction,
  runJobAction,
  runQueueAction,
  schedulerAction,
  workerAction,
  type IncidentVerb,
  type JobVerb,
  type QueueVerb,
  type SchedulerVerb,
  type WorkerVerb,
} from "./actions";
import { route } from "./routes";

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("action paths", () => {
  it("encode names with ':', '/' and spaces as one segment", () => {
    expect(queueAction("emails", "pause")).toBe("/v1/queues/emails:pause");
    expect(queueAction("team:emails/eu west", "retryFailed")).toBe("/v1/queues/team%3Aemails%2Feu%20west:retryFailed");
    expect(jobAction("a:b/c", "42 x", "retry")).toBe("/v1/queues/a%3Ab%2Fc/jobs/42%20x:retry");
    expect(workerAction("host:1234/worker a", "stop")).toBe("/v1/workers/host%3A1234%2Fworker%20a:stop");
    expect(incidentAction("17", "resolve")).toBe("/v1/incidents/17:resolve");
  });

  it("come from the document's routes only", () => {
    // Exactly the verbs of the document's POST routes: one more or one less does not compile.
    const verbs: [Record<QueueVerb, 1>, Record<JobVerb, 1>, Record<WorkerVerb, 1>, Record<IncidentVerb, 1>, Record<SchedulerVerb, 1>] = [
      { pause: 1, resume: 1, retryFailed: 1, promote: 1, drain: 1, clean: 1, obliterate: 1 },
      { retry: 1, promote: 1, cancel: 1, removePendingChildren: 1, releaseDeduplication: 1 },
      { quiet: 1, resume: 1, stop: 1 },
      { acknowledge: 1, resolve: 1 },
      { run: 1, remove: 1 },
    ];
    expect(verbs.map((v) => Object.keys(v).length)).toEqual([7, 5, 3, 2, 2]);
    expect(schedulerAction("a:b", "every hour", "run")).toBe("/v1/queues/a%3Ab/jobSchedulers/every%20hour:run");
    expect(route("/v1/auditLogs")).toBe("/v1/auditLogs");
    expect(route("/v1/queues/{queue}/jobs", { queue: "a b" })).toBe("/v1/queues/a%20b/jobs");
    // @ts-expect-error not a route of the API (it moved to /v1/auditLogs)
    expect(() => route("/v1/audit-logs")).not.toThrow();
    // @ts-expect-error not a queue action
    expect(queueAction("emails", "explode")).toBe("/v1/queues/emails:explode");
    // @ts-expect-error a route with a variable needs its value
    expect(() => route("/v1/queues/{queue}")).toThrow(/no value for \{queue\}/);
  });

  it("POST the typed body and answer with the typed reply", async () => {
    const calls: { url: string; method?: string; body?: unknown }[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
        calls.push({ url: String(input), method: init?.method, body: init?.body ? JSON.parse(String(init.body)) : undefined });
        return jsonResponse({ removed: "3", auditId: "9" });
      }),
    );
    const drained = await runQueueAction("a/b", "drain", { confirm: "a/b", includeDelayed: true });
    expect(drained.removed).toBe("3");
    await runJobAction("emails", "7", "retry", {});
    // @ts-expect-error the drain body has no such field
    await runQueueAction("a/b", "drain", { confirm: "a/b", everything: true });
    calls.pop();
    expect(calls).toEqual([
      { url: "/api/v1/queues/a%2Fb:drain", method: "POST", body: { confirm: "a/b", includeDelayed: true } },
      { url: "/api/v1/queues/emails/jobs/7:retry", method: "POST", body: {} },
    ]);
  });
});
