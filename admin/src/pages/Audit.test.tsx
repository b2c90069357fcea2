import { screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { jsonResponse, renderWithProviders } from "../test/utils";
import AuditPage from "./Audit";

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("Audit page", () => {
  it("reads the audit log at /v1/auditLogs", async () => {
    const calls: URL[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL) => {
        const url = new URL(String(input), "http://localhost");
        calls.push(url);
        if (url.pathname === "/api/v1/auditLogs") {
          return jsonResponse({ auditLogs: [{ id: "5", action: "AUDIT_ACTION_QUEUE_RESUME", actor: "olivia", outcome: "AUDIT_OUTCOME_SUCCEEDED" }] });
        }
        return jsonResponse({ error: { code: 404, status: "NOT_FOUND", message: "no" } }, 404);
      }),
    );
    renderWithProviders(<AuditPage />, { route: "/audit" });
    expect(await screen.findByTestId("audit-row-5")).toHaveTextContent("QUEUE_RESUME");
    expect(calls.map((u) => u.pathname)).toEqual(["/api/v1/auditLogs"]);
    expect(calls[0].searchParams.get("pageSize")).toBe("50");
  });
});
