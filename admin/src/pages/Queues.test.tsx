import { fireEvent, screen, waitFor } from "@testing-library/react";
import { Route, Routes, useLocation } from "react-router-dom";
import { afterEach, describe, expect, it, vi } from "vitest";
import { jsonResponse, renderWithProviders } from "../test/utils";
import QueuesPage from "./Queues";

afterEach(() => {
  vi.unstubAllGlobals();
});

function Where() {
  const location = useLocation();
  return <output data-testid="where">{location.pathname + location.search}</output>;
}

describe("Queue trend range", () => {
  it("is read from and kept in the URL, and asks for that many hours", async () => {
    const trends: URL[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL) => {
        const url = new URL(String(input), "http://localhost");
        if (url.pathname === "/api/v1/queues") return jsonResponse({ queues: [{ name: "emails" }] });
        if (url.pathname === "/api/v1/queues/emails") return jsonResponse({ queue: { name: "emails" } });
        if (url.pathname === "/api/v1/queues/emails/trend") {
          trends.push(url);
          return jsonResponse({ queue: "emails", points: [], resolution: "hourly" });
        }
        return jsonResponse({ error: { code: 404, status: "NOT_FOUND", message: "no" } }, 404);
      }),
    );
    renderWithProviders(
      <>
        <Routes>
          <Route path="/queues/:name" element={<QueuesPage />} />
        </Routes>
        <Where />
      </>,
      { route: "/queues/emails?range=7d" },
    );
    await waitFor(() => expect(trends.map((u) => u.searchParams.get("hours"))).toContain("168"));
    expect(screen.getByRole("button", { name: "7 d" })).toHaveAttribute("aria-pressed", "true");

    fireEvent.click(screen.getByRole("button", { name: "30 d" }));
    await waitFor(() => expect(trends.map((u) => u.searchParams.get("hours"))).toContain("720"));
    expect(screen.getByTestId("where")).toHaveTextContent("/queues/emails?range=30d");
    // No failure in range: the category chart says so rather than drawing an empty plot.
    expect(await screen.findByTestId("failure-categories-empty")).toHaveTextContent("No failure in this range.");
  });
});
