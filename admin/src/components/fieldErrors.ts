import { errorParts } from "../api/errors";
import { useI18n } from "../i18n";

/** A form's field errors: what the form itself finds, and the server's refusal shown next to the field it
 * names (mapped through `serverFields`); editing a field clears the server's refusal. */
export function useFieldErrors<F extends string>(
  problems: Record<F, string | null>,
  fields: readonly F[],
  serverFields: Record<string, F>,
  mutation: { error: unknown; reset: () => void },
) {
  const { t } = useI18n();
  const server = mutation.error ? errorParts(mutation.error) : null;
  const serverField = server?.field ? (serverFields[server.field] ?? null) : null;
  return {
    /** The field the server's refusal names, if it names one of this form's (else it is shown apart). */
    serverField,
    invalid: fields.some((f) => problems[f] !== null),
    helper: (f: F, fallback: string) =>
      serverField === f && server ? t("errServerSaid", { message: server.fieldMessage ?? server.message }) : (problems[f] ?? fallback),
    isError: (f: F) => serverField === f || problems[f] !== null,
    edit: (setter: (v: string) => void) => (e: { target: { value: string } }) => {
      setter(e.target.value);
      if (mutation.error) mutation.reset();
    },
  };
}
