"""The soak test's figures from its raw results (RSS samples, load results, logs), its targets and table.

RSS growth is measured from the end of the warm-up (imports done, pools and caches filled, every worker
registered) to the end of the run: a process whose memory is flat grows by a few percent at most there,
a leak grows with the minutes. The slope over the samples after the warm-up says the same per hour.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from . import text
from .figures import percentile
from .verdicts import sample_problems, target

MB = 2**20
RSS_GROWTH_MAX_PCT = 10.0
OVERVIEW_P99_MAX_MS = 100.0


def rss_stats(samples: Sequence[Sequence[float]], warmup_s: float) -> dict[str, Any]:
    """RSS at the end of the warm-up, at the end, its peak after the warm-up, growth and slope; CPU.

    `samples` are [seconds since the start, RSS bytes, CPU seconds] of one process."""
    after = [s for s in samples if s[0] >= warmup_s]
    if len(after) < 2:
        return {"samples_after_warmup": len(after)}
    first, last = after[0], after[-1]
    seconds = last[0] - first[0]
    slope = statistics.linear_regression([s[0] for s in after], [s[1] for s in after]).slope
    return {
        "samples_after_warmup": len(after),
        "warmup_mb": first[1] / MB,
        "end_mb": last[1] / MB,
        "max_mb": max(s[1] for s in after) / MB,
        "growth_pct": (last[1] - first[1]) / first[1] * 100.0,
        "slope_mb_per_h": slope * 3600 / MB,
        "cpu_pct": (last[2] - first[2]) / seconds * 100.0 if seconds > 0 else 0.0,
    }


def call_stats(calls: Sequence[Sequence[float]], since: float, failures: Mapping[str, Any]) -> dict[str, Any]:
    """Latency figures of the calls that answered after `since` (time.time()), with the run's failures."""
    latencies = [ms for at, ms in calls if at >= since]
    by_minute: dict[int, list[float]] = {}
    for at, ms in calls:
        if at >= since:
            by_minute.setdefault(int((at - since) // 60), []).append(ms)
    return {
        # A slow minute now and then (a collection, the machine's other work) against a drift upwards.
        "p99_ms_by_minute": [
            percentile(by_minute.get(m, []), 99) for m in range(max(by_minute, default=-1) + 1)
        ],
        "calls": len(latencies),
        "calls_total": len(calls),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=0.0),
        "errors": int(failures.get("errors", 0)),
        "timeouts": int(failures.get("timeouts", 0)),
        "error_sample": failures.get("error_sample", ""),
        "response_bytes": int(failures.get("response_bytes", 0)),
    }


def error_counts(results: Mapping[str, Any]) -> dict[str, int]:
    """Every kind of error of the run, by load and process."""
    beats, sse, activity = results["beats"], results["sse"], results["queue_activity"]
    warmup = beats["warmup"] or {"errors": 0, "dropped": 0}
    counts = {
        "beats_warmup": warmup["errors"] + warmup["dropped"],
        "beats": beats["errors"] + beats["dropped"],
        "sse_open": sse["open_errors"],
        "sse_ended_early": sse["ended_early"],
        "sse_no_first_event": sse["opened"] - sse["initial_events"],
        "queue_writes": activity["errors"],
    }
    for rpc, calls in results["polls"].items():
        counts[f"http_{rpc}"] = calls["errors"] + calls["timeouts"]
    for name, proc in results["processes"].items():
        counts[f"{name}_exited"] = int(proc["exit_code"] not in (None, 0))
        counts[f"{name}_log_errors"] = proc["log_levels"].get("error", 0) + proc["log_levels"].get(
            "critical", 0
        )
    return counts


def derive(results: dict[str, Any]) -> None:
    """Per-process RSS figures, errors and targets, added to `results`."""
    warmup_s = results["plan"]["warmup_minutes"] * 60
    for proc in results["processes"].values():
        proc["rss"] = rss_stats(proc["samples"], warmup_s)
    results["errors"] = error_counts(results)
    results["targets"] = _targets(results)
    results["warnings"] = _error_samples(results)
    results["notes"] = _notes(results)


def _error_samples(results: Mapping[str, Any]) -> list[str]:
    """The first error of each kind that had one, so a MISS says what went wrong."""
    found = [f"beats: {results['beats']['error_sample']}"] if results["beats"]["error_sample"] else []
    sse = results["sse"]
    found += [f"SSE: {sample}" for sample in (sse["open_error_sample"], sse["end_sample"]) if sample]
    found += [
        f"GET {rpc}: {calls['error_sample']}"
        for rpc, calls in results["polls"].items()
        if calls["error_sample"]
    ]
    if results["queue_activity"]["error_sample"]:
        found.append(f"queue writes: {results['queue_activity']['error_sample']}")
    for name, proc in results["processes"].items():
        found += [f"{name} log: {line}" for line in proc["log_errors"]]
    return found


def _notes(results: Mapping[str, Any]) -> list[str]:
    """The first warnings each process logged (not errors: a warning is the suite coping)."""
    return [
        f"{name} log: {line}" for name, proc in results["processes"].items() for line in proc["log_warnings"]
    ]


def _targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, proc in results["processes"].items():
        rss = proc["rss"]
        if "growth_pct" not in rss:
            problems = [f"{rss['samples_after_warmup']} RSS samples after the warm-up"]
            rows.append(target(f"{name} RSS", f"growth < {RSS_GROWTH_MAX_PCT:g} %", "-", False, problems))
            continue
        measured = f"{rss['warmup_mb']:.0f} -> {rss['end_mb']:.0f} MB ({rss['growth_pct']:+.1f} %)"
        met = rss["growth_pct"] < RSS_GROWTH_MAX_PCT
        problems = ["exited during the run"] if proc["exit_code"] not in (None, 0) else []
        rows.append(
            target(
                f"{name} RSS after the warm-up", f"growth < {RSS_GROWTH_MAX_PCT:g} %", measured, met, problems
            )
        )
    errors = results["errors"]
    total = sum(errors.values())
    sse = results["sse"]
    empty = {
        "beats": results["beats"]["beats"],
        "SSE events": sum(sse["events"].values()),
        **{f"{rpc} polls": calls["calls_total"] for rpc, calls in results["polls"].items()},
        "collector cycles": len(results["collector"]["cycles"]),
    }
    problems = [f"no {what}" for what, count in empty.items() if not count]
    listed = ", ".join(f"{k} {v:,}" for k, v in errors.items() if v) or "none"
    rows.append(
        target("errors", "zero, every load and process", f"{total:,} ({listed})", total == 0, problems)
    )
    overview = results["polls"]["overview"]
    problems = sample_problems(
        overview["calls"], {"errors": overview["errors"], "time-outs": overview["timeouts"]}, "overview"
    )
    measured = (
        f"p50 {overview['p50_ms']:.1f} ms, p99 {overview['p99_ms']:.1f} ms ({overview['calls']:,} calls)"
    )
    met = overview["p99_ms"] < OVERVIEW_P99_MAX_MS
    rows.append(
        target(
            "GET /api/v1/overview after the warm-up",
            f"p99 < {OVERVIEW_P99_MAX_MS:g} ms",
            measured,
            met,
            problems,
        )
    )
    return rows


def table(results: Mapping[str, Any]) -> str:
    """The printed report."""
    plan, topo = results["plan"], results["topology"]
    lines = [
        f"Worker Monitor - soak test ({results['mode']}, {plan['minutes']:g} min, "
        f"warm-up {plan['warmup_minutes']:g} min)",
        f"Topology: {topo['cpus']} CPUs | {', '.join(f'{n} pid {p}' for n, p in topo['pids'].items())}: "
        f"`workermon serve --target <name>` each | load: {len(topo['load_pids'])} generator processes "
        f"| Redis {topo['redis_version']} ({topo['redis']}) | PostgreSQL {topo['postgres_version']}, "
        f"database {topo['database']} | Python {topo['python']}",
        f"Load: {plan['workers']:,} workers beating every {plan['beat_interval_s']:g} s "
        f"({plan['workers'] / plan['beat_interval_s']:,.0f} beats/s, open loop); {plan['queues']} queues, "
        f"{plan['jobs_per_queue_per_s']:g} job/s each added and finished; {plan['sse']} SSE clients on "
        f"/api/v1/stream; {plan['pollers']} pollers, each GET /api/v1/overview then /api/v1/queues every "
        f"{plan['poll_interval_s']:g} s; RSS sampled every {plan['sample_s']:g} s.",
        "",
        "Memory (RSS) and CPU after the warm-up, per process",
        f"  {'process':<10} {'warm-up MB':>10} {'end MB':>8} {'max MB':>8} {'growth':>8} {'MB/hour':>8} "
        f"{'CPU':>6} {'samples':>8} {'errors':>7} {'warnings':>9}",
    ]
    for name, proc in results["processes"].items():
        rss, levels = proc["rss"], proc["log_levels"]
        errs = levels.get("error", 0) + levels.get("critical", 0)
        if "growth_pct" in rss:
            lines.append(
                f"  {name:<10} {rss['warmup_mb']:>10.1f} {rss['end_mb']:>8.1f} {rss['max_mb']:>8.1f} "
                f"{rss['growth_pct']:>+7.1f}% {rss['slope_mb_per_h']:>+8.1f} {rss['cpu_pct']:>5.1f}% "
                f"{len(proc['samples']):>8} {errs:>7} {levels.get('warning', 0):>9}"
            )
        else:
            lines.append(f"  {name:<10} {'too few samples after the warm-up':>44}")
    lines += _load_lines(results)
    lines += text.targets_lines(results["targets"])
    lines += text.findings_lines("Notes", results)
    return "\n".join(lines)


def _load_lines(results: Mapping[str, Any]) -> list[str]:
    beats, sse, activity, collector = (
        results["beats"],
        results["sse"],
        results["queue_activity"],
        results["collector"],
    )
    lines = ["", "Load (beats: after the warm-up, and in it; the rest: over the whole run)"]
    for label, phase in (("beats", beats), ("  in warm-up", beats["warmup"])):
        if phase is not None:
            lines.append(
                f"  {label:<14} {phase['beats']:,} answered ({phase['beats_per_s']:,.0f}/s), "
                f"p50 {phase['p50_ms']:.1f} ms, p99 {phase['p99_ms']:.1f} ms, max {phase['max_ms']:,.0f} ms; "
                f"{phase['errors']:,} errors, {phase['dropped']:,} dropped"
            )
    lines += [
        f"  SSE            {sse['opened']}/{sse['clients']} opened, {sse['ended_early']} ended early; events "
        + ", ".join(f"{k} {v:,}" for k, v in sse["events"].items())
        + f"; {sse['pings']:,} keep-alives",
        "                 fewest per client: "
        + ", ".join(f"{k} {v:,}" for k, v in sse["events_min"].items()),
        f"  queues         {activity['added']:,} jobs added, {activity['completed']:,} completed, "
        f"{activity['failed']:,} failed in {activity['ticks']:,} ticks; {activity['errors']} write errors",
    ]
    cycles = collector["cycles"]
    if cycles:
        ms = [float(c["ms"] or 0.0) for c in cycles]
        lines.append(
            f"  collector      {len(cycles)} cycles, p50 {percentile(ms, 50):.0f} ms, max {max(ms):.0f} ms; "
            f"{sum(int(c['errors'] or 0) for c in cycles)} queue errors"
        )
    else:
        lines.append("  collector      no cycle logged")
    lines += [
        "",
        "HTTP pollers after the warm-up",
        f"  {'route':<22} {'calls':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'err/to':>7} {'bytes':>8}",
    ]
    for rpc, calls in results["polls"].items():
        lines.append(
            f"  GET /api/v1/{rpc:<10} {calls['calls']:>8,} {calls['p50_ms']:>8.2f} {calls['p99_ms']:>8.2f} "
            f"{calls['max_ms']:>8.1f} {calls['errors']:>3}/{calls['timeouts']:<3} "
            f"{calls['response_bytes']:>8,}"
        )
    for rpc, calls in results["polls"].items():
        minutes = calls.get("p99_ms_by_minute", [])
        if len(minutes) > 1:
            lines.append(f"  GET /api/v1/{rpc} p99 ms by minute: " + " ".join(f"{ms:.0f}" for ms in minutes))
    return lines
