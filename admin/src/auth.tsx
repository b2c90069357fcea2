import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { api, loadSession, onRenewed, onUnauthorized, renewSession, saveSession, sessionFrom, type Session } from "./api/client";
import type { LoginResponse, Role } from "./api/types";

interface Auth {
  session: Session | null;
  expired: boolean;
  login: (username: string, password: string) => Promise<void>;
  logout: () => void;
  /** Revoke every token of this user, in every browser and script, then log out here. */
  logoutEverywhere: () => Promise<void>;
}

const AuthContext = createContext<Auth>({
  session: null,
  expired: false,
  login: async () => undefined,
  logout: () => undefined,
  logoutEverywhere: async () => undefined,
});

export function AuthProvider({ children, initial }: { children: ReactNode; initial?: Session | null }) {
  const [session, setSession] = useState<Session | null>(() => (initial !== undefined ? initial : loadSession()));
  const [expired, setExpired] = useState(false);

  useEffect(() => {
    onUnauthorized(() => {
      setSession(null);
      setExpired(true);
    });
    onRenewed(setSession);
    return () => {
      onUnauthorized(null);
      onRenewed(null);
    };
  }, []);

  // The access token is short-lived: renew it with the refresh cookie a minute before it runs out
  // (at 80 % of a life of two minutes or less); back to the login page only when that is refused.
  useEffect(() => {
    if (!session?.expiresAt) return;
    const left = session.expiresAt - Date.now();
    const ms = left > 120_000 ? left - 60_000 : left * 0.8;
    const timer = window.setTimeout(() => {
      void renewSession().then((renewed) => {
        if (renewed) return;
        saveSession(null);
        setSession(null);
        setExpired(true);
      });
    }, Math.max(0, Math.min(ms, 2_147_000_000)));
    return () => window.clearTimeout(timer);
  }, [session]);

  const login = useCallback(async (username: string, password: string) => {
    const r = await api<LoginResponse>("/v1/auth/login", { method: "POST", body: { username, password }, auth: false });
    const s = sessionFrom(r, username);
    saveSession(s);
    setExpired(false);
    setSession(s);
  }, []);

  const logout = useCallback(() => {
    // Forget this browser's refresh cookie too; other sessions stay logged in.
    void api("/v1/auth/logout", { method: "POST", auth: false }).catch(() => undefined);
    saveSession(null);
    setExpired(false);
    setSession(null);
  }, []);

  const logoutEverywhere = useCallback(async () => {
    // The revocation must land before this browser lets go of its token; a refusal is shown by the caller.
    await api("/v1/auth/logout-all", { method: "POST" });
    logout();
  }, [logout]);

  const value = useMemo(
    () => ({ session, expired, login, logout, logoutEverywhere }),
    [session, expired, login, logout, logoutEverywhere],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): Auth {
  return useContext(AuthContext);
}

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function hasRole(role: Role | undefined, needed: Role): boolean {
  return role !== undefined && (RANK[role] ?? -1) >= RANK[needed];
}
