// Generates the TypeScript messages and grpc-js client of the heartbeat contract into src/gen (not committed),
// with ts-proto as a plugin of the protoc that ships in the repository's Python venv (grpcio-tools), the same
// compiler and include roots as scripts/gen_protos.py: nothing is downloaded.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const root = resolve(pkg, "..", "..");
const python = process.env.WORKERMON_PYTHON ?? join(root, ".venv", "bin", "python");
const out = join(pkg, "src", "gen");
const plugin = join(pkg, "node_modules", ".bin", "protoc-gen-ts_proto");

if (!existsSync(python)) {
  console.error(`${python} not found: run \`make setup\` in ${root} first (it creates the venv with grpcio-tools)`);
  process.exit(1);
}
// The include root of google/api/*.proto, as scripts/gen_protos.py finds it.
const googleapis = execFileSync(
  python,
  ["-c", "import google.api, pathlib; print(pathlib.Path(next(iter(google.api.__path__))).parent.parent)"],
  { encoding: "utf8" },
).trim();

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const options = [
  "outputServices=grpc-js",
  "esModuleInterop=true",
  "importSuffix=.js",
  "env=node",
  "forceLong=number",
  "useDate=true",
  "outputJsonMethods=false",
  "outputPartialMethods=true",
].join(",");
execFileSync(
  python,
  [
    "-m",
    "grpc_tools.protoc",
    `-I${join(root, "proto")}`,
    `-I${googleapis}`,
    `--plugin=protoc-gen-ts_proto=${plugin}`,
    `--ts_proto_out=${out}`,
    `--ts_proto_opt=${options}`,
    "workermon/heartbeat/v1/heartbeat_service.proto",
  ],
  { stdio: "inherit" },
);
console.log(`generated the heartbeat contract into ${out}`);
