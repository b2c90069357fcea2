import { QueryClientProvider, useQuery } from "@tanstack/react-query";
import { act, render, screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { keys } from "./api/hooks";
import { useLiveStream } from "./stream";
import { testClient } from "./test/utils";

class FakeEventSource {
  static instances: FakeEventSource[] = [];
  readonly url: string;
  readyState = 0;
  onopen: ((e: Event) => void) | null = null;
  onerror: ((e: Event) => void) | null = null;
  listeners = new Map<string, ((e: MessageEvent) => void)[]>();
  closed = false;
  constructor(url: string) {
    this.url = url;
    FakeEventSource.instances.push(this);
  }
  addEventListener(kind: string, fn: (e: MessageEvent) => void) {
    this.listeners.set(kind, [...(this.listeners.get(kind) ?? []), fn]);
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
  open() {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  emit(kind: string, data: unknown, id = "") {
    const event = new MessageEvent(kind, { data: JSON.stringify(data), lastEventId: id });
    for (const fn of this.listeners.get(kind) ?? []) fn(event);
  }
  fail(readyState: 0 | 2) {
    this.readyState = readyState;
    this.onerror?.(new Event("error"));
  }
}

function Probe({ token }: { token: string }) {
  const state = useLiveStream({ token, EventSourceImpl: FakeEventSource as unknown as new (url: string) => EventSource, retryMs: 10 });
  return <span aria-label="Live status">{state === "live" ? "Live" : "Reconnecting"}</span>;
}

function setup() {
  FakeEventSource.instances = [];
  const client = testClient();
  const workersFn = vi.fn(async () => [{ status: "WORKER_STATUS_ONLINE" }]);
  function Workers() {
    useQuery({ queryKey: keys.workers, queryFn: workersFn });
    return null;
  }
  render(
    <QueryClientProvider client={client}>
      <Probe token="abc" />
      <Workers />
    </QueryClientProvider>,
  );
  return { client, workersFn, source: () => FakeEventSource.instances.at(-1)! };
}

describe("useLiveStream", () => {
  it("opens the stream with the token and shows Live once open", () => {
    const { source } = setup();
    expect(source().url).toBe("/api/v1/stream?access_token=abc");
    expect(screen.getByLabelText("Live status")).toHaveTextContent("Reconnecting");
    act(() => source().open());
    expect(screen.getByLabelText("Live status")).toHaveTextContent("Live");
  });

  it("puts overview events in the query cache", () => {
    const { client, source } = setup();
    act(() => source().open());
    act(() => source().emit("overview", { counts: { waiting: "42" }, workersOnline: 3 }, "1-1"));
    expect(client.getQueryData(keys.overview)).toEqual({ counts: { waiting: "42" }, workersOnline: 3 });
  });

  it("shows Reconnecting while the connection is lost, and reopens a closed one with the last event id", async () => {
    vi.useFakeTimers();
    try {
      const { source } = setup();
      act(() => source().open());
      act(() => source().emit("overview", {}, "5-2"));
      act(() => source().fail(0));
      expect(screen.getByLabelText("Live status")).toHaveTextContent("Reconnecting");
      act(() => source().open());
      expect(screen.getByLabelText("Live status")).toHaveTextContent("Live");
      const first = source();
      act(() => first.fail(2));
      expect(screen.getByLabelText("Live status")).toHaveTextContent("Reconnecting");
      await act(async () => {
        vi.advanceTimersByTime(20);
      });
      expect(FakeEventSource.instances.length).toBe(2);
      expect(source().url).toContain("lastEventId=5-2");
      act(() => source().open());
      expect(screen.getByLabelText("Live status")).toHaveTextContent("Live");
    } finally {
      vi.useRealTimers();
    }
  });

  it("shows Reconnecting when the gateway reports its upstream unavailable", () => {
    const { source } = setup();
    act(() => source().open());
    act(() => source().emit("status", { upstream: "unavailable" }));
    expect(screen.getByLabelText("Live status")).toHaveTextContent("Reconnecting");
    act(() => source().emit("status", { upstream: "ok" }));
    expect(screen.getByLabelText("Live status")).toHaveTextContent("Live");
  });

  it("refetches on worker events and on reset", async () => {
    const { client, workersFn, source } = setup();
    await vi.waitFor(() => expect(client.getQueryState(keys.workers)?.status).toBe("success"));
    expect(workersFn).toHaveBeenCalledTimes(1);
    act(() => source().open());
    act(() => source().emit("worker", { type: "WORKER_EVENT_TYPE_ONLINE", workerId: "w1" }));
    await vi.waitFor(() => expect(workersFn).toHaveBeenCalledTimes(2));
    await vi.waitFor(() => expect(client.getQueryState(keys.workers)?.fetchStatus).toBe("idle"));
    act(() => source().emit("reset", { reason: "too old" }));
    await vi.waitFor(() => expect(workersFn).toHaveBeenCalledTimes(3));
  });
});
