import { screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { useOverview } from "../api/hooks";
import { jsonResponse, renderWithProviders } from "../test/utils";
import { IncidentBanner } from "./IncidentBanner";

afterEach(() => {
  vi.unstubAllGlobals();
});

function serveOverview(activeIncidents: unknown[]) {
  const fetched = vi.fn(async (input: RequestInfo | URL) => {
    const url = new URL(String(input), "http://localhost");
    if (url.pathname === "/api/v1/overview") return jsonResponse({ activeIncidents, counts: {} });
    return jsonResponse({ error: { code: 404, status: "NOT_FOUND", message: "no" } }, 404);
  });
  vi.stubGlobal("fetch", fetched);
  return fetched;
}

describe("incident banner", () => {
  it("counts the open incidents and links to them", async () => {
    serveOverview([
      { incidentId: "1", severity: "SEVERITY_WARNING", title: "a" },
      { incidentId: "2", severity: "SEVERITY_CRITICAL", title: "b" },
    ]);
    renderWithProviders(<IncidentBanner />);
    const banner = await screen.findByTestId("incident-banner-global");
    expect(banner).toHaveTextContent("2 open incident(s)");
    expect(screen.getByRole("link", { name: "Open incidents" })).toHaveAttribute("href", "/incidents");
  });

  it("is hidden when no incident is open", async () => {
    serveOverview([]);
    // The same overview query, to know when its answer has arrived.
    function Answered() {
      return useOverview().data ? <p>answered</p> : null;
    }
    renderWithProviders(
      <>
        <IncidentBanner />
        <Answered />
      </>,
    );
    await screen.findByText("answered");
    expect(screen.queryByTestId("incident-banner-global")).toBeNull();
  });
});
