// The HTTP client: bearer token from sessionStorage, errors in the gateway's shape, 401 → login.
// An expired access token (401 TOKEN_EXPIRED) is renewed once with the refresh cookie (httpOnly, set
// by the gateway at login) and the request retried, so a wall dashboard stays logged in.
import type { LoginResponse } from "./types";

const TOKEN_KEY = "workermon.token";
const USER_KEY = "workermon.user";

export interface Session {
  token: string;
  username: string;
  role: "viewer" | "operator" | "admin";
  expiresAt: number;
}

export function loadSession(): Session | null {
  try {
    const raw = sessionStorage.getItem(USER_KEY);
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!raw || !token) return null;
    const s = JSON.parse(raw) as Omit<Session, "token">;
    if (s.expiresAt && s.expiresAt < Date.now()) return null;
    return { ...s, token };
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null): void {
  if (s) {
    sessionStorage.setItem(TOKEN_KEY, s.token);
    sessionStorage.setItem(USER_KEY, JSON.stringify({ username: s.username, role: s.role, expiresAt: s.expiresAt }));
  } else {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
  }
}

export class ApiError extends Error {
  readonly httpStatus: number;
  readonly status: string;
  readonly details: unknown[];
  constructor(httpStatus: number, status: string, message: string, details: unknown[] = []) {
    super(message);
    this.httpStatus = httpStatus;
    this.status = status;
    this.details = details;
  }
}

let unauthorizedHandler: (() => void) | null = null;
let renewedHandler: ((s: Session) => void) | null = null;
let renewing: Promise<Session | null> | null = null;

/** Called with the new session whenever the access token is renewed. */
export function onRenewed(handler: ((s: Session) => void) | null): void {
  renewedHandler = handler;
}

/** The session of a login (or refresh) reply. */
export function sessionFrom(r: LoginResponse, username: string): Session {
  return {
    token: r.accessToken,
    username: r.username ?? username,
    role: r.role,
    expiresAt: Date.now() + (r.expiresIn ?? 900) * 1000,
  };
}

/** Trade the refresh cookie for a new access token; null when it is missing, expired or revoked.
 * Concurrent callers share one request. */
export function renewSession(): Promise<Session | null> {
  if (!renewing) {
    renewing = (async () => {
      try {
        const response = await fetch(`${API_BASE}/v1/auth/refresh`, {
          method: "POST",
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        if (!response.ok) return null;
        const s = sessionFrom((await response.json()) as LoginResponse, "");
        saveSession(s);
        renewedHandler?.(s);
        return s;
      } catch {
        return null;
      } finally {
        renewing = null;
      }
    })();
  }
  return renewing;
}

function errorReason(details: unknown[]): string | undefined {
  for (const d of details) {
    const reason = (d as { reason?: unknown } | null)?.reason;
    if (typeof reason === "string") return reason;
  }
  return undefined;
}

/** Called on any 401: the session is over, the app shows the login page. */
export function onUnauthorized(handler: (() => void) | null): void {
  unauthorizedHandler = handler;
}

/** Where the API is: the gateway names it in index.html (WORKERMON_BASE_PATH may move it), else /api. */
export const API_BASE =
  (typeof document !== "undefined" &&
    document.querySelector<HTMLMetaElement>('meta[name="workermon-api-base"]')?.content) ||
  "/api";

export type Query = Record<string, string | number | boolean | string[] | undefined | null>;

export function queryString(params: Query = {}): string {
  const usp = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "" || value === false) continue;
    if (Array.isArray(value)) value.forEach((v) => usp.append(key, v));
    else usp.append(key, String(value));
  }
  const s = usp.toString();
  return s ? `?${s}` : "";
}

export async function api<T>(
  path: string,
  options: { method?: string; body?: unknown; query?: Query; signal?: AbortSignal; auth?: boolean; retried?: boolean } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token && options.auth !== false) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(`${API_BASE}${path}${queryString(options.query)}`, {
      method: options.method ?? "GET",
      headers,
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
      signal: options.signal,
    });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "UNAVAILABLE", "The server cannot be reached.");
  }
  const text = await response.text();
  let payload: unknown = undefined;
  if (text) {
    try {
      payload = JSON.parse(text);
    } catch {
      payload = undefined;
    }
  }
  if (!response.ok) {
    const err = (payload as { error?: { status?: string; message?: string; details?: unknown[] } } | undefined)?.error;
    const error = new ApiError(
      response.status,
      err?.status ?? String(response.status),
      err?.message ?? (response.statusText || `HTTP ${response.status}`),
      err?.details ?? [],
    );
    if (response.status === 401 && options.auth !== false && !options.retried && errorReason(error.details) === "TOKEN_EXPIRED") {
      if (await renewSession()) return api<T>(path, { ...options, retried: true });
    }
    if (response.status === 401 && options.auth !== false) {
      saveSession(null);
      unauthorizedHandler?.();
    }
    throw error;
  }
  return (payload ?? {}) as T;
}

export function enc(segment: string): string {
  return encodeURIComponent(segment);
}

/** GET a file the API streams (an export) and hand it to the browser as a download; its size in bytes.
 * Errors come back in the gateway's shape, as from `api`. */
export async function download(path: string, query: Query, filename: string): Promise<number> {
  const headers: Record<string, string> = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`${API_BASE}${path}${queryString(query)}`, { headers });
  if (!response.ok) {
    let err: { status?: string; message?: string; details?: unknown[] } | undefined;
    try {
      err = ((await response.json()) as { error?: typeof err }).error;
    } catch {
      err = undefined;
    }
    throw new ApiError(response.status, err?.status ?? String(response.status), err?.message ?? `HTTP ${response.status}`, err?.details ?? []);
  }
  const blob = await response.blob();
  saveBlob(blob, filename);
  return blob.size;
}

/** Hand `blob` to the browser as a file download called `filename`. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const anchor = document.createElement("a");
  anchor.href = url;
  anchor.download = filename;
  document.body.appendChild(anchor);
  anchor.click();
  anchor.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
