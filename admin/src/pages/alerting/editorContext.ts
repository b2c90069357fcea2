// What every part of the configuration editor needs: whether it may edit, and the problem (its own or
// the server's refusal) of the input at a proto path.

import { createContext, useContext } from "react";

export interface EditorFields {
  /** No edit buttons or inputs: the user's role may not save (viewers and operators). */
  readOnly: boolean;
  /** The text under the input at `path`: its problem, the server's refusal, else `fallback`. */
  helper: (path: string, fallback: string) => string;
  /** Whether the input at `path` is in error. */
  isError: (path: string) => boolean;
  /** The known path the server's refusal names, if any. */
  serverField: string | null;
}

export const EditorContext = createContext<EditorFields>({ readOnly: true, helper: (_, fallback) => fallback, isError: () => false, serverField: null });

/** The editor's fields: read-only or not, and each input's problem. */
export function useEditorFields(): EditorFields {
  return useContext(EditorContext);
}
