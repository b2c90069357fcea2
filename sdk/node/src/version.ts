/** This SDK's name and version as beats carry them (`sdk` field of WorkerReport). */
import { readFileSync } from "node:fs";

function packageVersion(): string {
  try {
    // dist/src/version.js -> the package's own package.json
    const raw = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
    const version: unknown = (JSON.parse(raw) as { version?: unknown }).version;
    return typeof version === "string" ? version : "0.0.0";
  } catch {
    return "0.0.0";
  }
}

/** The package version. */
export const VERSION = packageVersion();
/** `workermon-node/<version>`. */
export const SDK_NAME = `workermon-node/${VERSION}`;
