import { useRef } from "react";
import { useSearchParams } from "react-router-dom";

/** A page's filters in the URL's query string: the current parameters, and `update` setting or (with
 * null or "") removing several at once, replacing the history entry. */
export function useUrlParams(): [URLSearchParams, (changes: Record<string, string | null>) => void] {
  const [params, setParams] = useSearchParams();
  // The parameters as last set, not as last rendered: two changes before the next render (the queue,
  // then the state) must both land, and setSearchParams' updater is handed the rendered ones.
  const latest = useRef(params);
  latest.current = params;
  const update = (changes: Record<string, string | null>) => {
    const next = new URLSearchParams(latest.current);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    latest.current = next;
    setParams(next, { replace: true });
  };
  return [params, update];
}
