// The alerting configuration's API calls, and the editor's state: the revision loaded (what a save names
// as expected_revision), the draft changed from it, and the save (or check) with its refusal.

import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, ApiError } from "../../api/client";
import { keys } from "../../api/hooks";
import { route } from "../../api/routes";
import type { RequestOf, ResponseOf } from "../../api/types";
import { useNotify } from "../../components/Feedback";
import { useI18n } from "../../i18n";
import { configInput, emptyConfig, type AlertingConfig, type Channel, type TestAnswer } from "./model";

export const alertingKeys = {
  config: ["alertingConfig"] as const,
  revisions: ["alertingConfigRevisions"] as const,
};

/** The configuration in force (secrets masked); an empty one when none has been stored yet. */
export function useAlertingConfigQuery() {
  return useQuery({
    queryKey: alertingKeys.config,
    queryFn: async ({ signal }) => {
      try {
        const r = await api<ResponseOf<"GetAlertingConfig">>(route("/v1/alertingConfig"), { signal });
        return r.config ?? emptyConfig();
      } catch (e) {
        if (e instanceof ApiError && e.status === "NOT_FOUND") return emptyConfig();
        throw e;
      }
    },
    // The draft is edited from the revision loaded: it must not change under the editor's feet.
    staleTime: Infinity,
    refetchOnWindowFocus: false,
  });
}

/** One page of the configuration's revisions, newest first. */
export function useAlertingRevisions(pageToken: string) {
  return useQuery({
    queryKey: [...alertingKeys.revisions, pageToken],
    queryFn: ({ signal }) =>
      api<ResponseOf<"ListAlertingConfigRevisions">>(route("/v1/alertingConfig/revisions"), { query: { pageSize: 20, pageToken: pageToken || undefined }, signal }),
    placeholderData: keepPreviousData,
  });
}

/** Send a test notification through a channel: the stored one, or `settings` not saved yet. */
export function testChannel(name: string, settings?: Channel): Promise<TestAnswer> {
  const body: RequestOf<"TestNotificationChannel"> = settings ? { settings } : {};
  return api<TestAnswer>(route("/v1/alertingConfig/channels/{channel}:test", { channel: name }), { method: "POST", body });
}

/** Whether an error is the ABORTED of a save made from a revision that is no longer the current one. */
export function isAborted(error: unknown): boolean {
  return error instanceof ApiError && error.status === "ABORTED";
}

/** The editor: the revision loaded, the draft, the comment, and save/check/reload. */
export function useAlertingEditor() {
  const { t } = useI18n();
  const notify = useNotify();
  const client = useQueryClient();
  const query = useAlertingConfigQuery();
  // The revision the edits started from: pinned at the first edit so a refetch cannot move it.
  const [pinned, setPinned] = useState<AlertingConfig | null>(null);
  const [draft, setDraft] = useState<AlertingConfig | null>(null);
  const [comment, setComment] = useState("");
  const base = pinned ?? query.data ?? null;
  const current = draft ?? base;
  const save = useMutation({
    mutationFn: (validateOnly: boolean) => {
      const body: RequestOf<"UpdateAlertingConfig"> = {
        config: { ...configInput(current ?? emptyConfig()), comment: comment.trim() },
        expectedRevision: base?.revision || "0",
        validateOnly,
      };
      return api<ResponseOf<"UpdateAlertingConfig">>(route("/v1/alertingConfig"), { method: "PUT", body });
    },
    onSuccess: (r, validateOnly) => {
      if (validateOnly) {
        notify(t("acCheckPassed"), "success");
        return;
      }
      const saved = r.config ?? null;
      client.setQueryData(alertingKeys.config, saved ?? undefined);
      setPinned(null);
      setDraft(null);
      setComment("");
      notify(t("acSaved", { revision: saved?.revision ?? "" }), "success");
      for (const key of [alertingKeys.revisions, keys.audit]) void client.invalidateQueries({ queryKey: key });
    },
  });
  return {
    query,
    base,
    current,
    dirty: draft !== null && JSON.stringify(draft) !== JSON.stringify(base),
    comment,
    setComment: (v: string) => {
      setComment(v);
      if (save.error) save.reset();
    },
    /** Change the draft (a refusal shown is about the former draft: it goes). */
    update: (change: (c: AlertingConfig) => AlertingConfig) => {
      if (!current) return;
      setPinned(base);
      setDraft(change(current));
      if (save.error) save.reset();
    },
    save,
    aborted: isAborted(save.error),
    /** Drop the draft and load the revision in force. */
    reload: async () => {
      save.reset();
      await query.refetch();
      setPinned(null);
      setDraft(null);
    },
  };
}

export type AlertingEditor = ReturnType<typeof useAlertingEditor>;
