import { act, fireEvent, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { jsonResponse, renderWithProviders } from "../test/utils";
import JobsPage from "./Jobs";

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("Jobs page", () => {
  it("keeps every filter changed before the next render", async () => {
    const listed: URL[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL) => {
        const url = new URL(String(input), "http://localhost");
        if (url.pathname === "/api/v1/queues") return jsonResponse({ queues: [{ name: "emails" }, { name: "payments" }] });
        if (url.pathname.endsWith("/jobs")) {
          listed.push(url);
          return jsonResponse({ jobs: [], totalSize: "0" });
        }
        return jsonResponse({ error: { code: 404, status: "NOT_FOUND", message: "no" } }, 404);
      }),
    );
    renderWithProviders(<JobsPage />, { route: "/jobs" });
    await screen.findByRole("option", { name: "payments" });
    // Both changes in one batch: the second must not start from the parameters the first replaced.
    act(() => {
      fireEvent.change(screen.getByLabelText("Queue"), { target: { value: "payments" } });
      fireEvent.change(screen.getByLabelText("State"), { target: { value: "active" } });
    });
    await waitFor(() => {
      const last = listed[listed.length - 1];
      expect(last.pathname).toBe("/api/v1/queues/payments/jobs");
      expect(last.searchParams.getAll("states")).toEqual(["active"]);
    });
  });

  it("offers the queue's failure categories and narrows the failed list to one", async () => {
    const listed: URL[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL) => {
        const url = new URL(String(input), "http://localhost");
        if (url.pathname === "/api/v1/queues") return jsonResponse({ queues: [{ name: "emails" }] });
        if (url.pathname === "/api/v1/queues/emails")
          return jsonResponse({ queue: { name: "emails", topFailureCategories: [{ category: "network", count: "3" }, { category: "timeout", count: "1" }] } });
        if (url.pathname.endsWith("/jobs")) {
          listed.push(url);
          return jsonResponse({ jobs: [], totalSize: "0" });
        }
        return jsonResponse({ error: { code: 404, status: "NOT_FOUND", message: "no" } }, 404);
      }),
    );
    renderWithProviders(<JobsPage />, { route: "/jobs" });
    await screen.findByRole("option", { name: "network" });
    expect(screen.getByRole("option", { name: "timeout" })).toBeInTheDocument();
    act(() => {
      fireEvent.change(screen.getByLabelText("Failure category"), { target: { value: "network" } });
    });
    await waitFor(() => {
      const last = listed[listed.length - 1];
      expect(last.searchParams.get("failureCategory")).toBe("network");
      expect(last.searchParams.getAll("states")).toEqual(["failed"]);
    });
    expect(screen.getByLabelText("State")).toHaveValue("failed");
    // Another state drops the category.
    act(() => {
      fireEvent.change(screen.getByLabelText("State"), { target: { value: "completed" } });
    });
    await waitFor(() => {
      const last = listed[listed.length - 1];
      expect(last.searchParams.get("failureCategory")).toBeNull();
      expect(last.searchParams.getAll("states")).toEqual(["completed"]);
    });
  });
});
