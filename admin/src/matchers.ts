// What a silence or maintenance window matches, as one line of text.

import { enumName, type Silence } from "./api/types";
import { enumLabel, type useI18n } from "./i18n";

/** What a silence matches, in one line. */
export function matchersText(s: Pick<Silence, "matchers">, t: ReturnType<typeof useI18n>["t"]): string {
  const m: NonNullable<Silence["matchers"]> = s.matchers ?? { labels: {} };
  const parts: string[] = [];
  const type = enumName(m.type, "INCIDENT_TYPE_");
  if (type && type !== "UNSPECIFIED") parts.push(`${t("type")}=${enumLabel(t, "it", type)}`);
  if (m.queueGlob) parts.push(`${t("queue")}=${m.queueGlob}`);
  if (m.workerId) parts.push(`${t("worker")}=${m.workerId}`);
  for (const [k, v] of Object.entries(m.labels ?? {})) parts.push(`${k}=${v}`);
  return parts.join(", ");
}

