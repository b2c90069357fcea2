import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import JobsPage from "../pages/Jobs";
import { jsonResponse, renderWithProviders } from "../test/utils";
import { AuditTable } from "./AuditTable";
import { QueueTable } from "./QueueTable";

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("QueueTable", () => {
  it("renders a row per queue with its counts and status", () => {
    renderWithProviders(
      <QueueTable
        queues={[
          { name: "emails", status: "QUEUE_STATUS_RUNNING", counts: { waiting: "1200", failed: "3" }, onlineWorkers: 2, topFailureCategories: [] },
          { name: "webhooks", status: "QUEUE_STATUS_DEGRADED", counts: {}, topFailureCategories: [] },
        ]}
        onSelect={() => undefined}
      />,
    );
    expect(screen.getByTestId("queue-row-emails")).toBeInTheDocument();
    expect(screen.getByTestId("queue-waiting-emails")).toHaveTextContent("1,200");
    expect(screen.getByTestId("queue-failed-emails")).toHaveTextContent("3");
    // Fields at their default value are omitted by the API: they read as 0.
    expect(screen.getByTestId("queue-waiting-webhooks")).toHaveTextContent("0");
    expect(screen.getByTestId("queue-status-webhooks")).toHaveTextContent("DEGRADED");
  });

  it("tells the user what to do when there is no queue", () => {
    renderWithProviders(<QueueTable queues={[]} onSelect={() => undefined} />);
    expect(screen.getByTestId("empty-state")).toHaveTextContent(/No queue has been seen yet/);
  });
});

describe("AuditTable", () => {
  it("shows the action names", () => {
    renderWithProviders(
      <AuditTable logs={[{ id: "17", action: "AUDIT_ACTION_QUEUE_PAUSE", actor: "admin", outcome: "AUDIT_OUTCOME_SUCCEEDED", result: { changed: true } }]} />,
    );
    expect(screen.getByTestId("audit-row-17")).toHaveTextContent("QUEUE_PAUSE");
  });

  it("has an empty state", () => {
    renderWithProviders(<AuditTable logs={[]} />);
    expect(screen.getByText(/No audit entry matches/)).toBeInTheDocument();
  });
});

describe("Jobs page", () => {
  function stubApi() {
    const calls: URL[] = [];
    const fetchMock = vi.fn(async (input: RequestInfo | URL) => {
      const url = new URL(String(input), "http://localhost");
      calls.push(url);
      if (url.pathname === "/api/v1/queues") return jsonResponse({ queues: [{ name: "emails" }, { name: "webhooks" }] });
      if (url.pathname.endsWith("/jobs")) {
        const token = url.searchParams.get("pageToken");
        if (!token) return jsonResponse({ jobs: [{ jobId: "1", name: "send", state: "JOB_STATE_FAILED" }], nextPageToken: "tok-2", totalSize: "1000000" });
        if (token === "tok-2") return jsonResponse({ jobs: [{ jobId: "2", name: "send", state: "JOB_STATE_WAITING" }], nextPageToken: "tok-3", totalSize: "1000000" });
        return jsonResponse({ jobs: [], totalSize: "1000000" });
      }
      return jsonResponse({ error: { code: 404, status: "NOT_FOUND", message: "no" } }, 404);
    });
    vi.stubGlobal("fetch", fetchMock);
    return calls;
  }

  it("pages forward and back with the server's page tokens", async () => {
    const calls = stubApi();
    renderWithProviders(<JobsPage />, { route: "/jobs" });
    expect(await screen.findByTestId("job-row-1")).toBeInTheDocument();
    expect(screen.getByText(/1,000,000 in total/)).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Previous page" })).toBeDisabled();

    await userEvent.click(screen.getByRole("button", { name: "Next page" }));
    expect(await screen.findByTestId("job-row-2")).toBeInTheDocument();
    const jobCalls = calls.filter((u) => u.pathname.endsWith("/jobs"));
    expect(jobCalls.at(-1)?.searchParams.get("pageToken")).toBe("tok-2");
    expect(jobCalls.at(-1)?.pathname).toBe("/api/v1/queues/emails/jobs");

    await userEvent.click(screen.getByRole("button", { name: "Previous page" }));
    expect(await screen.findByTestId("job-row-1")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Previous page" })).toBeDisabled();
  });

  it("filters by state and starts again from the first page", async () => {
    const calls = stubApi();
    renderWithProviders(<JobsPage />, { route: "/jobs" });
    await screen.findByTestId("job-row-1");
    await userEvent.click(screen.getByRole("button", { name: "Next page" }));
    await screen.findByTestId("job-row-2");
    await userEvent.selectOptions(screen.getByLabelText("State"), "failed");
    await waitFor(() => {
      const last = calls.filter((u) => u.pathname.endsWith("/jobs")).at(-1);
      expect(last?.searchParams.get("states")).toBe("failed");
      expect(last?.searchParams.get("pageToken")).toBeNull();
    });
    expect(await screen.findByTestId("job-row-1")).toBeInTheDocument();
  });

  it("shows an empty state when nothing matches", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL) => {
        const url = new URL(String(input), "http://localhost");
        if (url.pathname === "/api/v1/queues") return jsonResponse({ queues: [{ name: "emails" }] });
        return jsonResponse({});
      }),
    );
    renderWithProviders(<JobsPage />, { route: "/jobs" });
    const empty = await screen.findByTestId("empty-state");
    expect(within(empty).getByText(/No job matches/)).toBeInTheDocument();
  });
});
