import axe from "axe-core";
import { act, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Session } from "../../api/client";
import { adminSession, jsonResponse, renderWithProviders } from "../../test/utils";
import AlertingPage from "../Alerting";
import type { AlertingConfig } from "./model";

afterEach(() => {
  vi.unstubAllGlobals();
});

const DEFAULTS = {
  failureRateThreshold: 0.2,
  failureRateWindowMinutes: 15,
  failureRateMinJobs: 20,
  failureRatePendingMinutes: 5,
  backlogThreshold: "1000",
  backlogPendingMinutes: 10,
  stuckMinutes: 15,
  noWorkersPendingMinutes: 2,
  workerDownMissedBeats: 3,
  slowProcessingFactor: 3,
  slowProcessingFloorMs: 500,
  slowProcessingBaselineMinutes: 60,
  slowProcessingPendingMinutes: 10,
  incidentQuietMinutes: 5,
  enabled: true,
};

/** A configuration as the server reads it back: secrets empty, hints set. */
function stored(revision: string, routes: AlertingConfig["routes"] = []): AlertingConfig {
  return {
    revision,
    author: "olivia",
    createTime: "2026-12-01T10:00:00Z",
    comment: "initial",
    defaults: DEFAULTS,
    overrides: [],
    channels: [
      { name: "ops-hook", type: "NOTIFICATION_CHANNEL_TYPE_WEBHOOK", url: "", urlHint: "https://hooks.example.com/…", headers: { "X-Token": "" }, sendResolved: true },
      { name: "mail", type: "NOTIFICATION_CHANNEL_TYPE_EMAIL", headers: {}, smtp: { host: "smtp.example.com", port: 587, password: "", passwordSet: true, sender: "wm@example.com", to: ["ops@example.com"] } },
      { name: "pager", type: "NOTIFICATION_CHANNEL_TYPE_PAGERDUTY", headers: {}, routingKey: "", routingKeyHint: "9f3a", sendAcknowledged: true },
    ],
    routes,
  };
}

function route(name: string, queueGlob = ""): AlertingConfig["routes"][number] {
  return { name, types: [], severities: [], queueGlob, workerLabels: {}, channels: ["ops-hook"], escalations: [], groupWaitSeconds: 30 };
}

interface Fake {
  puts: Record<string, unknown>[];
  tests: { channel: string; body: Record<string, unknown> }[];
  gets: number;
}

/** The gateway at the fetch level: GET answers `configs` one after another (the last repeats). */
function fakeApi(configs: AlertingConfig[], answerPut?: (body: Record<string, unknown>) => Response): Fake {
  const fake: Fake = { puts: [], tests: [], gets: 0 };
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = new URL(String(input), "http://localhost");
      const method = init?.method ?? "GET";
      const body = init?.body ? (JSON.parse(String(init.body)) as Record<string, unknown>) : {};
      if (url.pathname === "/api/v1/alertingConfig" && method === "GET") {
        const config = configs[Math.min(fake.gets, configs.length - 1)];
        fake.gets += 1;
        return jsonResponse({ config });
      }
      if (url.pathname === "/api/v1/alertingConfig" && method === "PUT") {
        fake.puts.push(body);
        if (answerPut) return answerPut(body);
        return jsonResponse({ config: { ...(body.config as AlertingConfig), revision: "4", author: "admin" } });
      }
      if (url.pathname === "/api/v1/alertingConfig/revisions") return jsonResponse({ revisions: [configs[0]] });
      const test = url.pathname.match(/^\/api\/v1\/alertingConfig\/channels\/(.+):test$/);
      if (test) {
        fake.tests.push({ channel: decodeURIComponent(test[1]), body });
        return jsonResponse({ delivered: true, statusCode: 200, durationMs: "42" });
      }
      if (url.pathname === "/api/v1/silences") return jsonResponse({ silences: [] });
      if (url.pathname === "/api/v1/maintenanceWindows") return jsonResponse({ maintenanceWindows: [] });
      return jsonResponse({ error: { code: 404, status: "NOT_FOUND", message: "no" } }, 404);
    }),
  );
  return fake;
}

function invalidArgument(field: string, description: string): Response {
  return jsonResponse(
    {
      error: {
        code: 400,
        status: "INVALID_ARGUMENT",
        message: `${field}: ${description}`,
        details: [
          { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "INVALID_ARGUMENT", metadata: { field } },
          { "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: [{ field, description }] },
        ],
      },
    },
    400,
  );
}

function render(tab: string, session: Session = adminSession) {
  return renderWithProviders(<AlertingPage />, { route: `/alerting?tab=${tab}`, session });
}

/** The helper text under an input (its aria-describedby). */
function helperOf(input: HTMLElement): string {
  const id = input.getAttribute("aria-describedby") ?? "";
  return id ? (document.getElementById(id)?.textContent ?? "") : "";
}

async function typeComment(text: string) {
  fireEvent.change(await screen.findByLabelText(/^Comment/), { target: { value: text } });
}

describe("alerting configuration: channels", () => {
  it("shows where each channel points without its secret, and keeps secret inputs empty", async () => {
    fakeApi([stored("3")]);
    render("channels");
    const hook = await screen.findByTestId("channel-row-ops-hook");
    expect(hook).toHaveTextContent("https://hooks.example.com/…");
    expect(screen.getByTestId("channel-row-mail")).toHaveTextContent("smtp.example.com:587");
    expect(screen.getByTestId("channel-row-pager")).toHaveTextContent("…9f3a");

    fireEvent.click(screen.getByRole("button", { name: "Edit channel ops-hook" }));
    const dialog = await screen.findByRole("dialog", { name: "Edit channel ops-hook" });
    const url = within(dialog).getByLabelText("Webhook URL");
    expect(url).toHaveValue("");
    expect(helperOf(url)).toBe("Stored (https://hooks.example.com/…) — leave empty to keep");
    const header = within(dialog).getByLabelText("Value");
    expect(header).toHaveValue("");
    expect(helperOf(header)).toBe("Stored — leave empty to keep");
    fireEvent.click(within(dialog).getByRole("button", { name: "Cancel" }));

    fireEvent.click(screen.getByRole("button", { name: "Edit channel mail" }));
    const mail = await screen.findByRole("dialog", { name: "Edit channel mail" });
    const password = within(mail).getByLabelText("Password");
    expect(password).toHaveValue("");
    expect(helperOf(password)).toBe("Stored — leave empty to keep");
    fireEvent.click(within(mail).getByRole("button", { name: "Cancel" }));

    fireEvent.click(screen.getByRole("button", { name: "Edit channel pager" }));
    const pager = await screen.findByRole("dialog", { name: "Edit channel pager" });
    const key = within(pager).getByLabelText("Routing key");
    expect(key).toHaveValue("");
    expect(helperOf(key)).toBe("Stored (…9f3a) — leave empty to keep");
  });

  it("tests the stored channel from its row, and unsaved settings from the dialog", async () => {
    const fake = fakeApi([stored("3")]);
    render("channels");
    fireEvent.click(await screen.findByRole("button", { name: "Send test through ops-hook" }));
    expect(await screen.findByTestId("channel-test-result")).toHaveTextContent("Test through ops-hook delivered · status 200 · 42 ms");
    expect(fake.tests).toEqual([{ channel: "ops-hook", body: {} }]);

    fireEvent.click(screen.getByRole("button", { name: "Add channel" }));
    const dialog = await screen.findByRole("dialog", { name: "Add channel" });
    fireEvent.change(within(dialog).getByLabelText(/^Name/), { target: { value: "new-hook" } });
    fireEvent.change(within(dialog).getByLabelText("Webhook URL"), { target: { value: "http://127.0.0.1:9/hook" } });
    fireEvent.click(within(dialog).getByRole("button", { name: "Send test" }));
    await waitFor(() => expect(fake.tests).toHaveLength(2));
    expect(fake.tests[1].channel).toBe("new-hook");
    expect(fake.tests[1].body.settings).toMatchObject({ name: "new-hook", type: "NOTIFICATION_CHANNEL_TYPE_WEBHOOK", url: "http://127.0.0.1:9/hook" });
    expect(await within(dialog).findByTestId("channel-test-result")).toHaveTextContent("delivered");
  });
});

describe("alerting configuration: routes", () => {
  it("requires a last route that matches everything, and offers to add one", async () => {
    fakeApi([stored("3", [route("payments", "pay*")])]);
    render("routes");
    const warning = await screen.findByTestId("default-route-warning");
    expect(warning).toHaveTextContent("The last route must match everything");
    await typeComment("route payments");
    expect(screen.getByRole("button", { name: "Save changes" })).toBeDisabled();
    fireEvent.click(within(warning).getByRole("button", { name: "Add a default route" }));
    await waitFor(() => expect(screen.queryByTestId("default-route-warning")).toBeNull());
    const last = screen.getByTestId("route-1");
    expect(last).toHaveTextContent("Route 2: default");
    expect(last).toHaveTextContent("Default route");
    expect(screen.getByRole("button", { name: "Save changes" })).toBeEnabled();
  });

  it("moves a route up and saves the new order", async () => {
    const fake = fakeApi([stored("3", [route("a", "a*"), route("b", "b*"), route("fallback")])]);
    render("routes");
    fireEvent.click(await screen.findByRole("button", { name: "Move route b up" }));
    expect(screen.getByTestId("route-0")).toHaveTextContent("Route 1: b");
    expect(screen.getByRole("button", { name: "Move route b up" })).toBeDisabled();
    await typeComment("b first");
    fireEvent.click(screen.getByRole("button", { name: "Save changes" }));
    await waitFor(() => expect(fake.puts).toHaveLength(1));
    const config = fake.puts[0].config as AlertingConfig;
    expect(config.routes.map((r) => r.name)).toEqual(["b", "a", "fallback"]);
  });
});

describe("alerting configuration: save", () => {
  it("sends the revision loaded, the comment, and secrets left empty (no hints)", async () => {
    const fake = fakeApi([stored("3")]);
    render("rules");
    const stuck = await screen.findByLabelText(/^Stuck \(no completion\) for/);
    expect(stuck).toHaveValue(15);
    fireEvent.change(stuck, { target: { value: "30" } });
    expect(screen.getByTestId("alerting-revision")).toHaveTextContent("unsaved changes");
    await typeComment("longer stuck window");
    fireEvent.click(screen.getByRole("button", { name: "Save changes" }));
    await waitFor(() => expect(fake.puts).toHaveLength(1));
    const body = fake.puts[0];
    expect(body.expectedRevision).toBe("3");
    expect(body.validateOnly).toBe(false);
    const config = body.config as AlertingConfig;
    expect(config.comment).toBe("longer stuck window");
    expect(config.defaults?.stuckMinutes).toBe(30);
    expect(config.revision).toBeUndefined();
    const [hook, mail, pager] = config.channels;
    expect(hook.url ?? "").toBe("");
    expect(hook.headers).toEqual({ "X-Token": "" });
    expect(hook.urlHint).toBeUndefined();
    expect(mail.smtp?.password ?? "").toBe("");
    expect(mail.smtp?.passwordSet).toBeUndefined();
    expect(pager.routingKey ?? "").toBe("");
    expect(pager.routingKeyHint).toBeUndefined();
    expect(await screen.findByTestId("alerting-revision")).toHaveTextContent("Revision #4 by admin");
  });

  it("checks without saving (validate_only)", async () => {
    const fake = fakeApi([stored("3")]);
    render("rules");
    fireEvent.click(await screen.findByRole("button", { name: "Check" }));
    await waitFor(() => expect(fake.puts).toHaveLength(1));
    expect(fake.puts[0]).toMatchObject({ expectedRevision: "3", validateOnly: true });
    expect(await screen.findByText("The server accepts this configuration (nothing saved)")).toBeInTheDocument();
  });

  it("says someone else saved (ABORTED) and reloads their revision", async () => {
    const fake = fakeApi([stored("3"), stored("5")], () =>
      jsonResponse({ error: { code: 409, status: "ABORTED", message: "expected_revision 3 is not the current revision 5" } }, 409),
    );
    render("rules");
    fireEvent.change(await screen.findByLabelText(/^Stuck \(no completion\) for/), { target: { value: "30" } });
    await typeComment("mine");
    fireEvent.click(screen.getByRole("button", { name: "Save changes" }));
    const aborted = await screen.findByTestId("alerting-aborted");
    expect(aborted).toHaveTextContent("Someone else saved the alerting configuration");
    fireEvent.click(within(aborted).getByRole("button", { name: "Reload" }));
    await waitFor(() => expect(screen.getByTestId("alerting-revision")).toHaveTextContent("Revision #5"));
    expect(screen.queryByTestId("alerting-aborted")).toBeNull();
    expect(screen.getByLabelText(/^Stuck \(no completion\) for/)).toHaveValue(15);
    expect(fake.gets).toBe(2);
  });

  it("shows the server's refusal next to the field it names, on its tab", async () => {
    fakeApi([stored("3", [route("fallback")])], () => invalidArgument("config.routes[0].group_wait_seconds", "must be at most 3600"));
    render("rules");
    fireEvent.change(await screen.findByLabelText(/^Stuck \(no completion\) for/), { target: { value: "30" } });
    await typeComment("try");
    fireEvent.click(screen.getByRole("button", { name: "Save changes" }));
    // The refusal is about a route: the Routes tab opens and the field carries it.
    const wait = await screen.findByLabelText("Group wait (seconds)");
    expect(wait).toHaveAttribute("aria-invalid", "true");
    expect(helperOf(wait)).toBe("The server said: must be at most 3600");
    expect(screen.getByRole("tab", { name: "Routes" })).toHaveAttribute("aria-selected", "true");
    expect(screen.getByTestId("alerting-save-error")).toHaveTextContent("config.routes[0].group_wait_seconds");
  });

  it("flags a refused channel setting on its row and at its input in the dialog", async () => {
    fakeApi([stored("3")], () => invalidArgument("config.channels[0].url", "must use https"));
    render("rules");
    fireEvent.change(await screen.findByLabelText(/^Stuck \(no completion\) for/), { target: { value: "30" } });
    await typeComment("try");
    fireEvent.click(screen.getByRole("button", { name: "Save changes" }));
    const row = await screen.findByTestId("channel-row-ops-hook");
    expect(row).toHaveTextContent("The server said: must use https");
    expect(screen.getByRole("tab", { name: "Channels" })).toHaveAttribute("aria-selected", "true");
    fireEvent.click(within(row).getByRole("button", { name: "Edit channel ops-hook" }));
    const dialog = await screen.findByRole("dialog", { name: "Edit channel ops-hook" });
    const url = within(dialog).getByLabelText("Webhook URL");
    expect(url).toHaveAttribute("aria-invalid", "true");
    expect(helperOf(url)).toBe("The server said: must use https");
  });

  it("names a refused field no input shows in a summary", async () => {
    fakeApi([stored("3")], () => invalidArgument("config.frobnicate", "is not known"));
    render("rules");
    fireEvent.change(await screen.findByLabelText(/^Stuck \(no completion\) for/), { target: { value: "30" } });
    await typeComment("try");
    fireEvent.click(screen.getByRole("button", { name: "Save changes" }));
    expect(await screen.findByTestId("alerting-save-error")).toHaveTextContent("The value of config.frobnicate is not accepted: is not known");
  });
});

describe("alerting configuration: roles", () => {
  it("is read-only for a viewer: no edit, save or test buttons", async () => {
    fakeApi([stored("3", [route("fallback")])]);
    const viewer: Session = { ...adminSession, username: "vic", role: "viewer" };
    render("channels", viewer);
    await screen.findByTestId("channel-row-ops-hook");
    expect(screen.getByText(/^Read-only/)).toBeInTheDocument();
    for (const name of [/Save changes/, /^Check$/, /Add channel/, /Send test/, /Edit channel/, /Remove/]) {
      expect(screen.queryByRole("button", { name })).toBeNull();
    }
    fireEvent.click(screen.getByRole("button", { name: "View channel ops-hook" }));
    const dialog = await screen.findByRole("dialog", { name: "Channel ops-hook" });
    expect(within(dialog).getByLabelText(/^Name/)).toHaveAttribute("readonly");
    expect(within(dialog).queryByRole("button", { name: "Apply" })).toBeNull();
    fireEvent.click(within(dialog).getByRole("button", { name: "Close" }));

    act(() => {
      fireEvent.click(screen.getByRole("tab", { name: "Routes" }));
    });
    expect(await screen.findByLabelText(/^Name/)).toHaveAttribute("readonly");
    expect(screen.queryByRole("button", { name: /Add route|Move route|Add escalation step/ })).toBeNull();
    act(() => {
      fireEvent.click(screen.getByRole("tab", { name: "Rules" }));
    });
    expect(await screen.findByLabelText(/^Stuck \(no completion\) for/)).toHaveAttribute("readonly");
    expect(screen.queryByRole("button", { name: "Add override" })).toBeNull();
  });

  it("lists the revisions and shows one as JSON", async () => {
    fakeApi([stored("3")]);
    render("revisions", { ...adminSession, role: "operator" });
    const row = await screen.findByTestId("revision-row-3");
    expect(row).toHaveTextContent("olivia");
    expect(row).toHaveTextContent("initial");
    fireEvent.click(within(row).getByRole("button", { name: "View revision #3" }));
    const dialog = await screen.findByRole("dialog", { name: "Revision #3" });
    expect(dialog).toHaveTextContent("ops-hook");
    expect(dialog).not.toHaveTextContent("urlHint");
  });
});

describe("alerting configuration: accessibility", () => {
  it("has no serious axe violation on any tab or in the channel dialog (colours are checked in the browser)", async () => {
    fakeApi([stored("3", [route("payments", "pay*"), route("fallback")])]);
    render("rules");
    await screen.findByLabelText(/^Stuck \(no completion\) for/);
    const problems = async () => {
      let results: axe.AxeResults | null = null;
      // Colours and glyph ligatures need a real canvas: the browser test checks them.
      const rules = { "color-contrast": { enabled: false }, "label-content-name-mismatch": { enabled: false } };
      await act(async () => {
        results = await axe.run(document.body, { rules, resultTypes: ["violations"] });
      });
      return (results as axe.AxeResults | null)!.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join("; ")}`);
    };
    expect(await problems()).toEqual([]);
    for (const tab of ["Channels", "Routes", "Revisions"]) {
      act(() => {
        fireEvent.click(screen.getByRole("tab", { name: tab }));
      });
      await screen.findByRole("tab", { name: tab, selected: true });
      if (tab === "Revisions") await screen.findByTestId("revision-row-3");
      expect(await problems(), tab).toEqual([]);
    }
    act(() => {
      fireEvent.click(screen.getByRole("tab", { name: "Channels" }));
    });
    fireEvent.click(await screen.findByRole("button", { name: "Edit channel mail" }));
    await screen.findByRole("dialog", { name: "Edit channel mail" });
    expect(await problems()).toEqual([]);
  });
});
