// The editor's own checks, keyed by the proto path the server names in a refusal
// ("config.routes[0].channels"), so one map places both next to the same input. Every input's path is
// a key (null when fine): the keys are also where a server refusal can be shown.

import type { Translate } from "../../i18n";
import {
  COMMENT_MAX,
  lacksDefaultRoute,
  NAME_PATTERN,
  THRESHOLDS,
  kindOf,
  thresholdRange,
  storedSecret,
  thresholdText,
  type AlertingConfig,
  type Channel,
  type RuleThresholds,
} from "./model";

export type Problems = Record<string, string | null>;

function rangeMessage(t: Translate, min: number, max: number | undefined, exclusive = false): string {
  if (max === undefined) return t("acAtLeast", { min });
  return exclusive ? t("acRangeExclusive", { min, max }) : t("acRange", { min, max });
}

/** Problems of a thresholds block; `all` when every field must be set (the defaults). */
function thresholdProblems(out: Problems, prefix: string, th: RuleThresholds | undefined, all: boolean, t: Translate): void {
  for (const spec of THRESHOLDS) {
    const text = thresholdText(th, spec);
    const range = thresholdRange(spec, text);
    out[`${prefix}.${spec.proto}`] = all && text === "" ? t("required") : range.bad ? rangeMessage(t, range.min, range.max, spec.minExclusive) : null;
  }
  out[`${prefix}.enabled`] = null;
}

function nameProblem(name: string | undefined, others: (string | undefined)[], t: Translate): string | null {
  if (!name) return t("required");
  if (!NAME_PATTERN.test(name)) return t("acNameFormat");
  return others.filter((o) => o === name).length > 1 ? t("acNameTaken") : null;
}

/** A channel's problems, at `prefix` (config.channels[i], or settings in the test call). */
export function channelProblems(c: Channel, prefix: string, names: (string | undefined)[], secretStored: (which: "url" | "password" | "routingKey") => boolean, t: Translate): Problems {
  const kind = kindOf(c);
  const out: Problems = {};
  out[`${prefix}.name`] = nameProblem(c.name, names, t);
  out[`${prefix}.type`] = kind ? null : t("required");
  const urlNeeded = kind === "SLACK" || kind === "WEBHOOK" || kind === "KAKAOWORK";
  out[`${prefix}.url`] = urlNeeded && !c.url && !secretStored("url") ? t("required") : c.url && !/^https?:\/\//.test(c.url) ? t("acUrlFormat") : null;
  out[`${prefix}.routing_key`] = kind === "PAGERDUTY" && !c.routingKey && !secretStored("routingKey") ? t("required") : null;
  const email = kind === "EMAIL";
  out[`${prefix}.smtp.host`] = email && !c.smtp?.host ? t("required") : null;
  out[`${prefix}.smtp.port`] = c.smtp?.port && (c.smtp.port < 1 || c.smtp.port > 65535) ? rangeMessage(t, 1, 65535) : null;
  out[`${prefix}.smtp.username`] = null;
  out[`${prefix}.smtp.password`] = null;
  out[`${prefix}.smtp.sender`] = email && !c.smtp?.sender ? t("required") : null;
  out[`${prefix}.smtp.to`] = email && !(c.smtp?.to ?? []).length ? t("required") : null;
  out[`${prefix}.headers`] = null;
  out[`${prefix}.template`] = null;
  out[`${prefix}.link`] = null;
  out[`${prefix}.timeout_seconds`] = c.timeoutSeconds && (c.timeoutSeconds <= 0 || c.timeoutSeconds > 120) ? rangeMessage(t, 0, 120, true) : null;
  out[`${prefix}.max_attempts`] = c.maxAttempts && (c.maxAttempts < 1 || c.maxAttempts > 50 || !Number.isInteger(c.maxAttempts)) ? rangeMessage(t, 1, 50) : null;
  out[`${prefix}.send_resolved`] = null;
  out[`${prefix}.send_acknowledged`] = null;
  return out;
}

/** Every input's problem (null when fine), by proto path; `stored` are the channels as loaded. */
export function validateConfig(draft: AlertingConfig, comment: string, stored: Channel[], t: Translate): Problems {
  const out: Problems = {};
  thresholdProblems(out, "config.defaults", draft.defaults, true, t);
  (draft.overrides ?? []).forEach((o, i) => {
    const p = `config.overrides[${i}]`;
    const hasMatcher = !!o.queueGlob || Object.keys(o.workerLabels ?? {}).length > 0;
    out[`${p}.queue_glob`] = hasMatcher ? null : t("acOverrideNeedsMatcher");
    out[`${p}.worker_labels`] = null;
    thresholdProblems(out, `${p}.thresholds`, o.thresholds, false, t);
  });
  const channelNames = (draft.channels ?? []).map((c) => c.name);
  (draft.channels ?? []).forEach((c, i) => {
    const p = `config.channels[${i}]`;
    const original = stored.find((s) => s.name === c.name);
    const fields = channelProblems(c, p, channelNames, (which) => storedSecret(original, which), t);
    Object.assign(out, fields);
    const bad = Object.values(fields).find((v) => v !== null);
    out[p] = bad ? t("acChannelIncomplete") : null;
  });
  const routes = draft.routes ?? [];
  out["config.routes"] = lacksDefaultRoute(routes) ? t("acNeedsDefaultRoute") : null;
  const routeNames = routes.map((r) => r.name);
  const known = new Set(channelNames);
  const unknownChannel = (list: string[] | undefined) => ((list ?? []).some((n) => !known.has(n)) ? t("acUnknownChannel") : null);
  routes.forEach((r, i) => {
    const p = `config.routes[${i}]`;
    out[`${p}.name`] = nameProblem(r.name, routeNames, t);
    out[`${p}.types`] = null;
    out[`${p}.severities`] = null;
    out[`${p}.queue_glob`] = null;
    out[`${p}.worker_labels`] = null;
    out[`${p}.channels`] = unknownChannel(r.channels);
    out[`${p}.continue_matching`] = null;
    const wait = r.groupWaitSeconds;
    out[`${p}.group_wait_seconds`] = wait !== undefined && (wait < 0 || wait > 3600 || !Number.isInteger(wait)) ? rangeMessage(t, 0, 3600) : null;
    let previous = 0;
    (r.escalations ?? []).forEach((e, j) => {
      const after = e.afterMinutes ?? 0;
      const ep = `${p}.escalations[${j}]`;
      out[`${ep}.after_minutes`] =
        after < 1 || after > 10080 || !Number.isInteger(after) ? rangeMessage(t, 1, 10080) : after <= previous ? t("acEscalationOrder") : null;
      previous = Math.max(previous, after);
      out[`${ep}.channels`] = !(e.channels ?? []).length ? t("acPickChannel") : unknownChannel(e.channels);
    });
  });
  out["config.comment"] = !comment.trim() ? t("required") : comment.length > COMMENT_MAX ? t("nameTooLong", { max: COMMENT_MAX }) : null;
  return out;
}

/** A server field ("config.routes[0].groupWaitSeconds" or snake_case) as the most specific known path. */
export function knownPath(field: string, known: readonly string[]): string | null {
  const snake = field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  const paths = new Set(known);
  let candidate = snake;
  for (;;) {
    if (paths.has(candidate)) return candidate;
    const cut = Math.max(candidate.lastIndexOf("."), candidate.lastIndexOf("["));
    if (cut <= 0) return null;
    candidate = candidate.slice(0, cut);
  }
}
