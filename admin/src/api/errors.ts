// Server errors as users read them: the ErrorInfo reason of the gateway's JSON error body picks a
// translated message; a reason the UI does not know is shown as the server's own words, in a
// translated "The server said: …" wrapper.

import type { MessageKey, Translate } from "../i18n";
import { ApiError } from "./client";

export interface ErrorParts {
  /** The ErrorInfo reason (ROLE_NOT_ALLOWED, QUEUE_NOT_FOUND, …), else the status (NOT_FOUND, …). */
  reason: string;
  /** The request field an INVALID_ARGUMENT names, if any. */
  field?: string;
  /** What the server said about that field. */
  fieldMessage?: string;
  /** The server's whole message. */
  message: string;
}

interface Detail {
  "@type"?: string;
  reason?: string;
  metadata?: Record<string, string>;
  fieldViolations?: { field?: string; description?: string }[];
}

/** The reason, the field named and the messages of an error thrown by `api()` (or anything else). */
export function errorParts(error: unknown): ErrorParts {
  if (!(error instanceof ApiError)) return { reason: "", message: error instanceof Error ? error.message : String(error) };
  const details = (error.details ?? []) as Detail[];
  const info = details.find((d) => d["@type"]?.endsWith("google.rpc.ErrorInfo"));
  const violation = details.find((d) => d["@type"]?.endsWith("google.rpc.BadRequest"))?.fieldViolations?.[0];
  const field = violation?.field || info?.metadata?.field || undefined;
  // The service's message is "field: description"; the description alone reads better next to the field.
  const prefix = field ? `${field}: ` : "";
  const fieldMessage = violation?.description || (field && error.message.startsWith(prefix) ? error.message.slice(prefix.length) : undefined);
  return { reason: info?.reason || error.status, field, fieldMessage: field ? fieldMessage || error.message : undefined, message: error.message };
}

const BY_REASON: Record<string, MessageKey> = {
  ROLE_NOT_ALLOWED: "errRoleNotAllowed",
  PERMISSION_DENIED: "errRoleNotAllowed",
  CONFIRM_MISMATCH: "errConfirmMismatch",
  NOT_FOUND: "errNotFound",
  QUEUE_NOT_FOUND: "errNotFound",
  JOB_NOT_FOUND: "errNotFound",
  WORKER_NOT_FOUND: "errNotFound",
  INCIDENT_NOT_FOUND: "errNotFound",
  COMMAND_NOT_FOUND: "errNotFound",
  ROUTE_NOT_FOUND: "errNotFound",
  TOKEN_EXPIRED: "errSession",
  TOKEN_INVALID: "errSession",
  TOKEN_MISSING: "errSession",
  UNAUTHENTICATED: "errSession",
  BAD_CREDENTIALS: "errBadCredentials",
  LOGIN_RATE_LIMITED: "errRateLimited",
  RESOURCE_EXHAUSTED: "errRateLimited",
  UNAVAILABLE: "errUnavailable",
  PEER_UNAVAILABLE: "errUnavailable",
  UPSTREAM_UNAVAILABLE: "errUnavailable",
  REDIS_UNAVAILABLE: "errUnavailable",
  DATABASE_UNAVAILABLE: "errUnavailable",
  UPSTREAM_DEADLINE: "errTimeout",
  DEADLINE_EXCEEDED: "errTimeout",
  WORKER_OFFLINE: "errWorkerOffline",
  NO_INSTRUMENTED_WORKER: "errNoInstrumentedWorker",
  AUDIT_UNAVAILABLE: "errAudit",
  AUDIT_LOST: "errAudit",
};

/** A translated sentence for an error: by its reason, else the server's message in a translated wrapper. */
export function describeError(error: unknown, t: Translate): string {
  if (error instanceof ApiError && error.httpStatus === 0) return t("errUnreachable");
  const parts = errorParts(error);
  const known = BY_REASON[parts.reason];
  if (known) return t(known);
  if (parts.field) return t("errInvalidArgument", { field: parts.field, message: parts.fieldMessage ?? parts.message });
  if (parts.reason === "FAILED_PRECONDITION") return t("errPrecondition", { message: parts.message });
  return t("errServerSaid", { message: parts.message });
}
