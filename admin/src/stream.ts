import { useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { API_BASE } from "./api/client";
import { keys } from "./api/hooks";

export type LiveState = "live" | "reconnecting";

type EventSourceCtor = new (url: string) => EventSource;

export interface StreamOptions {
  token: string | null | undefined;
  /** For tests: a fake EventSource. */
  EventSourceImpl?: EventSourceCtor;
  /** Wait before opening a new connection after the browser gave up on one (ms). */
  retryMs?: number;
}

/** Applies one stream event to the query cache. */
export function applyEvent(client: QueryClient, kind: string, data: unknown): void {
  switch (kind) {
    case "overview":
      client.setQueryData(keys.overview, data);
      void client.invalidateQueries({ queryKey: keys.queues });
      break;
    case "worker":
      void client.invalidateQueries({ queryKey: keys.workers });
      break;
    case "incident":
      void client.invalidateQueries({ queryKey: keys.incidents });
      void client.invalidateQueries({ queryKey: keys.incident });
      break;
    case "reset":
      void client.invalidateQueries();
      break;
  }
}

/**
 * Follows the gateway's live stream (`/api/v1/stream`): overview snapshots go into the cache,
 * worker and incident events refetch those lists, `reset` refetches everything. The connection
 * is closed while the tab is hidden and resumed (with the last event id) when it is shown again.
 */
export function useLiveStream({ token, EventSourceImpl, retryMs = 3000 }: StreamOptions): LiveState {
  const client = useQueryClient();
  const [state, setState] = useState<LiveState>("reconnecting");
  const lastEventId = useRef<string>("");

  useEffect(() => {
    if (!token) return;
    const Impl: EventSourceCtor | undefined = EventSourceImpl ?? (typeof EventSource !== "undefined" ? EventSource : undefined);
    if (!Impl) return;
    let source: EventSource | null = null;
    let retryTimer: number | undefined;
    let upstreamDown = false;
    let disposed = false;

    const onEvent = (kind: string) => (event: MessageEvent) => {
      if (event.lastEventId) lastEventId.current = event.lastEventId;
      let data: unknown = undefined;
      try {
        data = event.data ? JSON.parse(event.data as string) : undefined;
      } catch {
        return;
      }
      if (kind === "status") {
        const upstream = (data as { upstream?: string } | undefined)?.upstream;
        upstreamDown = upstream !== undefined && upstream !== "ok";
        setState(upstreamDown ? "reconnecting" : "live");
        return;
      }
      applyEvent(client, kind, data);
    };

    const open = () => {
      if (disposed || source) return;
      const params = new URLSearchParams({ access_token: token });
      if (lastEventId.current) params.set("lastEventId", lastEventId.current);
      const es = new Impl(`${API_BASE}/v1/stream?${params.toString()}`);
      source = es;
      es.onopen = () => setState(upstreamDown ? "reconnecting" : "live");
      es.onerror = () => {
        setState("reconnecting");
        // The browser retries by itself unless the connection is closed (e.g. a refused request).
        if (es.readyState === 2) {
          es.close();
          if (source === es) source = null;
          window.clearTimeout(retryTimer);
          retryTimer = window.setTimeout(open, retryMs);
        }
      };
      for (const kind of ["overview", "worker", "incident", "status", "reset"]) {
        es.addEventListener(kind, onEvent(kind) as EventListener);
      }
    };

    const close = () => {
      window.clearTimeout(retryTimer);
      source?.close();
      source = null;
    };

    const onVisibility = () => {
      if (document.visibilityState === "hidden") {
        close();
      } else if (!source) {
        open();
      }
    };

    if (typeof document === "undefined" || document.visibilityState !== "hidden") open();
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      disposed = true;
      document.removeEventListener("visibilitychange", onVisibility);
      close();
    };
  }, [token, EventSourceImpl, retryMs, client]);

  return state;
}
