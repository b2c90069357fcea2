import Box from "@mui/material/Box";
import { useMemo, useRef, useState, type ReactNode } from "react";

const MAX_TREE_CHARS = 200_000;
const MAX_CHILDREN = 200;

function Leaf({ value }: { value: unknown }) {
  if (value === null) return <span style={{ color: "#888" }}>null</span>;
  if (typeof value === "string") return <span style={{ color: "#2e7d32" }}>{JSON.stringify(value)}</span>;
  if (typeof value === "number") return <span style={{ color: "#1565c0" }}>{String(value)}</span>;
  if (typeof value === "boolean") return <span style={{ color: "#ad1457" }}>{String(value)}</span>;
  return <span>{String(value)}</span>;
}

function Node({ name, value, depth }: { name?: string; value: unknown; depth: number }): ReactNode {
  const label = name !== undefined ? <span style={{ opacity: 0.8 }}>{name}: </span> : null;
  if (value === null || typeof value !== "object") {
    return (
      <div style={{ paddingLeft: depth ? 16 : 0 }}>
        {label}
        <Leaf value={value} />
      </div>
    );
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value as object);
  const open = Array.isArray(value) ? "[" : "{";
  const close = Array.isArray(value) ? "]" : "}";
  return (
    <details open={depth < 2} style={{ paddingLeft: depth ? 16 : 0 }}>
      <summary style={{ cursor: "pointer" }}>
        {label}
        {open}
        {/* A muted colour, not opacity: opacity on the tinted background fails the contrast minimum. */}
        <Box component="span" sx={{ color: "text.secondary" }}> {entries.length} </Box>
        {close}
      </summary>
      {entries.slice(0, MAX_CHILDREN).map(([k, v]) => (
        <Node key={k} name={k} value={v} depth={depth + 1} />
      ))}
      {entries.length > MAX_CHILDREN ? (
        <Box sx={{ pl: 2, color: "text.secondary" }}>… +{entries.length - MAX_CHILDREN}</Box>
      ) : null}
    </details>
  );
}

/** A JSON value as a collapsible tree when it is small and valid, else as plain text. */
export function JsonView({ text, label }: { text: string | undefined; label: string }) {
  const parsed = useMemo(() => {
    if (!text || text.length > MAX_TREE_CHARS) return { ok: false as const };
    try {
      return { ok: true as const, value: JSON.parse(text) as unknown };
    } catch {
      return { ok: false as const };
    }
  }, [text]);
  if (!text) return <Box sx={{ color: "text.secondary" }}>—</Box>;
  if (!parsed.ok) return <LargeText text={text} label={label} />;
  return (
    <Box role="group" aria-label={label} translate="no" sx={{ fontFamily: "monospace", fontSize: 13, maxHeight: 360, overflow: "auto", p: 1, bgcolor: "action.hover", borderRadius: 1 }}>
      <Node value={parsed.value} depth={0} />
    </Box>
  );
}

const ROW_HEIGHT = 18;
const CHUNK = 400;
const VIEW_HEIGHT = 360;

/** Any amount of text, virtualized: only the rows in view are in the DOM (a 5 MB value stays smooth). */
export function LargeText({ text, label }: { text: string; label: string }) {
  const rows = useMemo(() => {
    const out: string[] = [];
    for (const line of text.split("\n")) {
      if (line.length <= CHUNK) out.push(line);
      else for (let i = 0; i < line.length; i += CHUNK) out.push(line.slice(i, i + CHUNK));
    }
    return out;
  }, [text]);
  const [scrollTop, setScrollTop] = useState(0);
  const ref = useRef<HTMLDivElement>(null);
  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - 20);
  const last = Math.min(rows.length, first + Math.ceil(VIEW_HEIGHT / ROW_HEIGHT) + 40);
  return (
    <Box
      ref={ref}
      translate="no"
      tabIndex={0}
      role="region"
      aria-label={label}
      onScroll={(e) => setScrollTop((e.target as HTMLDivElement).scrollTop)}
      sx={{ height: Math.min(VIEW_HEIGHT, rows.length * ROW_HEIGHT + 16), overflow: "auto", position: "relative", bgcolor: "action.hover", borderRadius: 1 }}
    >
      <div style={{ height: rows.length * ROW_HEIGHT + 16, position: "relative" }}>
        <pre style={{ position: "absolute", top: first * ROW_HEIGHT + 8, left: 8, margin: 0, fontSize: 12, lineHeight: `${ROW_HEIGHT}px` }}>
          {rows.slice(first, last).join("\n")}
        </pre>
      </div>
    </Box>
  );
}
