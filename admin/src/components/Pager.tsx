import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Typography from "@mui/material/Typography";
import { useCallback, useState } from "react";
import { useI18n } from "../i18n";

/** Page tokens: the server gives the next one; going back pops the tokens already seen. A new scope (filters) starts over. */
export function usePageTokens(scope = "") {
  const [state, setState] = useState<{ scope: string; tokens: string[] }>({ scope, tokens: [""] });
  const tokens = state.scope === scope ? state.tokens : [""];
  const token = tokens[tokens.length - 1];
  const next = useCallback(
    (nextToken: string) => setState((s) => ({ scope, tokens: [...(s.scope === scope ? s.tokens : [""]), nextToken] })),
    [scope],
  );
  const prev = useCallback(
    () => setState((s) => ({ scope, tokens: s.scope === scope && s.tokens.length > 1 ? s.tokens.slice(0, -1) : [""] })),
    [scope],
  );
  const reset = useCallback(() => setState({ scope, tokens: [""] }), [scope]);
  return { token, page: tokens.length, next, prev, reset, hasPrev: tokens.length > 1 };
}

interface Props {
  page: number;
  hasPrev: boolean;
  nextToken?: string;
  total?: number;
  onPrev: () => void;
  onNext: (token: string) => void;
}

export function Pager({ page, hasPrev, nextToken, total, onPrev, onNext }: Props) {
  const { t } = useI18n();
  return (
    <Box component="nav" aria-label={t("pagination")} sx={{ display: "flex", alignItems: "center", gap: 1, justifyContent: "flex-end", py: 1 }}>
      {total !== undefined ? (
        <Typography variant="body2" color="text.secondary" sx={{ mr: "auto" }}>
          {t("total", { count: total.toLocaleString("en-US") })}
        </Typography>
      ) : null}
      <Typography variant="body2" color="text.secondary">
        {t("page", { page })}
      </Typography>
      <Button size="small" onClick={onPrev} disabled={!hasPrev}>
        {t("previous")}
      </Button>
      <Button size="small" onClick={() => nextToken && onNext(nextToken)} disabled={!nextToken}>
        {t("next")}
      </Button>
    </Box>
  );
}
