import { screen, within } from "@testing-library/react";
import { Route, Routes } from "react-router-dom";
import { afterEach, describe, expect, it, vi } from "vitest";
import { jsonResponse, renderWithProviders } from "../test/utils";
import IncidentsPage from "./Incidents";

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("Incident detail", () => {
  it("shows the routes of a notification decision and reads ESCALATED as Escalated", async () => {
    const incident = {
      id: "7",
      title: "No worker for invoices",
      type: "INCIDENT_TYPE_WORKER_DOWN",
      status: "INCIDENT_STATUS_ACTIVE",
      severity: "SEVERITY_CRITICAL",
      queue: "invoices",
      notificationDecisions: [
        { eventId: "11", kind: "INCIDENT_EVENT_KIND_FIRED", outcome: "NOTIFICATION_OUTCOME_NOTIFIED", channels: ["ops-hook"], routes: ["invoices", "fallback"], decideTime: "2026-12-01T10:00:00Z" },
        { eventId: "12", kind: "INCIDENT_EVENT_KIND_ESCALATED", outcome: "NOTIFICATION_OUTCOME_NOTIFIED", channels: ["pager"], routes: ["invoices"], decideTime: "2026-12-01T10:30:00Z" },
      ],
    };
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL) => {
        const url = new URL(String(input), "http://localhost");
        if (url.pathname === "/api/v1/incidents") return jsonResponse({ incidents: [incident] });
        if (url.pathname === "/api/v1/incidents/7")
          return jsonResponse({ incident, timeline: [{ id: "12", kind: "INCIDENT_EVENT_KIND_ESCALATED", eventTime: "2026-12-01T10:30:00Z", message: "15 min unacknowledged" }] });
        return jsonResponse({ error: { code: 404, status: "NOT_FOUND", message: "no" } }, 404);
      }),
    );
    renderWithProviders(
      <Routes>
        <Route path="/incidents/:id" element={<IncidentsPage />} />
      </Routes>,
      { route: "/incidents/7" },
    );
    const decisions = await screen.findByTestId("notification-decisions");
    const items = within(decisions).getAllByRole("listitem");
    expect(items[0]).toHaveTextContent("Notified (ops-hook) for fired · routes: invoices, fallback");
    expect(items[1]).toHaveTextContent("Notified (pager) for Escalated · routes: invoices");
    const dialog = screen.getByRole("dialog");
    expect(within(dialog).getByText("Escalated", { selector: "strong" })).toBeInTheDocument();
  });
});
