// What holds a queue's jobs back (rate limit, global concurrency), its prioritized jobs per priority,
// and its active jobs whose lock is gone: the queue page's badges and breakdown.
import Box from "@mui/material/Box";
import Chip from "@mui/material/Chip";
import Typography from "@mui/material/Typography";
import { num, type Queue } from "../api/types";
import { fmtInt, fmtMs } from "../format";
import { useI18n } from "../i18n";

/** A window or wait in whole seconds (rounded up: "resets in 0 s" would be wrong while it has not). */
function seconds(ms: number): string {
  return ms >= 1000 && ms < 60_000 ? `${Math.ceil(ms / 1000)} s` : fmtMs(ms);
}

export function QueueLimitBadges({ queue }: { queue: Queue }) {
  const { t } = useI18n();
  const rate = queue.rateLimit;
  const concurrency = queue.globalConcurrency;
  const stalled = num(queue.stalled?.candidates);
  const badges: { key: string; label: string; color: "warning" | "default" | "error" }[] = [];
  if (rate) {
    const resets = seconds(num(rate.resetsInMs));
    const hasMax = rate.max !== undefined && rate.durationMs !== undefined;
    const limit = { max: fmtInt(rate.max), duration: seconds(num(rate.durationMs)) };
    if (rate.limited) {
      badges.push({
        key: "rate",
        label: hasMax && !rate.manual ? t("rateLimited", { resets, ...limit }) : t("rateLimitedManual", { resets }),
        color: "warning",
      });
    } else if (hasMax) {
      badges.push({ key: "rate", label: t("rateLimitSet", limit), color: "default" });
    } else if (rate.resetsInMs !== undefined) {
      // A limit given to a worker's constructor is not stored in Redis: only its window shows.
      badges.push({ key: "rate", label: t("rateWindow", { count: fmtInt(rate.windowCount), resets }), color: "default" });
    }
  }
  if (concurrency) {
    badges.push({
      key: "concurrency",
      label: t("globalConcurrency", { running: fmtInt(concurrency.running), limit: fmtInt(concurrency.limit) }),
      color: concurrency.maxed ? "warning" : "default",
    });
  }
  if (stalled > 0) badges.push({ key: "stalled", label: t("stalledCandidates", { count: fmtInt(stalled) }), color: "error" });
  if (badges.length === 0) return null;
  return (
    <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1, mb: 1 }} role="group" aria-label={t("limitsLabel")} data-testid="queue-limits">
      {badges.map((b) => (
        <Chip key={b.key} size="small" variant="outlined" color={b.color} label={b.label} data-testid={`limit-${b.key}`} />
      ))}
    </Box>
  );
}

export function PriorityBreakdown({ queue }: { queue: Queue }) {
  const { t } = useI18n();
  const levels = queue.priorities?.levels ?? [];
  if (levels.length === 0 && num(queue.counts?.prioritized) === 0) return null;
  return (
    <Box component="section" aria-label={t("priorities")} sx={{ mb: 2 }} data-testid="priorities">
      <Typography variant="subtitle2" component="h3">
        {t("priorities")}
      </Typography>
      {levels.length === 0 ? (
        <Typography variant="body2" color="text.secondary">
          {t("noPrioritized")}
        </Typography>
      ) : (
        <Box component="ul" sx={{ display: "flex", flexWrap: "wrap", gap: 1, listStyle: "none", p: 0, m: 0 }}>
          {levels.map((level) => (
            <li key={level.priority}>
              <Chip size="small" label={`${t("priorityLevel", { priority: String(level.priority ?? 0) })}: ${fmtInt(level.count)}`} />
            </li>
          ))}
        </Box>
      )}
      {queue.priorities?.truncated ? (
        <Typography variant="body2" color="text.secondary">
          {t("prioritiesTruncated")}
        </Typography>
      ) : null}
    </Box>
  );
}
