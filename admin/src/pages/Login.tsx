import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Paper from "@mui/material/Paper";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { describeError } from "../api/errors";
import { useAuth } from "../auth";
import { useI18n } from "../i18n";

export function LoginPage() {
  const { login, expired } = useAuth();
  const { t, lang, setLang } = useI18n();
  const client = useQueryClient();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <Box component="main" sx={{ minHeight: "100vh", display: "grid", placeItems: "center", p: 2 }}>
      <Paper variant="outlined" sx={{ p: 4, width: 380 }}>
        <Box sx={{ display: "flex", alignItems: "center", mb: 2 }}>
          <Typography variant="h5" component="h1" sx={{ flexGrow: 1 }}>
            {t("loginTitle")}
          </Typography>
          <Button aria-label={`${t("language")}: ${lang === "en" ? "EN" : "한국어"}`} size="small" onClick={() => setLang(lang === "en" ? "ko" : "en")}>
            {lang === "en" ? "EN" : "한국어"}
          </Button>
        </Box>
        {expired ? (
          <Alert severity="info" sx={{ mb: 2 }}>
            {t("sessionExpired")}
          </Alert>
        ) : null}
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            setError(null);
            try {
              client.clear();
              await login(username, password);
            } catch (err) {
              setError(describeError(err, t));
            } finally {
              setBusy(false);
            }
          }}
        >
          <TextField label={t("username")} value={username} onChange={(e) => setUsername(e.target.value)} fullWidth margin="normal" autoComplete="username" autoFocus required />
          <TextField
            label={t("password")}
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            fullWidth
            margin="normal"
            autoComplete="current-password"
            required
          />
          {error ? (
            <Alert severity="error" sx={{ mt: 1 }}>
              {t("loginFailed")}: {error}
            </Alert>
          ) : null}
          <Button type="submit" variant="contained" fullWidth sx={{ mt: 2 }} disabled={busy}>
            {t("login")}
          </Button>
        </form>
      </Paper>
    </Box>
  );
}
