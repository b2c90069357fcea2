"""Figures, targets, findings and the printed table of the gateway benchmark."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import gateway_encode, text, verdicts
from .figures import percentile, ratio
from .record import Ratio, ratio_entry, ratio_group
from .verdicts import case_problems

if TYPE_CHECKING:
    from .gateway_client import SseResult
    from .monitor import Sample

# A process at or above this share of one core is taken as CPU-bound.
SATURATED_PCT = 85.0
# A sequential call this slow while the server is mostly idle waits on TCP (Nagle + delayed ACK: 40 ms).
STALL_MS = 35.0

Results = dict[str, Any]

RPC_NAMES = {
    "overview": ("GetOverview", "GET /api/v1/overview"),
    "queues": ("ListQueues", "GET /api/v1/queues"),
}


def _span(before: Sample, after: Sample) -> Results:
    """Server CPU (% of one core) and machine CPU (% of all cores) between two samples."""
    seconds = after.at - before.at
    machine = after.machine_total_s - before.machine_total_s
    return {
        "seconds": seconds,
        "server_cpu_pct": 100.0 * ratio(after.server_cpu_s - before.server_cpu_s, seconds),
        "server_cpu_s": after.server_cpu_s - before.server_cpu_s,
        "redis_cpu_pct": 100.0 * ratio(after.redis_cpu_s - before.redis_cpu_s, seconds),
        "machine_busy_pct": 100.0 * ratio(after.machine_busy_s - before.machine_busy_s, machine),
    }


def stream_stats(
    result: SseResult,
    sent: dict[str, float],
    *,
    baseline_before: Sample,
    baseline_after: Sample,
    connected: Sample,
    idle: Sample,
    busy: Sample,
    closed: Sample,
) -> Results:
    """The stream phase: memory, idle CPU with and without clients, and each transition's arrivals."""
    warnings = []
    if result.open_errors:
        warnings.append(
            f"stream: {result.open_errors} clients could not connect, e.g. {result.open_error_sample}"
        )
    if result.initial_events != result.opened:
        warnings.append(
            f"stream: {result.opened - result.initial_events} of {result.opened} clients had no first event"
        )
    if result.ended_early:
        warnings.append(
            f"stream: {result.ended_early} streams ended before the window did ({result.end_sample})"
        )
    transitions: list[Results] = []
    for worker, at in sent.items():
        arrivals = sorted(t - at for t in result.arrivals.get(worker, []))
        missing = result.opened - len(arrivals)
        if missing:
            warnings.append(
                f"stream: the ONLINE event of {worker} reached {len(arrivals)} of {result.opened}"
            )
        transitions.append(
            {
                "worker": worker,
                "reached": len(arrivals),
                "missing": missing,
                "first_ms": 1000.0 * arrivals[0] if arrivals else 0.0,
                "p50_ms": 1000.0 * percentile(arrivals, 50),
                "p99_ms": 1000.0 * percentile(arrivals, 99),
                "last_ms": 1000.0 * arrivals[-1] if arrivals else 0.0,
                "spread_ms": 1000.0 * (arrivals[-1] - arrivals[0]) if arrivals else 0.0,
            }
        )
    return {
        "clients": result.clients,
        "opened": result.opened,
        "open_s": result.open_s,
        "open_errors": result.open_errors,
        "initial_events": result.initial_events,
        "ended_early": result.ended_early,
        "dropped": result.open_errors + result.ended_early,
        "rss_before_mb": baseline_after.server_rss / 2**20,
        "rss_connected_mb": connected.server_rss / 2**20,
        "rss_after_events_mb": busy.server_rss / 2**20,
        "rss_closed_mb": closed.server_rss / 2**20,
        "rss_per_client_kb": 1024.0
        * ratio((connected.server_rss - baseline_after.server_rss) / 2**20, result.opened),
        "idle_without_clients": _span(baseline_before, baseline_after),
        "idle_with_clients": _span(connected, idle),
        "transitions_span": _span(idle, busy),
        "events": result.events,
        "events_min_per_client": result.events_min,
        "pings": result.pings,
        "window_s": result.seconds,
        "load_cpu_pct": 100.0 * ratio(result.client_cpu_s, result.seconds),
        "transitions": transitions,
        "worst_last_ms": max((t["last_ms"] for t in transitions), default=0.0),
        "median_last_ms": percentile([t["last_ms"] for t in transitions], 50),
        "median_first_ms": percentile([t["first_ms"] for t in transitions], 50),
        "warnings": warnings,
    }


# --- derived figures ---------------------------------------------------------------------------------


def http_over_grpc(r: Results) -> Results:
    """HTTP over gRPC: p50, p99, throughput and server CPU per call, per route and load."""
    out: Results = {}
    for rpc, loads in r["reads"].items():
        for load, pair in loads.items():
            h, g = pair["http"], pair["grpc"]
            out[f"{rpc}_{load}"] = {
                "p50": ratio(h["p50_ms"], g["p50_ms"]),
                "p99": ratio(h["p99_ms"], g["p99_ms"]),
                "calls_per_s": ratio(h["calls_per_s"], g["calls_per_s"]),
                "server_cpu_per_call": ratio(h["server_cpu_ms_per_call"], g["server_cpu_ms_per_call"]),
            }
    return out


def _pair_problems(pair: Results) -> list[str]:
    """Why an HTTP / gRPC pair of measurements cannot count: either side empty or failed."""
    return case_problems(pair["http"], "HTTP") + case_problems(pair["grpc"], "gRPC")


def targets(r: Results) -> list[Results]:
    """The figures the issue asks for; it sets no number for them, so they are INFO, except that no
    stream client may be dropped."""
    callers = r["plan"]["callers"]
    rows = []
    for rpc in ("overview", "queues"):
        c = r["reads"][rpc]["concurrent"]
        q = r["http_over_grpc"][f"{rpc}_concurrent"]
        rows.append(
            verdicts.info(
                f"{RPC_NAMES[rpc][1]}, {callers} concurrent clients",
                "report p99 (no number set)",
                f"p99 {c['http']['p99_ms']:.1f} ms (gRPC direct {c['grpc']['p99_ms']:.1f} ms, "
                f"HTTP/gRPC {q['p99']:.2f}x)",
                _pair_problems(c),
            )
        )
    rows.append(_encode_target(r["page_encode"]))
    s = r["stream"]
    rows.append(_stream_target(s))
    rows.append(
        verdicts.info(
            f"live stream, a worker transition reaching all {s['opened']} clients",
            "report the time (no number set)",
            f"median last arrival {s['median_last_ms']:.0f} ms after the Beat, worst "
            f"{s['worst_last_ms']:.0f} ms",
            verdicts.sample_problems(sum(1 for t in s["transitions"] if t["reached"]), {}, "transitions"),
        )
    )
    return rows


def _encode_problems(e: Results) -> list[str]:
    """Why the page-encode figures cannot count: no pages or samples, a body unlike json_format's."""
    problems = verdicts.sample_problems(e["samples"] if e["pages"] else 0, {"differing bodies": e["errors"]})
    if e["pages"] and e["jobs_per_page"] < gateway_encode.PAGE_SIZE:
        problems.append(f"a page held only {e['jobs_per_page']} jobs")
    return problems


def _encode_target(e: Results) -> Results:
    o, ref = e["ours"], e["reference"]
    return verdicts.target(
        f"a ListJobs page of {gateway_encode.PAGE_SIZE} distinct jobs to JSON (gateway encoder)",
        f"p50 <= {ENCODE_TARGET_MS:g} ms",
        f"p50 {o['p50_ms']:.2f} ms, p99 {o['p99_ms']:.2f} ms (json_format {ref['p50_ms']:.2f} / "
        f"{ref['p99_ms']:.2f} ms)",
        o["p50_ms"] <= ENCODE_TARGET_MS,
        _encode_problems(e),
    )


def _stream_target(s: Results) -> Results:
    """No stream client dropped; a run with no client or no transition to miss shows nothing."""
    missed = sum(t["missing"] for t in s["transitions"])
    return verdicts.target(
        f"live stream, {s['clients']} clients",
        "no client dropped",
        f"{s['opened']} opened, {s['ended_early']} ended early, {missed} missed events",
        s["dropped"] == 0 and s["opened"] == s["clients"] and not missed,
        verdicts.sample_problems(s["opened"], {}, "clients")
        + verdicts.sample_problems(len(s["transitions"]), {}, "transitions"),
    )


def _limit(case: Results) -> str:
    if case["server_cpu_pct"] >= SATURATED_PCT:
        return "the server process's CPU (one core, saturated)"
    if case["machine_busy_pct"] >= 90.0:
        return "the machine's CPUs (server, load generator and Redis share them)"
    return "neither the server nor the machine CPU (latency x callers)"


def findings(r: Results) -> list[str]:
    """Sentences reading the measured figures: what limits them."""
    callers = r["plan"]["callers"]
    lines = []
    for rpc in ("overview", "queues"):
        grpc_name, http_name = RPC_NAMES[rpc]
        c, s = r["reads"][rpc]["concurrent"], r["reads"][rpc]["sequential"]
        h, g = c["http"], c["grpc"]
        q = r["http_over_grpc"][f"{rpc}_concurrent"]
        extra = h["server_cpu_ms_per_call"] - g["server_cpu_ms_per_call"]
        lines.append(
            f"{http_name} with {callers} clients: {h['calls_per_s']:,.0f} calls/s against "
            f"{g['calls_per_s']:,.0f} for {grpc_name} over gRPC ({q['calls_per_s']:.2f}x), "
            f"limited by {_limit(h)}: server {h['server_cpu_pct']:.0f}% of a core at "
            f"{h['server_cpu_ms_per_call']:.2f} ms CPU per call against {g['server_cpu_ms_per_call']:.2f} ms "
            f"over gRPC: the gateway adds {extra:.2f} ms per call (HTTP parsing, auth, a gRPC call to its "
            f"own process, JSON encoding of {h['response_bytes']:,} bytes); load generator "
            f"{h['client_cpu_pct']:.0f}%, machine {h['machine_busy_pct']:.0f}%. Closed loop: p50 ~ clients "
            f"/ throughput = {1000.0 * ratio(callers, h['calls_per_s']):.0f} ms (measured "
            f"{h['p50_ms']:.0f} ms)."
        )
        one = s["http"]
        line = (
            f"{http_name}, 1 client: p50 {one['p50_ms']:.2f} ms against {s['grpc']['p50_ms']:.2f} ms "
            f"over gRPC, server {one['server_cpu_ms_per_call']:.2f} against "
            f"{s['grpc']['server_cpu_ms_per_call']:.2f} ms CPU per call."
        )
        if one["p50_ms"] >= STALL_MS and one["p50_ms"] > 5.0 * one["server_cpu_ms_per_call"]:
            line += (
                f" The server is idle for most of each call ({one['server_cpu_pct']:.0f}% of a core): "
                "~40 ms is Linux's delayed-ACK timer, each answer's body held back by Nagle's algorithm "
                "behind its headers on a reused connection (the gateway's accepted sockets lack "
                "TCP_NODELAY; see bench/README.md)."
            )
        lines.append(line)
    st = r["stream"]
    base, idle, busy = st["idle_without_clients"], st["idle_with_clients"], st["transitions_span"]
    lines.append(
        f"Stream memory: server RSS {st['rss_before_mb']:.0f} MB -> {st['rss_connected_mb']:.0f} MB with "
        f"{st['opened']} streams open (~{st['rss_per_client_kb']:.0f} KB per stream), "
        f"{st['rss_closed_mb']:.0f} MB after they closed."
    )
    lines.append(
        f"Stream idle: server {idle['server_cpu_pct']:.1f}% of a core with {st['opened']} idle streams "
        f"against {base['server_cpu_pct']:.1f}% with none (the overview poll every 2 s and the suite's own "
        f"loops); {st['pings']:,} keep-alives and {st['events'].get('overview', 0):,} overview events were "
        "written in the window."
    )
    fast = [t for t in st["transitions"] if t["reached"]]
    if fast:
        lines.append(
            f"Fan-out: a worker's first Beat reaches the first client after a median "
            f"{st['median_first_ms']:.0f} ms (Beat -> Redis -> WatchWorkers -> gateway) and the last of "
            f"{st['opened']} after {st['median_last_ms']:.0f} ms; the spread "
            f"({percentile([t['spread_ms'] for t in fast], 50):.0f} ms median) is the gateway writing the "
            f"event to every connection from its one event loop. Server CPU over the transitions "
            f"{busy['server_cpu_pct']:.0f}% of a core; the load generator reading every stream "
            f"{st['load_cpu_pct']:.0f}%."
        )
    return lines


def derive(r: Results) -> None:
    """Add ratios, targets and findings to the results."""
    r["http_over_grpc"] = http_over_grpc(r)
    r["ratios"] = check_ratios(r)
    r["targets"] = targets(r)
    r["findings"] = findings(r)


HTTP_RATIOS = ("p50", "p99", "calls_per_s", "server_cpu_per_call")
ENCODE_TARGET_MS = 1.0


def check_ratios(r: Results) -> dict[str, Ratio]:
    """The ratios `bench.check` compares with the baselines, each with the direction that is better."""
    rows: dict[str, Ratio] = {}
    for rpc, loads in r["reads"].items():
        for load, pair in loads.items():
            problems = _pair_problems(pair)
            values = r["http_over_grpc"][f"{rpc}_{load}"]
            rows |= ratio_group(f"http_vs_grpc.{rpc}.{load}", values, HTTP_RATIOS, problems)
    e = r["page_encode"]
    for q in ("p50", "p99"):
        rows[f"page_encode_vs_json_format.{q}"] = ratio_entry(
            ratio(e["ours"][f"{q}_ms"], e["reference"][f"{q}_ms"]), "lower", _encode_problems(e)
        )
    return rows


# --- table -------------------------------------------------------------------------------------------

LABEL = 36


def _header() -> str:
    return (
        f"  {'':<{LABEL}}{'calls':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'calls/s':>9}{'err/to':>7}"
        f"{'srv CPU':>8}{'srv ms/call':>12}{'load CPU':>9}{'machine':>8}{'bytes':>8}"
    )


def _row(label: str, c: Results) -> str:
    return (
        f"  {label:<{LABEL}}{c['calls']:>6}{c['p50_ms']:>9.2f}{c['p99_ms']:>9.2f}{c['max_ms']:>9.1f}"
        f"{c['calls_per_s']:>9,.1f}{c['errors']:>4}/{c['timeouts']:<2}{c['server_cpu_pct']:>7.0f}%"
        f"{c['server_cpu_ms_per_call']:>12.2f}{c['client_cpu_pct']:>8.0f}%{c['machine_busy_pct']:>7.0f}%"
        f"{c['response_bytes']:>8,}"
    )


def _ratio_row(q: Results) -> str:
    return (
        f"  {'ratio HTTP / gRPC':<{LABEL}}{'':>6}{q['p50']:>8.2f}x{q['p99']:>8.2f}x{'':>9}"
        f"{q['calls_per_s']:>8.2f}x{'':>7}{'':>8}{q['server_cpu_per_call']:>11.2f}x"
    )


def _title(r: Results) -> list[str]:
    t, p, w = r["topology"], r["plan"], r["workload"]
    counts = ", ".join(f"{w['counts'][s]:,} {s}" for s in ("completed", "failed", "waiting", "delayed"))
    return [
        f"Worker Monitor - HTTP gateway benchmark ({r['mode']}, {r['elapsed_s']:.0f} s)",
        f"Topology: {t['cpus']} CPUs | server (`python -m bench.server gateway`, pid {t['server_pid']}): "
        "heartbeat + collector + monitor in one gRPC server and the HTTP gateway (uvicorn) in the same "
        "process and event loop, the gateway calling the gRPC port of its own process | callers and stream "
        f"clients: 1 load-generator process (pid {t['load_pid']}), aiohttp / grpc.aio | Redis "
        f"{t['redis_version']} ({t['redis']}), redis-py parser {t['redis_parser']} | SQLite history | "
        f"Python {t['python']}",
        f"Workload: {p['queues']} queues x {p['jobs_per_queue']:,} jobs under prefix {t['bull_prefix']} "
        f"({counts}), {w['made_by']} in {w['seconds']:.1f} s; "
        "WORKERMON_COLLECTOR_SCHEDULE=false, one CollectNow first; live counts shared for 1 s (the default).",
        "Columns: closed loop, each caller calls again when answered, a connection (HTTP keep-alive or gRPC "
        "channel) per caller, every answer parsed; err/to = errors / timeouts; CPU as % of one core "
        "(machine: of all cores); srv ms/call = server CPU per call; bytes = answer size (JSON or protobuf).",
    ]


def _reads_section(r: Results) -> list[str]:
    p = r["plan"]
    lines = []
    for rpc in ("overview", "queues"):
        grpc_name, http_name = RPC_NAMES[rpc]
        lines += ["", f"{http_name} (HTTP gateway) against MonitorService.{grpc_name} over gRPC", _header()]
        for load, who in (("sequential", "1 caller"), ("concurrent", f"{p['callers']} callers")):
            pair = r["reads"][rpc][load]
            lines.append(_row(f"{grpc_name} gRPC, {who}", pair["grpc"]))
            lines.append(_row(f"{http_name}, {who}", pair["http"]))
            lines.append(_ratio_row(r["http_over_grpc"][f"{rpc}_{load}"]))
    return lines


def _stream_section(r: Results) -> list[str]:
    s = r["stream"]
    base, idle, busy = s["idle_without_clients"], s["idle_with_clients"], s["transitions_span"]
    events = ", ".join(f"{n:,} {k}" for k, n in s["events"].items()) or "none"
    lines = [
        "",
        f"Live stream: {s['clients']} clients on GET /api/v1/stream?access_token=<one viewer token>, one "
        "connection each, reading continuously",
        f"  opened {s['opened']} in {s['open_s']:.1f} s ({s['open_errors']} failed, "
        f"{s['initial_events']} got the current overview at once); ended early: {s['ended_early']}",
        f"  server RSS {s['rss_before_mb']:.0f} MB before -> {s['rss_connected_mb']:.0f} MB connected "
        f"({s['rss_per_client_kb']:.0f} KB per stream) -> {s['rss_after_events_mb']:.0f} MB after the "
        f"transitions -> {s['rss_closed_mb']:.0f} MB closed",
        f"  {'':<{LABEL}}{'seconds':>8}{'srv CPU':>8}{'Redis CPU':>10}{'machine':>8}",
    ]
    for label, span in (
        ("idle, no clients (baseline)", base),
        (f"idle, {s['opened']} clients connected", idle),
        (f"{len(s['transitions'])} transitions, {s['opened']} clients", busy),
    ):
        lines.append(
            f"  {label:<{LABEL}}{span['seconds']:>8.1f}{span['server_cpu_pct']:>7.1f}%"
            f"{span['redis_cpu_pct']:>9.1f}%{span['machine_busy_pct']:>7.0f}%"
        )
    lines += [
        f"  in the {s['window_s']:.0f} s window: {events}; {s['pings']:,} keep-alives; fewest per client: "
        + (", ".join(f"{n} {k}" for k, n in s["events_min_per_client"].items()) or "none"),
        "",
        "  Worker ONLINE event, from the Beat (sent by the bench process) to each of the "
        f"{s['opened']} clients",
        f"  {'worker':<{LABEL}}{'reached':>8}{'first ms':>9}{'p50 ms':>9}{'p99 ms':>9}{'last ms':>9}"
        f"{'spread ms':>10}",
    ]
    for t in s["transitions"]:
        lines.append(
            f"  {t['worker']:<{LABEL}}{t['reached']:>8}{t['first_ms']:>9.1f}{t['p50_ms']:>9.1f}"
            f"{t['p99_ms']:>9.1f}{t['last_ms']:>9.1f}{t['spread_ms']:>10.1f}"
        )
    return lines


def _encode_section(r: Results) -> list[str]:
    e = r["page_encode"]
    if not e["pages"]:
        return ["", "Page encode: no pages"]
    o, ref = e["ours"], e["reference"]
    return [
        "",
        f"ListJobs page to JSON in the bench process: {e['pages']} distinct pages of "
        f"{e['jobs_per_page']} jobs "
        f"({e['body_bytes']:,} bytes of JSON), {e['samples']:,} samples per side alternating, "
        f"after {gateway_encode.WARMUP} warm-up pages; reply bytes parsed, document built, json.dumps",
        f"  {'':<{LABEL}}{'p50 ms':>9}{'p99 ms':>9}",
        f"  {'gateway encoder (transcode.to_json)':<{LABEL}}{o['p50_ms']:>9.3f}{o['p99_ms']:>9.3f}",
        f"  {'json_format (reference_json)':<{LABEL}}{ref['p50_ms']:>9.3f}{ref['p99_ms']:>9.3f}",
        f"  {'ratio gateway / json_format':<{LABEL}}{o['p50_ms'] / ref['p50_ms']:>8.2f}x"
        f"{o['p99_ms'] / ref['p99_ms']:>8.2f}x   bodies differing: {e['errors']}",
    ]


def table(r: Results) -> str:
    """The human-readable report."""
    return "\n".join(
        _title(r)
        + _reads_section(r)
        + _encode_section(r)
        + _stream_section(r)
        + text.targets_lines(r["targets"])
        + text.findings_lines("What limits the figures (measured)", r)
    )
