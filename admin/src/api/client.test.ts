import { afterEach, describe, expect, it, vi } from "vitest";
import { jsonResponse } from "../test/utils";
import { api, loadSession, onUnauthorized, saveSession } from "./client";

afterEach(() => {
  vi.unstubAllGlobals();
  onUnauthorized(null);
});

function expiredReply(): Response {
  return jsonResponse(
    { error: { code: 401, status: "UNAUTHENTICATED", message: "token has expired", details: [{ reason: "TOKEN_EXPIRED" }] } },
    401,
  );
}

describe("an expired access token", () => {
  it("is renewed with the refresh cookie and the request retried once", async () => {
    saveSession({ token: "old", username: "wall", role: "viewer", expiresAt: Date.now() + 1000 });
    const seen: { url: string; auth?: string; credentials?: string }[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
        const url = String(input);
        const auth = (init?.headers as Record<string, string> | undefined)?.Authorization;
        seen.push({ url, auth, credentials: init?.credentials });
        if (url.endsWith("/v1/auth/refresh")) {
          return jsonResponse({ accessToken: "new", tokenType: "Bearer", expiresIn: 900, role: "viewer", username: "wall" });
        }
        return auth === "Bearer new" ? jsonResponse({ queues: [] }) : expiredReply();
      }),
    );
    const reply = await api<{ queues: unknown[] }>("/v1/queues");
    expect(reply.queues).toEqual([]);
    expect(seen.map((s) => [s.url, s.auth])).toEqual([
      ["/api/v1/queues", "Bearer old"],
      ["/api/v1/auth/refresh", undefined],
      ["/api/v1/queues", "Bearer new"],
    ]);
    expect(seen[1].credentials).toBe("same-origin");
    expect(loadSession()?.token).toBe("new");
  });

  it("ends the session when the refresh is refused (revoked, or no cookie)", async () => {
    saveSession({ token: "old", username: "wall", role: "viewer", expiresAt: Date.now() + 1000 });
    const unauthorized = vi.fn();
    onUnauthorized(unauthorized);
    const fetcher = vi.fn(async (input: RequestInfo | URL) =>
      String(input).endsWith("/v1/auth/refresh")
        ? jsonResponse({ error: { code: 401, status: "UNAUTHENTICATED", message: "revoked", details: [{ reason: "TOKEN_REVOKED" }] } }, 401)
        : expiredReply(),
    );
    vi.stubGlobal("fetch", fetcher);
    await expect(api("/v1/queues")).rejects.toMatchObject({ httpStatus: 401 });
    expect(fetcher).toHaveBeenCalledTimes(2);
    expect(unauthorized).toHaveBeenCalledOnce();
    expect(loadSession()).toBeNull();
  });

  it("is not renewed for other refusals", async () => {
    saveSession({ token: "forged", username: "x", role: "viewer", expiresAt: Date.now() + 1000 });
    const fetcher = vi.fn(async () =>
      jsonResponse({ error: { code: 401, status: "UNAUTHENTICATED", message: "bad", details: [{ reason: "TOKEN_INVALID" }] } }, 401),
    );
    vi.stubGlobal("fetch", fetcher);
    await expect(api("/v1/queues")).rejects.toMatchObject({ httpStatus: 401 });
    expect(fetcher).toHaveBeenCalledOnce();
  });
});
