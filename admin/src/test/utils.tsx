import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import type { ReactElement, ReactNode } from "react";
import { MemoryRouter } from "react-router-dom";
import type { Session } from "../api/client";
import { AuthProvider } from "../auth";
import { FeedbackProvider } from "../components/Feedback";
import { I18nProvider } from "../i18n";

export function testClient() {
  return new QueryClient({ defaultOptions: { queries: { retry: false, refetchInterval: false } } });
}

export const adminSession: Session = { token: "t0k", username: "admin", role: "admin", expiresAt: Date.now() + 900_000 };

export function renderWithProviders(
  ui: ReactElement,
  { client = testClient(), session = adminSession, route = "/" }: { client?: QueryClient; session?: Session | null; route?: string } = {},
) {
  function Wrapper({ children }: { children: ReactNode }) {
    return (
      <I18nProvider>
        <QueryClientProvider client={client}>
          <AuthProvider initial={session}>
            <FeedbackProvider>
              <MemoryRouter initialEntries={[route]}>{children}</MemoryRouter>
            </FeedbackProvider>
          </AuthProvider>
        </QueryClientProvider>
      </I18nProvider>
    );
  }
  return { client, ...render(ui, { wrapper: Wrapper }) };
}

export function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}
