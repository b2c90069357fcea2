import { describe, expect, it } from "vitest";
import { translate } from "../i18n";
import { commandSeverity, describeCommand } from "./Workers";

const en = (key: Parameters<typeof translate>[1], vars?: Record<string, string | number>) => translate("en", key, vars);
const ko = (key: Parameters<typeof translate>[1], vars?: Record<string, string | number>) => translate("ko", key, vars);

describe("worker command results", () => {
  it("says done only when the worker acknowledged", () => {
    const acked = { outcome: "COMMAND_OUTCOME_ACKED", command: { commandId: "c1" } };
    expect(describeCommand(en, "stop", "pay-1", acked)).toBe("pay-1 acknowledged and is stopping");
    expect(commandSeverity(acked)).toBe("success");
  });

  it("gives the worker's reason for a refusal", () => {
    const refused = { outcome: "COMMAND_OUTCOME_REFUSED", command: { commandId: "c2", result: "draining" } };
    expect(describeCommand(en, "quiet", "pay-1", refused)).toBe("Refused by the worker pay-1: draining");
    expect(describeCommand(ko, "quiet", "pay-1", refused)).toBe("pay-1 워커가 거부했습니다: draining");
    expect(commandSeverity(refused)).toBe("warning");
  });

  it("never calls an unanswered command done", () => {
    const pending = { outcome: "COMMAND_OUTCOME_PENDING", command: { commandId: "c3" } };
    const text = describeCommand(en, "resume", "pay-1", pending);
    expect(text).toBe("Sent to pay-1, not yet acknowledged (command c3)");
    expect(commandSeverity(pending)).toBe("info");
  });
});
