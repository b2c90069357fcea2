import { fireEvent, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { jsonResponse, renderWithProviders } from "../test/utils";
import SearchPage from "./Search";

afterEach(() => {
  vi.unstubAllGlobals();
});

const hit = (queue: string, id: string) => ({ queue, matched: "data", job: { jobId: id, name: "send", state: "JOB_STATE_FAILED" } });

describe("Search page", () => {
  it("shows the scan's progress and loads more with the server's token", async () => {
    const searches: URL[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL) => {
        const url = new URL(String(input), "http://localhost");
        if (url.pathname === "/api/v1/queues") return jsonResponse({ queues: [{ name: "emails" }] });
        if (url.pathname === "/api/v1/jobs:search") {
          searches.push(url);
          return url.searchParams.get("pageToken")
            ? jsonResponse({ hits: [hit("emails", "9")], scanned: "1200000", total: "1200000" })
            : jsonResponse({ hits: [hit("emails", "3")], scanned: "40000", total: "1200000", nextPageToken: "tok-1" });
        }
        return jsonResponse({ error: { code: 404, status: "NOT_FOUND", message: "no" } }, 404);
      }),
    );
    renderWithProviders(<SearchPage />, { route: "/search" });
    const run = screen.getByRole("button", { name: "Search" });
    expect(run).toBeDisabled();
    fireEvent.change(screen.getByLabelText("Text in data or failure reason"), { target: { value: "timeout" } });
    fireEvent.click(run);
    expect(await screen.findByTestId("search-progress")).toHaveTextContent("1 job(s) found · Scanned 40,000 of 1,200,000 jobs");
    expect(screen.getByRole("link", { name: "Open job 3 of emails" })).toHaveAttribute("href", "/jobs?queue=emails&job=3");

    fireEvent.click(screen.getByRole("button", { name: "Load more" }));
    expect(await screen.findByTestId("hit-emails-9")).toBeInTheDocument();
    expect(screen.getByTestId("hit-emails-3")).toBeInTheDocument();
    expect(screen.getByTestId("search-progress")).toHaveTextContent("2 job(s) found · Scanned 1,200,000 of 1,200,000 jobs · Search complete");
    expect(screen.queryByRole("button", { name: "Load more" })).toBeNull();
    expect(searches.map((u) => [u.searchParams.get("text"), u.searchParams.get("pageToken")])).toEqual([
      ["timeout", null],
      ["timeout", "tok-1"],
    ]);
  });
});
