"""Figures, targets, findings and the printed table of the MonitorService benchmark."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import text, verdicts
from .client import CALL_TIMEOUT_S
from .figures import percentile, ratio
from .record import Ratio, ratio_group
from .verdicts import case_problems

if TYPE_CHECKING:
    from .monitor import Sample
    from .monitor_client import CallsResult

TARGET_P99_MS = 50.0
# A process at or above this share of one core is taken as CPU-bound.
SATURATED_PCT = 85.0
CALL_TIMEOUT = f"{CALL_TIMEOUT_S:.0f} s timeout"

Results = dict[str, Any]


def call_stats(result: CallsResult, callers: int, before: Sample, after: Sample, queues: int) -> Results:
    """Latency of a batch of calls, and what the server, Redis and the machine spent on it."""
    latencies, seconds = result.latencies_ms, result.seconds
    calls = len(latencies)
    server_cpu = after.server_cpu_s - before.server_cpu_s
    machine = after.machine_total_s - before.machine_total_s
    redis_calls = after.redis_calls - before.redis_calls
    readings = (after.redis_lindex_calls - before.redis_lindex_calls) / queues if queues else 0.0
    return {
        "callers": callers,
        "calls": calls,
        "errors": result.errors,
        "timeouts": result.timeouts,
        "error_sample": result.error_sample,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=0.0),
        "calls_per_s": ratio(calls, seconds),
        "seconds": seconds,
        "server_cpu_pct": 100.0 * ratio(server_cpu, seconds),
        "server_cpu_ms_per_call": 1000.0 * ratio(server_cpu, calls),
        "server_rss_mb": after.server_rss / 2**20,
        "client_cpu_pct": 100.0 * ratio(result.client_cpu_s, seconds),
        "redis_cpu_pct": 100.0 * ratio(after.redis_cpu_s - before.redis_cpu_s, seconds),
        "redis_commands_per_call": ratio(redis_calls, calls),
        "readings": readings,
        "readings_per_call": ratio(readings, calls),
        "machine_busy_pct": 100.0 * ratio(after.machine_busy_s - before.machine_busy_s, machine),
        "items": result.items,
        "response_bytes": result.response_bytes,
    }


# --- derived figures ---------------------------------------------------------------------------------


def _p99_target(name: str, case: Results) -> Results:
    return verdicts.target(
        name,
        f"p99 < {TARGET_P99_MS:.0f} ms",
        f"p50 {case['p50_ms']:.1f} ms, p99 {case['p99_ms']:.1f} ms",
        case["p99_ms"] < TARGET_P99_MS,
        case_problems(case),
    )


def targets(r: Results) -> list[Results]:
    """The targets beside the measured figures (informational)."""
    callers = r["plan"]["callers"]
    queues = r["plan"]["queues"]
    rows = []
    for key, label in (("board", "default live max age 1 s"), ("board_live0", "live max age 0")):
        for rpc, name in (("overview", "GetOverview"), ("queues", "ListQueues")):
            rows.append(
                _p99_target(
                    f"{name}, {callers} concurrent callers, {queues} queues ({label})",
                    r[key][rpc]["concurrent"],
                )
            )
    jobs = r["jobs"]
    rows.append(
        _p99_target(
            f"ListJobs first page (COMPLETED, page_size {r['plan']['page_size']}), "
            f"{jobs['jobs']:,} completed jobs",
            jobs["grpc"],
        )
    )
    return rows


def vs_bull_board(r: Results) -> Results:
    """ListQueues over bull-board's queue list, p50 and p99, per configuration and concurrency."""
    board = r["bull_board"]
    if board["skipped"]:
        return {}
    out: Results = {}
    for key in ("board", "board_live0"):
        for load in ("sequential", "concurrent"):
            ours, theirs = r[key]["queues"][load], board[load]
            out[f"{key}_{load}"] = {
                "p50": ratio(ours["p50_ms"], theirs["p50_ms"]),
                "p99": ratio(ours["p99_ms"], theirs["p99_ms"]),
                "calls_per_s": ratio(ours["calls_per_s"], theirs["calls_per_s"]),
            }
    return out


def _limit(case: Results) -> str:
    if case["server_cpu_pct"] >= SATURATED_PCT:
        return "the server process's CPU (one core, saturated)"
    if case["machine_busy_pct"] >= 90.0:
        return "the machine's CPUs (server, load generator and Redis share them)"
    return "neither the server nor the machine CPU (latency x callers)"


def findings(r: Results) -> list[str]:
    """Sentences reading the measured figures: what limits them."""
    plan = r["plan"]
    callers = plan["callers"]
    lines = []
    for rpc, name in (("queues", "ListQueues"), ("overview", "GetOverview")):
        c = r["board"][rpc]["concurrent"]
        s = r["board"][rpc]["sequential"]
        lines.append(
            f"{name} with {callers} callers: {c['calls_per_s']:,.0f} calls/s, limited by {_limit(c)}: server "
            f"{c['server_cpu_pct']:.0f}% of a core at {c['server_cpu_ms_per_call']:.2f} ms CPU per call "
            f"(sequential {s['server_cpu_ms_per_call']:.2f} ms), load generator {c['client_cpu_pct']:.0f}%, "
            f"machine {c['machine_busy_pct']:.0f}% of {r['topology']['cpus']} cores. In a closed loop "
            f"p50 ~ callers / throughput = {1000.0 * ratio(callers, c['calls_per_s']):.0f} ms "
            f"(measured {c['p50_ms']:.0f} ms): below {TARGET_P99_MS:.0f} ms needs "
            f"{callers * 1000.0 / TARGET_P99_MS:,.0f} calls/s from one process."
        )
    shared, every = r["board"]["queues"]["concurrent"], r["board_live0"]["queues"]["concurrent"]
    lines.append(
        f"Sharing live counts: {shared['calls']:,} ListQueues calls of {callers} callers caused "
        f"{shared['readings']:.0f} Redis readings of the {plan['queues']} queues with the default 1 s "
        f"(server {shared['server_cpu_ms_per_call']:.2f} ms CPU per call, p99 {shared['p99_ms']:.1f} ms); "
        "at 0 s, "
        f"{every['readings']:.0f} readings ({every['readings_per_call']:.2f} per call, "
        f"{every['redis_commands_per_call']:.0f} Redis commands per call, server "
        f"{every['server_cpu_ms_per_call']:.2f} ms CPU per call, p99 {every['p99_ms']:.1f} ms). Even at 0 s, "
        "calls arriving while a reading is in flight share it; one reading alone costs the server about "
        f"{r['board_live0']['queues']['sequential']['server_cpu_ms_per_call']:.1f} ms of CPU (1 caller)."
    )
    board = r["bull_board"]
    if not board["skipped"]:
        c = board["concurrent"]
        lines.append(
            f"bull-board's queue list with {callers} clients: {c['calls_per_s']:,.1f} requests/s, Node at "
            f"{c['server_cpu_pct']:.0f}% of a core, Redis {c['redis_cpu_pct']:.0f}%, "
            f"{c['redis_commands_per_call']:,.0f} Redis commands per request (getJobCounts, isPaused, "
            "global concurrency, rate-limit TTL, schedulers count and CLIENT LIST for workers, for every "
            f"queue, on every request); {c['timeouts']} timeouts ({CALL_TIMEOUT})."
        )
    jobs = r["jobs"]
    g, raw = jobs["grpc"], jobs["raw"]
    lines.append(
        f"ListJobs first page: p50 {g['p50_ms']:.2f} ms against {raw['p50_ms']:.2f} ms for its raw Redis "
        f"work from the bench process ({ratio(g['p50_ms'], raw['p50_ms']):.1f}x); the queue's size does not "
        f"matter (ZREVRANGE reads {plan['page_size']} of {jobs['jobs']:,} members); server CPU "
        f"{g['server_cpu_ms_per_call']:.2f} ms per call ({g['redis_commands_per_call']:.0f} Redis commands)."
    )
    d, s = jobs["discovery"], r["board"]["queues"]["sequential"]
    lines.append(
        f"Queue discovery: with {jobs['redis_keys']:,} keys in Redis, one ListQueues caller sees p50 "
        f"{d['p50_ms']:.1f} ms but max {d['max_ms']:,.0f} ms (before the big queue: max "
        f"{s['max_ms']:.0f} ms): the reading that refreshes the queue list SCANs every key of the Redis; "
        "once a SCAN proves slow it runs in the background, so only the first slow one is waited for."
    )
    return lines


def derive(r: Results) -> None:
    """Add targets, ratios and findings to the results."""
    r["targets"] = targets(r)
    r["vs_bull_board"] = vs_bull_board(r)
    r["ratios"] = check_ratios(r)
    r["findings"] = findings(r)


LIVE_LABELS = {"board": "live_1s", "board_live0": "live_0s"}


def _bull_board_problems(board: Results, load: str) -> list[str]:
    if board["skipped"]:
        return [f"bull-board not measured ({board['reason']})"]
    return case_problems(board[load], "bull-board")


def check_ratios(r: Results) -> dict[str, Ratio]:
    """The ratios `bench.check` compares with the baselines, each with the direction that is better."""
    board, jobs = r["bull_board"], r["jobs"]
    rows: dict[str, Ratio] = {}
    for key, live in LIVE_LABELS.items():
        for load in ("sequential", "concurrent"):
            problems = case_problems(r[key]["queues"][load], "ListQueues") + _bull_board_problems(board, load)
            values = r["vs_bull_board"].get(f"{key}_{load}", {})
            prefix = f"list_queues_vs_bull_board.{live}.{load}"
            rows |= ratio_group(prefix, values, ("p50", "p99", "calls_per_s"), problems)
    grpc, raw = jobs["grpc"], jobs["raw"]
    values = {"p50": ratio(grpc["p50_ms"], raw["p50_ms"]), "p99": ratio(grpc["p99_ms"], raw["p99_ms"])}
    problems = case_problems(grpc, "ListJobs") + case_problems(raw, "raw Redis")
    rows |= ratio_group("list_jobs_vs_raw_redis", values, ("p50", "p99"), problems)
    return rows


# --- table -------------------------------------------------------------------------------------------

LABEL = 44


def _header() -> str:
    return (
        f"  {'':<{LABEL}}{'calls':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'calls/s':>9}{'err/to':>7}"
        f"{'srv CPU':>8}{'srv ms/call':>12}{'load CPU':>9}{'Redis CPU':>10}{'Redis cmd/call':>15}"
        f"{'readings':>9}{'machine':>8}"
    )


def _row(label: str, c: Results, readings_shown: bool = True) -> str:
    # LINDEX calls count the board's readings only; other clients' scripts use LINDEX too.
    readings = f"{c['readings']:.0f}" if c["readings"] and readings_shown else "-"
    return (
        f"  {label:<{LABEL}}{c['calls']:>6}{c['p50_ms']:>9.2f}{c['p99_ms']:>9.2f}{c['max_ms']:>9.1f}"
        f"{c['calls_per_s']:>9,.1f}{c['errors']:>4}/{c['timeouts']:<2}{c['server_cpu_pct']:>7.0f}%"
        f"{c['server_cpu_ms_per_call']:>12.2f}{c['client_cpu_pct']:>8.0f}%{c['redis_cpu_pct']:>9.0f}%"
        f"{c['redis_commands_per_call']:>15,.1f}{readings:>9}{c['machine_busy_pct']:>7.0f}%"
    )


def _title(r: Results) -> list[str]:
    t, p, w = r["topology"], r["plan"], r["workload"]
    counts = ", ".join(f"{w['counts'][s]:,} {s}" for s in ("completed", "failed", "waiting", "delayed"))
    return [
        f"Worker Monitor - MonitorService benchmark ({r['mode']}, {r['elapsed_s']:.0f} s)",
        f"Topology: {t['cpus']} CPUs | suite server (heartbeat + collector + monitor in one gRPC server, "
        "`python -m bench.server monitor`): its own process, MonitorService reaching HeartbeatService and "
        f"CollectorService over gRPC on its own port | callers: 1 load-generator process "
        f"(pid {t['load_pid']}) | bull-board: a Node {t['node']} process | Redis {t['redis_version']} "
        f"({t['redis']}), redis-py parser {t['redis_parser']} | SQLite history | Python {t['python']}",
        f"Workload: {p['queues']} queues x {p['jobs_per_queue']:,} jobs under prefix {t['bull_prefix']} "
        f"({counts}), made by {w['made_by']} in {w['seconds']:.1f} s, counts checked with "
        "BullMQBackend.states; WORKERMON_COLLECTOR_SCHEDULE=false, one CollectNow before the calls.",
        "Columns: closed loop, each caller calls again when answered; err/to = errors / timeouts; CPU as % "
        "of one core (machine: of all cores); load CPU = the load generator; readings = Redis readings of "
        "every queue during the batch (LINDEX calls / queues).",
    ]


def _board_section(r: Results) -> list[str]:
    p = r["plan"]
    lines = []
    for key, title in (
        ("board", "live counts shared for 1 s (WORKERMON_LIVE_MAX_AGE_SECONDS=1, the default)"),
        ("board_live0", "live counts read for every call (WORKERMON_LIVE_MAX_AGE_SECONDS=0)"),
    ):
        b = r[key]
        lines += ["", f"Queue board through gRPC, {title}; server pid {b['pid']}", _header()]
        for rpc, name in (("overview", "GetOverview"), ("queues", "ListQueues")):
            lines.append(_row(f"{name}, 1 caller", b[rpc]["sequential"]))
            lines.append(_row(f"{name}, {p['callers']} callers", b[rpc]["concurrent"]))
        lines.append(
            f"  server RSS {b['rss_before_mb']:.0f} MB before the calls -> {b['rss_after_mb']:.0f} MB after; "
            f"ListQueues answer {b['queues']['sequential']['response_bytes']:,} bytes, GetOverview "
            f"{b['overview']['sequential']['response_bytes']:,} bytes"
        )
    return lines


def _bull_board_section(r: Results) -> list[str]:
    board, p = r["bull_board"], r["plan"]
    if board["skipped"]:
        return ["", f"bull-board: not measured ({board['reason']})"]
    lines = [
        "",
        f"bull-board {board['version']} (@bull-board/express, Express 5, Node BullMQ; pid {board['pid']}): "
        "GET /api/queues?page=1&jobsPerPage=10 (the list its UI polls: every queue with its counts), "
        f"same Redis and queues, {CALL_TIMEOUT} per request; the board's callers, calls and warm-up, a "
        "keep-alive connection per client opened and answered before the timing, JSON parsed in the timing",
        _header(),
        _row("bull-board queue list, 1 client", board["sequential"], readings_shown=False),
        _row(f"bull-board queue list, {p['callers']} clients", board["concurrent"], readings_shown=False),
        _row("bull-board queue page (activeQueue, latest)", board["queue_page"], readings_shown=False),
        f"  Node RSS {board['rss_before_mb']:.0f} MB before -> {board['rss_after_mb']:.0f} MB after; answer "
        f"{board['sequential']['response_bytes']:,} bytes (JSON)",
        "",
        f"  {'ListQueues / bull-board queue list':<{LABEL}}{'p50':>9}{'p99':>9}{'calls/s':>9}",
    ]
    for key, label in (("board", "live 1 s"), ("board_live0", "live 0 s")):
        for load, who in (("sequential", "1 caller"), ("concurrent", f"{p['callers']} callers")):
            q = r["vs_bull_board"][f"{key}_{load}"]
            lines.append(
                f"  {f'{label}, {who}':<{LABEL}}{q['p50']:>8.3f}x{q['p99']:>8.3f}x{q['calls_per_s']:>8.1f}x"
            )
    return lines


def _jobs_section(r: Results) -> list[str]:
    j, p = r["jobs"], r["plan"]
    raw = j["raw"]
    return [
        "",
        f"ListJobs first page, states=[COMPLETED], page_size {p['page_size']}, queue of {j['jobs']:,} "
        f"completed jobs (written in {j['write']['seconds']:.1f} s, "
        f"{j['write']['jobs_per_s']:,.0f} jobs/s; Redis now holds {j['redis_keys']:,} keys)",
        _header(),
        _row("ListJobs, 1 caller", j["grpc"]),
        f"  {'raw Redis: ZREVRANGE 0 49 + 50 HMGET *':<{LABEL}}{raw['calls']:>6}{raw['p50_ms']:>9.2f}"
        f"{raw['p99_ms']:>9.2f}{raw['max_ms']:>9.1f}{raw['calls_per_s']:>9,.1f}",
        f"  {'ratio ListJobs / raw':<{LABEL}}{'':>6}{ratio(j['grpc']['p50_ms'], raw['p50_ms']):>8.2f}x"
        f"{ratio(j['grpc']['p99_ms'], raw['p99_ms']):>8.2f}x",
        _row(f"ListQueues, 1 caller for {p['discovery_s']:g} s **", j["discovery"]),
        f"  server RSS {j['rss_before_mb']:.0f} MB before ListJobs -> {j['rss_after_mb']:.0f} MB after",
        "  * from the bench process, redis-py (sync, hiredis), one call at a time: two round trips, like the "
        "service's page.",
        "  ** with the big queue's keys in Redis: the board refreshes its queue list (SCAN of every key), "
        "every 2 s, or in the background and less often once a SCAN proves slow.",
    ]


def table(r: Results) -> str:
    """The human-readable report."""
    return "\n".join(
        _title(r)
        + _board_section(r)
        + _bull_board_section(r)
        + _jobs_section(r)
        + text.targets_lines(r["targets"])
        + text.findings_lines("What limits the figures (measured)", r)
    )
