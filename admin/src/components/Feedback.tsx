import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import Alert from "@mui/material/Alert";
import Portal from "@mui/material/Portal";
import Snackbar from "@mui/material/Snackbar";

type Severity = "success" | "error" | "info" | "warning";
interface Message {
  id: number;
  text: string;
  severity: Severity;
}

const FeedbackContext = createContext<(text: string, severity?: Severity) => void>(() => undefined);

/** Action results in a snackbar (role="status"): what changed, or why it did not. */
export function FeedbackProvider({ children }: { children: ReactNode }) {
  const [message, setMessage] = useState<Message | null>(null);
  const notify = useCallback((text: string, severity: Severity = "success") => {
    setMessage({ id: Date.now(), text, severity });
  }, []);
  const value = useMemo(() => notify, [notify]);
  return (
    <FeedbackContext.Provider value={value}>
      {children}
      {/* A fresh node at the end of <body> per message: an open dialog or drawer (which hides the
          rest of the page from assistive technology) does not hide the result of its own action. */}
      {message ? (
        <Portal key={message.id}>
          <Snackbar
            open
            autoHideDuration={message?.severity === "error" ? 12000 : 8000}
            onClose={(_, reason) => reason !== "clickaway" && setMessage(null)}
            anchorOrigin={{ vertical: "bottom", horizontal: "center" }}
          >
            <Alert
              role="status"
              aria-live="polite"
              severity={message?.severity ?? "info"}
              variant="filled"
              onClose={() => setMessage(null)}
              sx={{ minWidth: 320 }}
            >
              {message?.text}
            </Alert>
          </Snackbar>
        </Portal>
      ) : null}
    </FeedbackContext.Provider>
  );
}

export function useNotify() {
  return useContext(FeedbackContext);
}
