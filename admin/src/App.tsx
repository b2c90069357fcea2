import AppBar from "@mui/material/AppBar";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Chip from "@mui/material/Chip";
import IconButton from "@mui/material/IconButton";
import List from "@mui/material/List";
import ListItem from "@mui/material/ListItem";
import ListItemButton from "@mui/material/ListItemButton";
import ListItemText from "@mui/material/ListItemText";
import Toolbar from "@mui/material/Toolbar";
import Tooltip from "@mui/material/Tooltip";
import Typography from "@mui/material/Typography";
import DarkModeOutlined from "@mui/icons-material/DarkModeOutlined";
import LightModeOutlined from "@mui/icons-material/LightModeOutlined";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { Suspense, lazy, useState } from "react";
import { BrowserRouter, NavLink, Outlet, Route, Routes } from "react-router-dom";
import { ApiError } from "./api/client";
import { AuthProvider, useAuth } from "./auth";
import { describeError } from "./api/errors";
import { FeedbackProvider, useNotify } from "./components/Feedback";
import { IncidentBanner } from "./components/IncidentBanner";
import { LoadingRows } from "./components/States";
import { I18nProvider, roleLabel, useI18n, type MessageKey } from "./i18n";
import { LoginPage } from "./pages/Login";
import { useLiveStream } from "./stream";
import { AppThemeProvider, useColorMode } from "./theme";

const OverviewPage = lazy(() => import("./pages/Overview"));
const QueuesPage = lazy(() => import("./pages/Queues"));
const WorkersPage = lazy(() => import("./pages/Workers"));
const WorkerDetail = lazy(() => import("./pages/WorkerDetail"));
const JobsPage = lazy(() => import("./pages/Jobs"));
const IncidentsPage = lazy(() => import("./pages/Incidents"));
const AlertingPage = lazy(() => import("./pages/Alerting"));
const AuditPage = lazy(() => import("./pages/Audit"));
const SearchPage = lazy(() => import("./pages/Search"));

const NAV: { to: string; key: MessageKey }[] = [
  { to: "/", key: "overview" },
  { to: "/queues", key: "queues" },
  { to: "/workers", key: "workers" },
  { to: "/jobs", key: "jobs" },
  { to: "/search", key: "search" },
  { to: "/incidents", key: "incidents" },
  { to: "/alerting", key: "alerting" },
  { to: "/audit", key: "audit" },
];

export function makeQueryClient() {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 5_000,
        retry: (count, error) => !(error instanceof ApiError && error.httpStatus >= 400 && error.httpStatus < 500) && count < 2,
      },
    },
  });
}

function LiveIndicator() {
  const { session } = useAuth();
  const { t } = useI18n();
  const state = useLiveStream({ token: session?.token });
  return (
    <Chip
      role="status"
      aria-label={t("liveStatus")}
      aria-live="polite"
      size="small"
      label={state === "live" ? t("live") : t("reconnecting")}
      color={state === "live" ? "success" : "warning"}
      variant={state === "live" ? "filled" : "outlined"}
    />
  );
}

function Shell() {
  const { session, logout, logoutEverywhere } = useAuth();
  const notify = useNotify();
  const { t, lang, setLang } = useI18n();
  const { mode, toggle } = useColorMode();
  return (
    <Box sx={{ display: "flex", minHeight: "100vh" }}>
      <AppBar position="fixed" color="default" elevation={0} sx={{ borderBottom: 1, borderColor: "divider" }}>
        <Toolbar variant="dense" sx={{ gap: 1.5 }}>
          <Typography variant="h6" component="div" sx={{ fontSize: 18, fontWeight: 600 }}>
            {t("appName")}
          </Typography>
          <LiveIndicator />
          <Box sx={{ flexGrow: 1 }} />
          <Tooltip title={lang === "en" ? "한국어" : "English"}>
            <Button aria-label={`${t("language")}: ${lang === "en" ? "EN" : "한국어"}`} size="small" variant="outlined" onClick={() => setLang(lang === "en" ? "ko" : "en")}>
              {lang === "en" ? "EN" : "한국어"}
            </Button>
          </Tooltip>
          <IconButton aria-label={t("toggleDark")} onClick={toggle} size="small">
            {mode === "dark" ? <LightModeOutlined fontSize="small" /> : <DarkModeOutlined fontSize="small" />}
          </IconButton>
          <Typography variant="body2" sx={{ ml: 1 }}>
            {session?.username} · {session?.role ? roleLabel(t, session.role) : ""}
          </Typography>
          <Button size="small" onClick={logout}>
            {t("logout")}
          </Button>
          <Tooltip describeChild title={t("logoutEverywhereHint")}>
            <Button size="small" onClick={() => void logoutEverywhere().catch((e: unknown) => notify(describeError(e, t), "error"))}>
              {t("logoutEverywhere")}
            </Button>
          </Tooltip>
        </Toolbar>
      </AppBar>
      <Box component="nav" aria-label={t("mainNav")} sx={{ width: 156, flexShrink: 0, borderRight: 1, borderColor: "divider", pt: 7 }}>
        <List dense sx={{ position: "sticky", top: 56 }}>
          {NAV.map((item) => (
            <ListItem key={item.to} disablePadding>
              <ListItemButton
                component={NavLink}
                to={item.to}
                end={item.to === "/"}
                sx={{ mx: 1, borderRadius: 1, "&.active": { bgcolor: "action.selected", fontWeight: 600 } }}
              >
                <ListItemText primary={t(item.key)} />
              </ListItemButton>
            </ListItem>
          ))}
        </List>
      </Box>
      <Box component="main" sx={{ flexGrow: 1, minWidth: 0, p: 2.5, pt: 9 }}>
        <IncidentBanner />
        <Suspense fallback={<LoadingRows rows={6} />}>
          <Routes>
            <Route path="/" element={<OverviewPage />} />
            <Route path="/queues" element={<QueuesPage />} />
            <Route path="/queues/:name" element={<QueuesPage />} />
            <Route
              path="/workers"
              element={
                <>
                  <WorkersPage />
                  <Outlet />
                </>
              }
            >
              <Route path=":id" element={<WorkerDetail />} />
            </Route>
            <Route path="/jobs" element={<JobsPage />} />
            <Route path="/search" element={<SearchPage />} />
            <Route path="/incidents" element={<IncidentsPage />} />
            <Route path="/incidents/:id" element={<IncidentsPage />} />
            <Route path="/alerting" element={<AlertingPage />} />
            <Route path="/audit" element={<AuditPage />} />
            <Route path="*" element={<Typography>{t("notFound")}</Typography>} />
          </Routes>
        </Suspense>
      </Box>
    </Box>
  );
}

function Gate() {
  const { session } = useAuth();
  return session ? <Shell /> : <LoginPage />;
}

export default function App() {
  const [client] = useState(makeQueryClient);
  return (
    <I18nProvider>
      <AppThemeProvider>
        <QueryClientProvider client={client}>
          <AuthProvider>
            <FeedbackProvider>
              <BrowserRouter>
                <Gate />
              </BrowserRouter>
            </FeedbackProvider>
          </AuthProvider>
        </QueryClientProvider>
      </AppThemeProvider>
    </I18nProvider>
  );
}
