// How a test notification went: delivered or not, the receiver's status code, the error, the time taken.

import Alert from "@mui/material/Alert";
import { describeError } from "../../api/errors";
import { num } from "../../api/types";
import { useI18n } from "../../i18n";
import type { TestAnswer } from "./model";

/** The answer of a channel test (or why the test itself was refused). */
export function TestResult({ name, answer, error }: { name: string; answer?: TestAnswer; error?: unknown }) {
  const { t } = useI18n();
  if (error) {
    return (
      <Alert severity="error" sx={{ mt: 1 }} data-testid="channel-test-result">
        {t("acTestRefused", { name, error: describeError(error, t) })}
      </Alert>
    );
  }
  if (!answer) return null;
  const parts = [
    answer.statusCode ? t("acTestStatus", { code: answer.statusCode }) : null,
    t("acTestDuration", { ms: num(answer.durationMs) }),
    answer.error ? answer.error : null,
  ].filter((p): p is string => !!p);
  return (
    <Alert severity={answer.delivered ? "success" : "error"} sx={{ mt: 1 }} role="status" data-testid="channel-test-result">
      {answer.delivered ? t("acTestDelivered", { name }) : t("acTestNotDelivered", { name })} · {parts.join(" · ")}
    </Alert>
  );
}
