import { describe, expect, it } from "vitest";
import { ApiError } from "./api/client";
import { describeError, errorParts } from "./api/errors";
import { jsonProblem } from "./components/AddJobDialog";
import { DICTIONARIES, translate, type MessageKey } from "./i18n";

const tKo = (key: MessageKey, vars?: Record<string, string | number>) => translate("ko", key, vars);
const tEn = (key: MessageKey, vars?: Record<string, string | number>) => translate("en", key, vars);

describe("dictionaries", () => {
  it("hold the same keys in English and Korean", () => {
    const en = Object.keys(DICTIONARIES.en).sort();
    const ko = Object.keys(DICTIONARIES.ko).sort();
    expect(ko).toEqual(en);
  });

  it("have no empty message and keep every {placeholder} in both languages", () => {
    for (const key of Object.keys(DICTIONARIES.en) as MessageKey[]) {
      const vars = (text: string) => (text.match(/\{\w+\}/g) ?? []).sort();
      expect(DICTIONARIES.ko[key], key).not.toBe("");
      expect(vars(DICTIONARIES.ko[key]), key).toEqual(vars(DICTIONARIES.en[key]));
    }
  });
});

function apiError(reason: string, message: string, field?: string): ApiError {
  const details: unknown[] = [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason, domain: "monitor.workermon", metadata: field ? { field } : {} }];
  if (field) details.push({ "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: [{ field, description: message.slice(field.length + 2) }] });
  return new ApiError(400, "INVALID_ARGUMENT", message, details);
}

describe("server errors", () => {
  it("are translated by their ErrorInfo reason", () => {
    expect(describeError(apiError("ROLE_NOT_ALLOWED", "role viewer may not"), tKo)).toBe(tKo("errRoleNotAllowed"));
    expect(describeError(apiError("QUEUE_NOT_FOUND", "queue x is not known"), tKo)).toBe(tKo("errNotFound"));
    expect(describeError(apiError("CONFIRM_MISMATCH", "confirm does not match"), tEn)).toBe("The typed name does not match.");
    expect(describeError(new ApiError(0, "UNAVAILABLE", "The server cannot be reached."), tKo)).toBe(tKo("errUnreachable"));
  });

  it("name the field of an INVALID_ARGUMENT, and wrap what the UI does not know", () => {
    const bad = apiError("INVALID_ARGUMENT", "data: is not valid JSON: Expecting value", "data");
    expect(errorParts(bad)).toMatchObject({ reason: "INVALID_ARGUMENT", field: "data", fieldMessage: "is not valid JSON: Expecting value" });
    expect(describeError(bad, tKo)).toBe("data 값이 올바르지 않습니다: is not valid JSON: Expecting value");
    expect(describeError(apiError("SOMETHING_NEW", "odd"), tKo)).toBe("서버 응답: odd");
    expect(describeError(new Error("boom"), tEn)).toBe("The server said: boom");
  });
});

describe("the add-job data field", () => {
  it("accepts JSON and empty text, and places a parse error at its line and column", () => {
    expect(jsonProblem('{"to": "a@example.com"}', tEn)).toBeNull();
    expect(jsonProblem("", tEn)).toBeNull();
    expect(jsonProblem('{\n  "to": "a",\n  oops\n}', tEn)).toBe("Not valid JSON: line 3, column 3");
    expect(jsonProblem('{"a": 1', tEn)).toMatch(/^Not valid JSON: line 1, column \d+$/);
  });
});
