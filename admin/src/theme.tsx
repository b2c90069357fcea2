import CssBaseline from "@mui/material/CssBaseline";
import { enUS, koKR } from "@mui/material/locale";
import { ThemeProvider, createTheme } from "@mui/material/styles";
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import { useI18n } from "./i18n";

const MODE_KEY = "workermon.theme";
type Mode = "light" | "dark";

const ModeContext = createContext<{ mode: Mode; toggle: () => void }>({ mode: "light", toggle: () => undefined });

function initialMode(): Mode {
  try {
    const saved = localStorage.getItem(MODE_KEY);
    if (saved === "light" || saved === "dark") return saved;
    if (typeof window.matchMedia === "function" && window.matchMedia("(prefers-color-scheme: dark)").matches) return "dark";
  } catch {
    /* storage unavailable */
  }
  return "light";
}

export function AppThemeProvider({ children }: { children: ReactNode }) {
  const [mode, setMode] = useState<Mode>(initialMode);
  const { lang } = useI18n();
  const toggle = useCallback(() => {
    setMode((m) => {
      const next = m === "dark" ? "light" : "dark";
      try {
        localStorage.setItem(MODE_KEY, next);
      } catch {
        /* storage unavailable */
      }
      return next;
    });
  }, []);
  const theme = useMemo(
    () =>
      createTheme(
        {
          // On white, MUI's default warning, info and success colours are too light for small text
          // (WCAG AA asks 4.5:1): darker shades of the same hues in the light theme.
          palette:
            mode === "dark"
              ? { mode, primary: { main: "#90caf9" } }
              : {
                  mode,
                  primary: { main: "#1565c0" },
                  warning: { main: "#b45309", contrastText: "#fff" },
                  info: { main: "#01579b", contrastText: "#fff" },
                  success: { main: "#1b5e20", contrastText: "#fff" },
                  error: { main: "#c62828", contrastText: "#fff" },
                },
          shape: { borderRadius: 8 },
          components: { MuiButton: { defaultProps: { disableElevation: true } } },
        },
        // MUI's own texts (a close button's label, …) in the language shown.
        lang === "ko" ? koKR : enUS,
      ),
    [mode, lang],
  );
  const value = useMemo(() => ({ mode, toggle }), [mode, toggle]);
  return (
    <ModeContext.Provider value={value}>
      <ThemeProvider theme={theme}>
        <CssBaseline />
        {children}
      </ThemeProvider>
    </ModeContext.Provider>
  );
}

export function useColorMode() {
  return useContext(ModeContext);
}
