// Every API path the UI calls is built here from a route template of the generated OpenAPI types, so a
// route that moves or disappears in a proto is a compile error rather than a 404 at run time.

import { enc } from "./client";
import type { paths } from "./schema.gen";

/** A route template of the OpenAPI document (relative to the API base): "/v1/queues/{queue}/jobs". */
export type RouteTemplate = keyof paths;

/** The names of the `{variables}` in a route template. */
type VarNames<T extends string> = T extends `${string}{${infer Name}}${infer Rest}` ? Name | VarNames<Rest> : never;

/** The variables a route template binds, by their proto names: { queue, job_id }. */
export type RouteVars<P extends RouteTemplate> = { [Name in VarNames<P>]: string };

/** A route template with variables needs their values; one without takes none. */
type VarsArg<P extends RouteTemplate> = [VarNames<P>] extends [never] ? [vars?: Record<string, never>] : [vars: RouteVars<P>];

/** The template with each `{variable}` replaced by its value, percent-encoded as one path segment. */
export function route<P extends RouteTemplate>(template: P, ...[vars]: VarsArg<P>): string {
  const values = (vars ?? {}) as Record<string, string>;
  return template.replace(/\{([^}=]+)(=[^}]*)?\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`route ${template}: no value for {${name}}`);
    return enc(value);
  });
}
