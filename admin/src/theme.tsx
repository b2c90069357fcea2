import CssBaseline from "@mui/material/CssBaseline";
import { ThemeProvider, createTheme } from "@mui/material/styles";
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";

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
      createTheme({
        palette: { mode, primary: { main: mode === "dark" ? "#90caf9" : "#1565c0" } },
        shape: { borderRadius: 8 },
        components: { MuiButton: { defaultProps: { disableElevation: true } } },
      }),
    [mode],
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
