"""The printed table, the targets beside the figures, what limits throughput, and the JSON file."""

from __future__ import annotations

from typing import Any

from . import text, verdicts, workload
from .figures import LoadStats, ratio
from .record import Ratio, ratio_entry, ratio_group
from .verdicts import case_problems

TARGET_BEATS_PER_S = 10_000
TARGET_BEAT_P99_MS = 50.0
TARGET_LIST_P99_MS = 20.0
TARGET_REPLICA_SCALING = 1.7  # beats/s of 2 server processes over 1, same load
# A process at or above this share of one core is taken as CPU-bound.
SATURATED_PCT = 85.0
# The machine at or above this share of all its cores (busy or stolen) is taken as saturated: with
# more runnable processes than cores, what is left is the processes waiting on each other.
MACHINE_SATURATED_PCT = 85.0
# The SDK's default beat interval, for the sizing figures.
BEAT_INTERVAL_S = 10.0

Results = dict[str, Any]


def beat_size() -> int:
    """Serialized size of one benchmark beat."""
    return len(workload.beat_bytes(0, 0))


def unary_ratio(beat: LoadStats, echo: LoadStats) -> dict[str, float]:
    """HeartbeatService against the echo server under the same load."""
    return {
        "throughput": ratio(beat.beats_per_s, echo.beats_per_s),
        "p50": ratio(beat.p50_ms, echo.p50_ms),
        "p99": ratio(beat.p99_ms, echo.p99_ms),
        "server_cpu_per_call": ratio(beat.server_cpu_s_per_1k, echo.server_cpu_s_per_1k),
    }


def _beats_per_cpu_s(stats: LoadStats) -> float:
    return ratio(stats.beats, stats.server_cpu_s)


def _machine_pct(stats: Results) -> float:
    """Busy or stolen share of all cores."""
    return float(stats["machine_busy_pct"] + stats["machine_steal_pct"])


def replicas(echo: dict[str, LoadStats], beat: dict[str, LoadStats]) -> Results:
    """Each server kind with one process and with two, and the ratios between them.

    Efficiency is HeartbeatService's beats per server CPU-second over the echo server's, for the same
    number of processes. The projection is arithmetic on a measured figure, not a measurement: beats
    per server CPU-second of the 2-process run times a core for each process."""
    per_cpu = {
        kind: {n: _beats_per_cpu_s(stats) for n, stats in runs.items()}
        for kind, runs in (("echo", echo), ("heartbeat", beat))
    }
    hb = per_cpu["heartbeat"]
    return {
        "echo": {n: stats.to_dict() for n, stats in echo.items()},
        "heartbeat": {n: stats.to_dict() for n, stats in beat.items()},
        "scaling": {
            "echo": ratio(echo["two"].beats_per_s, echo["one"].beats_per_s),
            "heartbeat": ratio(beat["two"].beats_per_s, beat["one"].beats_per_s),
        },
        "beats_per_server_cpu_s": per_cpu,
        "efficiency": {n: ratio(hb[n], per_cpu["echo"][n]) for n in hb},
        "projection_cpu_bound": {
            "one_process_beats_per_s": hb["one"],
            "two_processes_beats_per_s": 2 * hb["two"],
            "scaling": ratio(2 * hb["two"], hb["one"]),
        },
    }


# --- ratios compared across runs -------------------------------------------------------------------


def check_ratios(results: Results) -> dict[str, Ratio]:
    """The ratios `bench.check` compares with the baselines, each with the direction that is better.

    The echo server's own 2-process scaling is left out: it holds no code of ours."""
    unary, rep = results["unary"], results["replicas"]
    echo, beat = rep["echo"], rep["heartbeat"]
    each = {n: case_problems(beat[n], "heartbeat") + case_problems(echo[n], "echo") for n in ("one", "two")}
    return {
        **ratio_group(
            "unary_vs_echo",
            unary["ratio"],
            ("throughput", "p50", "p99", "server_cpu_per_call"),
            case_problems(unary["heartbeat"], "heartbeat") + case_problems(unary["echo"], "echo"),
        ),
        "replicas.scaling": ratio_entry(
            rep["scaling"]["heartbeat"],
            "higher",
            case_problems(beat["one"], "1 process") + case_problems(beat["two"], "2 processes"),
        ),
        "replicas.efficiency_1_process": ratio_entry(rep["efficiency"]["one"], "higher", each["one"]),
        "replicas.efficiency_2_processes": ratio_entry(rep["efficiency"]["two"], "higher", each["two"]),
    }


# --- targets -----------------------------------------------------------------------------------------


def _beat_target(name: str, stats: Results) -> dict[str, Any]:
    met = stats["beats_per_s"] >= TARGET_BEATS_PER_S and stats["p99_ms"] < TARGET_BEAT_P99_MS
    return verdicts.target(
        name,
        f"{TARGET_BEATS_PER_S:,} beats/s with p99 < {TARGET_BEAT_P99_MS:.0f} ms",
        f"{stats['beats_per_s']:,.0f} beats/s, p99 {stats['p99_ms']:.1f} ms",
        met,
        case_problems(stats),
    )


def _list_target(name: str, case: Results) -> dict[str, Any]:
    return verdicts.target(
        name,
        f"p99 < {TARGET_LIST_P99_MS:.0f} ms",
        f"p99 {case['p99_ms']:.2f} ms",
        case["p99_ms"] < TARGET_LIST_P99_MS,
        case_problems(case),
    )


def _scaling_target(replicas_: Results) -> dict[str, Any]:
    one, two = replicas_["heartbeat"]["one"], replicas_["heartbeat"]["two"]
    scaling = replicas_["scaling"]["heartbeat"]
    return verdicts.target(
        "Beat (unary), 2 server processes against 1, same load",
        f">= {TARGET_REPLICA_SCALING}x the beats/s",
        f"{scaling:.2f}x ({two['beats_per_s']:,.0f} against {one['beats_per_s']:,.0f} beats/s; "
        f"machine {_machine_pct(two):.0f}% busy with 2)",
        scaling >= TARGET_REPLICA_SCALING,
        case_problems(one, "1 process") + case_problems(two, "2 processes"),
    )


def _paced_target(paced: Results) -> dict[str, Any]:
    return verdicts.target(
        f"Beat (unary) paced at {paced['offered_per_s']:,} beats/s",
        f"p99 < {TARGET_BEAT_P99_MS:.0f} ms (latency half of the target, below the ceiling)",
        f"p99 {paced['p99_ms']:.1f} ms",
        paced["p99_ms"] < TARGET_BEAT_P99_MS,
        case_problems(paced),
    )


def targets(results: Results) -> list[dict[str, Any]]:
    """The issue's targets beside the measured figures (informational)."""
    listing = results["list"]
    workers = f"{listing['workers']:,} workers"
    rows = [
        _beat_target("Beat (unary), closed loop", results["unary"]["heartbeat"]),
        _scaling_target(results["replicas"]),
        _beat_target("BeatStream", results["stream"]),
        _paced_target(results["unary"]["paced"]),
    ]
    for key, case in listing["cases"].items():
        if key.startswith("page_"):
            rows.append(_list_target(f"ListWorkers first page {_case_label(key)}, {workers}", case))
    return rows


def _case_label(key: str) -> str:
    parts = key.split("_")
    if len(parts) == 2:
        return f"(page_size {parts[1]})"
    return f"(page_size {parts[1]}, {parts[3]} concurrent callers)"


# --- what limits throughput --------------------------------------------------------------------------


def _bottleneck(stats: Results, cpus: int) -> str:
    if stats["server_cpu_pct"] >= SATURATED_PCT:
        return "server CPU: the service process is saturated"
    if stats["client_cpu_pct"] >= SATURATED_PCT:
        return "load generator CPU"
    if stats["machine_busy_pct"] + stats["machine_steal_pct"] >= 90.0:
        steal = stats["machine_steal_pct"]
        return f"machine CPU: all {cpus} cores busy or taken by the hypervisor (steal {steal:.0f}%)"
    return "none of the CPUs: latency x in-flight bound (add concurrency)"


def _each_server_pct(stats: Results) -> list[float]:
    """CPU of each server process, % of one core."""
    return [100.0 * ratio(cpu, stats["seconds"]) for cpu in stats["server_cpu_s_per_process"]]


def _pair_bound(two: Results, cpus: int) -> str:
    """What bounded a 2-process run; the machine first, since on a small one the cores run out before
    either server does."""
    machine = _machine_pct(two)
    if machine >= MACHINE_SATURATED_PCT:
        return (
            f"machine saturated: {machine:.0f}% of {cpus} cores (steal {two['machine_steal_pct']:.0f}%); "
            "the 2-process figure is bounded by the cores, not by the servers"
        )
    if two["client_cpu_pct"] >= SATURATED_PCT:
        return (
            f"load generator saturated ({two['client_cpu_pct']:.0f}% of a core): the 2-process figure is "
            "bounded by the load, not by the servers"
        )
    if min(_each_server_pct(two)) >= SATURATED_PCT:
        return "both server processes saturated: the servers are the bound"
    return f"nothing saturated (machine {machine:.0f}%): latency x in-flight bound (add concurrency)"


def _us_per_beat(stats: Results, pct_key: str) -> float:
    """CPU microseconds per beat from a CPU share (% of one core) and the beat rate."""
    rate = stats["beats_per_s"]
    return 1e4 * stats[pct_key] / rate if rate else 0.0


def limits(results: Results) -> Results:
    """Measured figures that say what caps beat throughput, and the sentences that read them."""
    unary, stream, listing = results["unary"], results["stream"], results["list"]
    echo, beat, store = unary["echo"], unary["heartbeat"], unary["store_only"]
    cpus = int(results["topology"]["cpus"] or 1)
    beat_us = beat["server_cpu_s_per_1k"] * 1000.0
    echo_us = echo["server_cpu_s_per_1k"] * 1000.0
    store_us = store["client_cpu_s_per_1k"] * 1000.0
    redis_cpu_us = _us_per_beat(beat, "redis_cpu_pct")
    figures: Results = {
        "bottleneck_unary": _bottleneck(beat, cpus),
        "bottleneck_stream": _bottleneck(stream, cpus),
        "server_cpu_us_per_beat_unary": beat_us,
        "server_cpu_us_per_beat_stream": stream["server_cpu_s_per_1k"] * 1000.0,
        "echo_server_cpu_us_per_call": echo_us,
        "store_cpu_us_per_beat": store_us,
        "rest_of_service_us_per_beat": beat_us - echo_us - store_us,
        "beats_per_s_per_server_core": 1e6 / beat_us if beat_us else 0.0,
        "server_cores_for_target": TARGET_BEATS_PER_S * beat_us / 1e6,
        "redis_script_us_loaded": beat["redis_usec_per_call"],
        "redis_script_us_uncontended": listing["register_redis_us_per_call"],
        "redis_cpu_us_per_beat": redis_cpu_us,
        "redis_ceiling_beats_per_s": 1e6 / redis_cpu_us if redis_cpu_us else 0.0,
        "echo_ceiling_calls_per_s": echo["beats_per_s"],
        "sizing": _sizing(results),
    }
    figures["findings"] = _findings(figures, results, cpus)
    return figures


def _sizing(results: Results) -> Results:
    """Workers one server process takes at the SDK's beat interval, below its measured ceiling by the
    paced run's fraction (the load the paced run measured latency at)."""
    headroom = results["plan"]["paced_fraction"]
    per_process = {
        "unary": results["unary"]["heartbeat"]["beats_per_s"],
        "stream": results["stream"]["beats_per_s"],
    }
    return {
        "beat_interval_s": BEAT_INTERVAL_S,
        "headroom": headroom,
        **{f"workers_per_process_{k}": rate * headroom * BEAT_INTERVAL_S for k, rate in per_process.items()},
    }


def _sizing_finding(sizing: Results, paced: Results) -> str:
    return (
        f"Sizing: at a {sizing['beat_interval_s']:g} s beat interval and {sizing['headroom']:.0%} of the "
        f"measured ceiling (the paced run's load: p99 {paced['p99_ms']:.1f} ms), one server process takes "
        f"about {sizing['workers_per_process_unary']:,.0f} workers beating unary and "
        f"{sizing['workers_per_process_stream']:,.0f} on BeatStream (the SDK's way)."
    )


def _findings(f: Results, results: Results, cpus: int) -> list[str]:
    return [
        *_beat_findings(f, results["unary"], cpus),
        _sizing_finding(f["sizing"], results["unary"]["paced"]),
        _redis_finding(f, results["unary"]["heartbeat"], cpus),
        _stream_finding(f, results["stream"]),
        *_list_findings(results["list"], results["topology"]),
        *_machine_notes(results),
    ]


def _beat_findings(f: Results, unary: Results, cpus: int) -> list[str]:
    echo, beat = unary["echo"], unary["heartbeat"]
    lines = [
        f"Beat (unary) tops out at {beat['beats_per_s']:,.0f} beats/s, limited by {f['bottleneck_unary']} "
        f"(server {beat['server_cpu_pct']:.0f}% of one core, load generator {beat['client_cpu_pct']:.0f}%, "
        f"Redis {beat['redis_cpu_pct']:.0f}%, machine {beat['machine_busy_pct']:.0f}% of {cpus} cores).",
        f"Server CPU per beat: {f['server_cpu_us_per_beat_unary']:.0f} us unary, "
        f"{f['server_cpu_us_per_beat_stream']:.0f} us streamed; one server core ingests about "
        f"{f['beats_per_s_per_server_core']:,.0f} unary beats/s, so {TARGET_BEATS_PER_S:,} beats/s needs "
        f"about {f['server_cores_for_target']:.1f} cores of server processes (replicas behind a balancer).",
        f"Where the {f['server_cpu_us_per_beat_unary']:.0f} us go: gRPC-Python itself "
        f"{f['echo_server_cpu_us_per_call']:.0f} us (echo server, same load), the store layer "
        f"{f['store_cpu_us_per_beat']:.0f} us (Registry.beat called directly: redis-py round trip, "
        f"fingerprint, serialization), the rest {f['rest_of_service_us_per_beat']:.0f} us (interceptor and "
        "auth, validation, request parsing, response building).",
        f"gRPC-Python ceiling: the echo server peaks at {echo['beats_per_s']:,.0f} calls/s on this machine "
        f"(echo server {echo['server_cpu_pct']:.0f}% of a core, load generator "
        f"{echo['client_cpu_pct']:.0f}%, machine {echo['machine_busy_pct']:.0f}%): HeartbeatService reaches "
        f"{unary['ratio']['throughput']:.2f}x of it.",
    ]
    if echo["server_cpu_pct"] < SATURATED_PCT:
        lines.append(
            "The echo ceiling is set by the machine, not by the echo server (it was not saturated): read "
            "the gRPC floor as CPU per call rather than calls/s."
        )
    return lines


def _redis_finding(f: Results, beat: Results, cpus: int) -> str:
    return (
        f"Redis: the Beat script takes {f['redis_script_us_uncontended']:.1f} us per call during "
        f"registration (one beat per call) and {f['redis_script_us_loaded']:.1f} us under the beat load "
        f"(sharing {cpus} cores; a call there carries the beats that arrived together); "
        f"Redis spends {f['redis_cpu_us_per_beat']:.0f} us of CPU per beat including I/O, a ceiling of "
        f"~{f['redis_ceiling_beats_per_s']:,.0f} beats/s for one Redis on this machine "
        f"({beat['redis_cpu_pct']:.0f}% busy at the measured rate)."
    )


def _stream_finding(f: Results, stream: Results) -> str:
    return (
        f"BeatStream: {stream['beats_per_s']:,.0f} beats/s, limited by {f['bottleneck_stream']} "
        f"(server {stream['server_cpu_pct']:.0f}% of one core, load generator "
        f"{stream['client_cpu_pct']:.0f}%); {stream['server_rss_per_1k_streams_mb']:.1f} MB of server RSS "
        "per 1,000 open streams."
    )


def _list_findings(listing: Results, topology: Results) -> list[str]:
    lines = []
    for key, case in listing["cases"].items():
        if not key.startswith("page_"):
            continue
        lines.append(
            f"ListWorkers {_case_label(key)}: p99 {case['p99_ms']:.1f} ms; the server spends "
            f"{case['server_cpu_ms_per_call']:.2f} ms of CPU per call ({case['server_cpu_pct']:.0f}% busy at "
            f"{case['calls_per_s']:,.0f} calls/s) and Redis {case['redis_us_per_call']:.0f} us in the LIST "
            "script."
        )
    if topology["redis_parser"] != "hiredis":
        lines.append(
            "redis-py parses every Redis reply in pure Python here (hiredis is not installed); a LIST reply "
            "carries 6 values per worker, so the first page's cost grows with the page size."
        )
    return lines


def _machine_notes(results: Results) -> list[str]:
    steal = results["unary"]["heartbeat"]["machine_steal_pct"]
    if steal < 2.0:
        return []
    return [
        f"The hypervisor took {steal:.0f}% of the CPUs during the Beat run: figures are noisier than usual."
    ]


# --- table -------------------------------------------------------------------------------------------


LABEL = 32


def _load_header() -> str:
    return (
        f"  {'':<{LABEL}}{'beats/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
        f"{'srv CPU':>8}{'srv s/1k':>9}{'load CPU':>9}{'load s/1k':>10}{'Redis CPU':>10}{'Redis us':>9}"
        f"{'machine':>8}{'steal':>6}"
    )


def _load_row(label: str, s: Results) -> str:
    redis_us = f"{s['redis_usec_per_call']:.1f}" if s["redis_evalsha_calls"] else "-"
    redis_cpu = f"{s['redis_cpu_pct']:.0f}%" if s["redis_evalsha_calls"] else "-"
    return (
        f"  {label:<{LABEL}}{s['beats_per_s']:>8,.0f}{s['p50_ms']:>8.2f}{s['p99_ms']:>8.2f}"
        f"{s['errors'] + s['dropped']:>7}{s['server_cpu_pct']:>7.0f}%{s['server_cpu_s_per_1k']:>9.3f}"
        f"{s['client_cpu_pct']:>8.0f}%{s['client_cpu_s_per_1k']:>10.3f}{redis_cpu:>10}{redis_us:>9}"
        f"{s['machine_busy_pct']:>7.0f}%{s['machine_steal_pct']:>5.0f}%"
    )


def _header(r: Results) -> list[str]:
    t, p = r["topology"], r["plan"]
    return [
        f"Worker Monitor - HeartbeatService benchmark ({r['mode']}, {r['elapsed_s']:.0f} s)",
        f"Topology: {t['cpus']} CPUs | server: 1 process (pid {t['server_pid']}; a second for "
        "the replicas phase), one asyncio loop each | "
        f"load: {p['clients']} generator process(es) {t['client_pids']} | echo server: its own process | "
        f"Redis {t['redis_version']} ({t['redis']}), prefix {t['prefix']}, "
        f"redis-py parser: {t['redis_parser']} | Python {t['python']}",
        f"Fleet: {p['workers']:,} workers, 1-2 queues, 3 labels, 2 custom gauges, BeatRequest "
        f"{t['beat_request_bytes']} bytes; {p['warmup_s']:g} s warm-up, {p['duration_s']:g} s measured per "
        "load.",
        "Columns: CPU as % of one core (machine: % of all cores); s/1k = CPU seconds per 1,000 beats of the "
        "server processes (srv, summed) or of the load generators (load); Redis us = EVALSHA us per call "
        "(INFO commandstats; beats arriving together share a call).",
    ]


def _unary_section(r: Results) -> list[str]:
    u, p = r["unary"], r["plan"]
    q = u["ratio"]
    return [
        "",
        f"Unary Beat: closed loop, {p['concurrency']} calls in flight over {p['channels']} channel(s) per "
        "generator",
        _load_header(),
        _load_row("echo (bare grpc.aio, no Redis)", u["echo"]),
        _load_row("HeartbeatService.Beat", u["heartbeat"]),
        f"  {'ratio heartbeat / echo':<{LABEL}}{q['throughput']:>7.2f}x{q['p50']:>7.2f}x{q['p99']:>7.2f}x"
        f"{'':>15}{q['server_cpu_per_call']:>8.2f}x",
        _load_row("Registry.beat alone, no gRPC *", u["store_only"]),
        _load_row(f"Beat paced at {u['paced']['offered_per_s']:,}/s", u["paced"]),
        "  * the service's own Registry (service.build) called in the load process: load s/1k is the store"
        " layer's CPU per beat (redis-py, fingerprint, serialization).",
    ]


def _pair_cpu(stats: Results) -> str:
    return " + ".join(f"{pct:.0f}%" for pct in _each_server_pct(stats))


def _replicas_section(r: Results) -> list[str]:
    rep_, p = r["replicas"], r["plan"]
    echo, beat, per_cpu = rep_["echo"], rep_["heartbeat"], rep_["beats_per_server_cpu_s"]
    eff, proj = rep_["efficiency"], rep_["projection_cpu_bound"]
    cpus = int(r["topology"]["cpus"] or 1)
    return [
        "",
        f"Replicas: the same closed-loop load ({p['concurrency']} in flight over {p['channels']} channel(s) "
        "per generator) against 1 server process, then spread over 2 (each channel round-robins over "
        "both, as the suite addresses replicas); the heartbeat processes share Redis and the prefix",
        _load_header(),
        _load_row("echo, 1 proc", echo["one"]),
        _load_row("echo, 2 procs", echo["two"]),
        _load_row("HeartbeatService.Beat, 1 proc", beat["one"]),
        _load_row("HeartbeatService.Beat, 2 procs", beat["two"]),
        f"  2 processes / 1: echo {rep_['scaling']['echo']:.2f}x, HeartbeatService "
        f"{rep_['scaling']['heartbeat']:.2f}x the beats/s (target >= {TARGET_REPLICA_SCALING}x); server "
        f"CPU of each of the 2: echo {_pair_cpu(echo['two'])}, HeartbeatService {_pair_cpu(beat['two'])}",
        "  per-process efficiency, HeartbeatService / echo beats per server CPU-second: "
        f"1 process {eff['one']:.2f} ({per_cpu['heartbeat']['one']:,.0f} / {per_cpu['echo']['one']:,.0f}), "
        f"2 processes {eff['two']:.2f} ({per_cpu['heartbeat']['two']:,.0f} / {per_cpu['echo']['two']:,.0f})",
        f"  echo, 2 processes: {_pair_bound(echo['two'], cpus)}",
        f"  HeartbeatService, 2 processes: {_pair_bound(beat['two'], cpus)}",
        "  projection (CPU-bound arithmetic, not a measurement): with a core for each process and the load "
        f"elsewhere, 2 HeartbeatService processes at {per_cpu['heartbeat']['two']:,.0f} beats per server "
        f"CPU-second would take {proj['two_processes_beats_per_s']:,.0f} beats/s, "
        f"{proj['scaling']:.2f}x one process at a full core ({proj['one_process_beats_per_s']:,.0f})",
    ]


def _stream_section(r: Results) -> list[str]:
    s, p = r["stream"], r["plan"]
    return [
        "",
        f"BeatStream: {s['streams_open']:,} open streams over {p['stream_channels']} channel(s) per "
        f"generator, {p['stream_concurrency']} beats in flight (send -> response)",
        _load_header(),
        _load_row("HeartbeatService.BeatStream", s),
        f"  opened in {s['open_s']:.1f} s ({s['open_errors']} failed); server RSS "
        f"{s['server_rss_before_mb']:.0f} MB -> {s['server_rss_open_mb']:.0f} MB with streams open = "
        f"{s['server_rss_per_1k_streams_mb']:.1f} MB per 1,000 open streams",
    ]


def _list_section(r: Results) -> list[str]:
    lst = r["list"]
    lines = [
        "",
        f"ListWorkers / GetWorkerSummary with {lst['workers']:,} registered workers "
        f"(registered in {lst['register_s']:.1f} s, {lst['register_per_s']:,.0f}/s via the pipelined Beat "
        f"script; Redis {lst['register_redis_us_per_call']:.1f} us per script call, "
        f"{lst['register_redis_cpu_pct']:.0f}% busy)",
        f"  {'':<50}{'calls':>6}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'calls/s':>8}{'srv CPU':>8}"
        f"{'srv ms/call':>12}{'Redis us':>9}",
    ]
    for key, c in lst["cases"].items():
        label = "GetWorkerSummary" if key == "summary" else f"ListWorkers {_case_label(key)}"
        label += ", sequential" if c["callers"] == 1 else ""
        lines.append(
            f"  {label:<50}{c['calls']:>6}{c['p50_ms']:>8.2f}{c['p99_ms']:>8.2f}{c['max_ms']:>8.1f}"
            f"{c['calls_per_s']:>8,.0f}{c['server_cpu_pct']:>7.0f}%{c['server_cpu_ms_per_call']:>12.2f}"
            f"{c['redis_us_per_call']:>9.0f}"
        )
    lines.append("  Redis us = EVALSHA us per call of the LIST / SUMMARY script.")
    return lines


def _limits_section(r: Results) -> list[str]:
    lines = ["", "What limits throughput (measured)"]
    lines += [f"  - {line}" for line in r["limits"]["findings"]]
    lines += [f"  ! {w}" for w in r["warnings"]]
    return lines


def table(results: Results) -> str:
    """The human-readable report."""
    return "\n".join(
        _header(results)
        + _unary_section(results)
        + _replicas_section(results)
        + _stream_section(results)
        + _list_section(results)
        + text.targets_lines(results["targets"])
        + _limits_section(results)
    )
