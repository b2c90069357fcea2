"""The collector benchmark's printed table, targets beside the figures, findings, and the JSON file."""

from __future__ import annotations

from typing import Any

from . import text, verdicts
from .collector_timing import PHASES, READS, ratio
from .record import Ratio, ratio_entry

TARGET_CYCLE_MS = 1000.0
TARGET_COUNTS_RATIO = 3.0
TARGET_QUERY_P99_MS = 30.0
TARGET_TREND_P99_MS = 50.0

Results = dict[str, Any]

PHASE_LABELS = {
    "follow": "follow events",
    "reads": "reads",
    "rows": "build rows",
    "write": "write rows",
    "other": "other",
}
READ_LABELS = {"states": "queue states", "counters": "minute counters", "durations": "finished jobs"}
# Table columns: the additive phases with the reads' own spans (marked *) after "reads".
COLUMNS = (
    ("follow", "follow"),
    ("reads", "reads"),
    ("states", "states*"),
    ("counters", "counts*"),
    ("durations", "finished*"),
    ("rows", "rows"),
    ("write", "write"),
    ("other", "other"),
)


def derive(results: Results) -> None:
    """Ratios, targets and findings, from the measured figures (in place)."""
    naive, alone = results["naive"], results["phases_alone"]
    naive_ms = 1000.0 * naive["seconds"]
    naive["over_cycle"] = {kind: ratio(naive_ms, c["median_ms"]) for kind, c in results["cycle"].items()}
    naive["over_states"] = ratio(naive_ms, alone["states_ms"])
    naive["over_raw_counts"] = ratio(naive_ms, alone["raw_counts_ms"])
    results["targets"] = targets(results)
    results["ratios"] = check_ratios(results)
    results["findings"] = findings(results)


def check_ratios(results: Results) -> dict[str, Ratio]:
    """The ratios `bench.check` compares with the baselines, each with the direction that is better.

    The naive loop over the raw pipeline is left out: neither side is code of ours."""
    naive, alone = results["naive"], results["phases_alone"]
    reps = verdicts.sample_problems(alone["reps"], {})
    rows = {
        f"naive_over_cycle.{kind}": ratio_entry(times, "higher", _cycle_problems(results["cycle"][kind]))
        for kind, times in naive["over_cycle"].items()
    }
    rows["naive_over_counts_phase"] = ratio_entry(naive["over_states"], "higher", reps)
    rows["counts_phase_over_raw_pipeline"] = ratio_entry(alone["states_over_raw"], "lower", reps)
    return rows


def _cycle_problems(cycle: Results) -> list[str]:
    """Measured cycles that failed queues, failed the database or left rows unwritten cannot count."""
    runs = cycle["runs"]
    failures = {
        "queue errors": sum(r["queue_errors"] for r in runs),
        "database errors": sum(bool(r["database_error"]) for r in runs),
        "rows not written": sum(max(0, cycle["queues"] - r["rows_written"]) for r in runs),
    }
    return verdicts.sample_problems(len(runs), failures)


def _cycle_target(cycle: Results, queues: int) -> Results:
    return verdicts.target(
        f"one collection cycle over {queues:,} queues ({cycle['label']})",
        f"<= {TARGET_CYCLE_MS / 1000:g} s",
        f"median {cycle['median_ms']:,.0f} ms, min {cycle['min_ms']:,.0f} ms "
        f"over {len(cycle['runs'])} cycles",
        cycle["median_ms"] <= TARGET_CYCLE_MS,
        _cycle_problems(cycle),
    )


def _counts_target(alone: Results) -> Results:
    return verdicts.target(
        "counts phase (backend.states) against one raw pipeline of the count commands",
        f"within {TARGET_COUNTS_RATIO:g}x",
        f"{alone['states_ms']:.1f} ms vs {alone['raw_counts_ms']:.1f} ms = {alone['states_over_raw']:.2f}x",
        alone["states_over_raw"] <= TARGET_COUNTS_RATIO,
        verdicts.sample_problems(alone["reps"], {}),
    )


QUERY_LABELS = {"store": "SnapshotStore.query", "grpc": "QuerySnapshots over gRPC"}


def _query_target(label: str, what: str, queues: int, stats: Results, limit_ms: float) -> Results:
    return verdicts.target(
        f"{label}, {what}, {queues} queues of history (PostgreSQL)",
        f"p99 < {limit_ms:g} ms",
        f"p50 {stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms",
        stats["p99_ms"] < limit_ms,
        verdicts.case_problems(stats),
    )


def _trend_range(trend: Results) -> str:
    return f"{trend['days']} d at 1-hour steps from rollups"


def targets(results: Results) -> list[dict[str, Any]]:
    """The targets beside the measured figures (informational)."""
    queues = results["plan"]["queues"]
    out = [_cycle_target(cycle, queues) for cycle in results["cycle"].values()]
    out.append(_counts_target(results["phases_alone"]))
    query = results["query"]
    if not query["skipped"]:
        queues = query["queues"]
        for key, label in QUERY_LABELS.items():
            day = "24 h at 1-minute steps"
            out.append(_query_target(label, day, queues, query[key], TARGET_QUERY_P99_MS))
        for trend in query["trends"].values():
            for key, label in QUERY_LABELS.items():
                out.append(_query_target(label, _trend_range(trend), queues, trend[key], TARGET_TREND_P99_MS))
    return out


def findings(results: Results) -> list[str]:
    """Where the cycle's time goes, in sentences built from this run's figures."""
    out = []
    alone, naive = results["phases_alone"], results["naive"]
    for cycle in results["cycle"].values():
        phases, reads = cycle["phases_median_ms"], cycle["reads_median_ms"]
        total = cycle["median_ms"]
        parts = " + ".join(f"{PHASE_LABELS[p]} {phases[p]:,.0f}" for p in PHASES)
        inside = ", ".join(
            f"{READ_LABELS[p]} {ms:,.0f} ms" for ms, p in sorted(((reads[p], p) for p in READS), reverse=True)
        )
        out.append(
            f"{cycle['label']}: median cycle {total:,.0f} ms = {parts} ms; the reads, run together, span "
            f"{phases['reads']:,.0f} ms ({100 * ratio(phases['reads'], total):.0f}%): {inside}."
        )
        cpu = cycle["process_cpu_median_ms"]
        out.append(
            f"{cycle['label']}: the benchmark process used {cpu:,.0f} ms of CPU during the median "
            f"cycle ({100 * ratio(cpu, total):.0f}% of its wall time), Redis "
            f"{cycle['redis_cpu_median_ms']:,.0f} ms: the cycle is bound by "
            f"{'Python CPU in the collector process' if cpu > 0.7 * total else 'waiting'}"
            f"{', so overlapping the reads saves little' if cpu > 0.7 * total else ''}; "
            f"{cycle['gc_full_collections']} full garbage collections over {len(cycle['runs'])} cycles "
            f"({cycle['gc_full_ms']:,.0f} ms in all)."
        )
    out.append(
        f"Counts: backend.states takes {alone['states_ms']:.1f} ms against "
        f"{alone['raw_counts_ms']:.1f} ms for the seven count commands alone "
        f"({alone['states_over_raw']:.2f}x): it also reads the meta hash, the legacy paused list and each "
        "queue's next-in-line job ids, then their timestamps in a second round trip."
    )
    out.append(
        f"Finished jobs alone (finished_between_many): {alone['durations_ms']:.0f} ms for "
        f"{results['plan']['queues']:,} queues ({alone['finished_jobs']:,} jobs read, one HMGET each); "
        f"following the streams with nothing new costs {alone['follow_idle_ms']:.0f} ms, the minute "
        f"counters {alone['counters_ms']:.0f} ms."
    )
    writes = ", ".join(f"{_db_label(results, kind)} {ms:.0f} ms" for kind, ms in alone["write_ms"].items())
    out.append(f"store.write of {results['plan']['queues']:,} rows alone: {writes}.")
    over = ", ".join(
        f"{ratio_:.1f}x the {_db_label(results, k)} cycle" for k, ratio_ in naive["over_cycle"].items()
    )
    out.append(
        "The first plan's loop (a new bullmq.Queue and getJobCounts per queue) takes "
        f"{naive['seconds']:.2f} s for counts alone: {over}, {naive['over_states']:.0f}x the counts phase."
    )
    query = results["query"]
    if not query["skipped"]:
        cases = [("24 h", query)] + [(f"{t['days']} d", t) for t in query["trends"].values()]
        for span, case in cases:
            for key, label in QUERY_LABELS.items():
                q = case[key]
                out.append(
                    f"{label}, {span}: p50 {q['p50_ms']:.1f} ms, p99 {q['p99_ms']:.1f} ms; "
                    f"{q['gc_full_collections']} full garbage collections during its {q['calls']} calls "
                    f"took {q['gc_full_ms']:,.0f} ms."
                )
    return out


def _db_label(results: Results, kind: str) -> str:
    return str(results["cycle"][kind]["label"]) if kind in results["cycle"] else kind


# --- the table ---------------------------------------------------------------------------------------


def _header(r: Results) -> list[str]:
    t, p, pop = r["topology"], r["plan"], r["populate"]
    dbs = " | ".join(f"{d['label']} {d['version']} ({d['url']})" for d in t["databases"])
    added = pop["added"]
    processed = pop["processed"]
    keys = f"{pop['redis_keys']:,} keys, " if pop["redis_keys"] is not None else ""
    return [
        f"Worker Monitor - collector benchmark ({r['mode']}, {r['elapsed_s']:.0f} s)",
        f"Topology: {t['cpus']} CPUs | Redis {t['redis_version']} ({t['redis']}), redis-py parser: "
        f"{t['redis_parser']} | {dbs} | Python {t['python']}",
        f"Workload: {p['queues']:,} queues x {p['jobs_per_queue']:,} jobs added with bullmq "
        f"Queue.addBulk (prefix {t['bull_prefix']}): {added.get('waiting', 0):,} waiting, "
        f"{added.get('delayed', 0):,} delayed, {added.get('prioritized', 0):,} prioritized; "
        f"{pop['busy_queues']} busy queues ran {p['processed_per_busy']} jobs each through bullmq workers "
        f"({processed.get('completed', 0):,} completed, {processed.get('failed', 0):,} failed, "
        f"{processed.get('retried', 0):,} retried).",
        f"Populated in {pop['seconds']:.1f} s (adds {pop['add_s']:.1f} s = {pop['add_jobs_per_s']:,.0f} "
        f"jobs/s in {pop['processes']} processes, workers {pop['process_s']:.1f} s; not a target); Redis "
        f"now holds {keys}{pop['redis_used_memory_mb']:,.0f} MB. The collector's follower caught up on "
        f"{pop['catch_up_events']:,} events in {1000 * pop['catch_up_s']:.0f} ms.",
    ]


LABEL = 22


def _cycle_header() -> str:
    cols = "".join(f"{title:>10}" for _, title in COLUMNS)
    return (
        f"  {'':<{LABEL}}{'wall ms':>9}{cols}{'events':>8}{'jobs':>7}{'written':>8}{'CPU ms':>8}"
        f"{'Redis ms':>9}{'GC ms':>7}{'machine':>8}"
    )


def _columns(phases: Results, reads: Results) -> str:
    return "".join(f"{(reads[key] if key in READS else phases[key]):>10.1f}" for key, _ in COLUMNS)


def _cycle_row(label: str, run: Results) -> str:
    return (
        f"  {label:<{LABEL}}{run['wall_ms']:>9.1f}{_columns(run['phases_ms'], run['reads_ms'])}"
        f"{run['events']:>8,}{run['finished_jobs']:>7,}{run['rows_written']:>8,}"
        f"{run['process_cpu_ms']:>8.0f}{run['redis_cpu_ms']:>9.0f}{run['gc_ms']:>7.0f}"
        f"{run['machine_busy_pct']:>7.0f}%"
    )


def _cycle_section(r: Results) -> list[str]:
    pop = r["populate"]
    p = r["plan"]
    minute_state = (
        "complete before the first cycle (as in production)"
        if p["complete_minute"]
        else "possibly still in progress (quick mode does not wait)"
    )
    lines = [
        "",
        f"Collection cycle (Collector.collect) over {p['queues']:,} queues, each collecting minute "
        f"{pop['minute'][11:16]} UTC: the minute the workers finished most jobs in "
        f"({pop['finished_in_minute']:,}), {minute_state}. Before each cycle the {pop['busy_queues']} busy "
        f"queues' workers finish {p['burst_per_busy']} jobs each (fresh events to follow) and the rows "
        "of that minute are deleted (not timed), so every cycle inserts every row.",
        "Phase columns in ms, timed on the cycle itself (wrapped backend, follower and store): follow + "
        "reads + rows + write + other = wall; the reads (states*, counts*, finished*) run concurrently, "
        "each column its own span. events = stream entries applied, jobs = finished jobs read, CPU ms = "
        "this process, Redis ms = Redis CPU, GC ms = Python garbage collection, machine = all cores busy "
        "(anyone).",
        _cycle_header(),
    ]
    for cycle in r["cycle"].values():
        lines.append(_cycle_row(f"{cycle['label']} first (cold)", cycle["first"]))
        for i, run in enumerate(cycle["runs"], start=1):
            lines.append(_cycle_row(f"{cycle['label']} cycle {i}", run))
        phases = _columns(cycle["phases_median_ms"], cycle["reads_median_ms"])
        lines.append(
            f"  {cycle['label'] + ' median':<{LABEL}}{cycle['median_ms']:>9.1f}{phases}"
            f"   (min {cycle['min_ms']:,.1f} ms, max {cycle['max_ms']:,.1f} ms)"
        )
    return lines


def _alone_section(r: Results) -> list[str]:
    a, p = r["phases_alone"], r["plan"]
    n = f"{p['queues']:,}"
    rows = [
        (f"backend.states, {n} queues (the counts phase)", a["states_ms"], ""),
        (
            f"raw pipeline, 7 count commands x {n} queues",
            a["raw_counts_ms"],
            f"states / raw = {a['states_over_raw']:.2f}x",
        ),
        ("follower.follow_many, nothing new", a["follow_idle_ms"], ""),
        ("follower.minutes (minute counters)", a["counters_ms"], ""),
        (f"finished_between_many, {n} queues", a["durations_ms"], f"{a['finished_jobs']:,} jobs read"),
    ]
    rows += [(f"store.write, {n} rows, {_db_label(r, kind)}", ms, "") for kind, ms in a["write_ms"].items()]
    lines = ["", f"Each phase alone, same data (median of {a['reps']})"]
    lines += [f"  {label:<52}{ms:>9.1f} ms   {note}".rstrip() for label, ms, note in rows]
    return lines


def _naive_section(r: Results) -> list[str]:
    n = r["naive"]
    over = ", ".join(f"{v:.1f}x the {_db_label(r, k)} cycle" for k, v in n["over_cycle"].items())
    return [
        "",
        "Baseline of the first plan: for each queue, one after another, a new bullmq.Queue, "
        "getJobCounts, close",
        f"  {n['queues']:,} queues in {1000 * n['seconds']:,.0f} ms ({n['per_queue_ms']:.2f} ms per "
        f"queue), counts only: {over}; {n['over_states']:.0f}x the counts phase; "
        f"{n['over_raw_counts']:.0f}x the raw pipeline",
    ]


def _query_section(r: Results) -> list[str]:
    q = r["query"]
    if q["skipped"]:
        return ["", f"QuerySnapshots: skipped ({q['note']})"]
    rolled = q["rollups"]
    lines = [
        "",
        f"QuerySnapshots: random queues of {q['queues']} with history in PostgreSQL: {q['rows']:,} minute "
        f"rows written with SnapshotStore.write in {q['insert_s']:.1f} s ({q['insert_rows_per_s']:,.0f} "
        f"rows/s), {rolled['rolled']:,} hourly rollups of them by SnapshotStore.rollup in "
        f"{rolled['rollup_s']:.1f} s, repeated back to {rolled['days']} days ({rolled['copied']:,} more "
        f"rows in {rolled['copy_s']:.1f} s); then "
        "VACUUM ANALYZE, CHECKPOINT",
        f"  {'':<62}{'calls':>6}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'calls/s':>9}{'machine':>8}"
        f"{'bytes':>9}",
    ]
    cases = [(f"24 h, 1-minute step ({q['minutes']:,} points)", q)]
    cases += [(f"{t['days']} d, 1-hour step ({t['points']:,} points)", t) for t in q["trends"].values()]
    for span, case in cases:
        for key, label in (("store", "SnapshotStore.query"), ("grpc", "QuerySnapshots (gRPC) *")):
            s = case[key]
            size = f"{s['response_bytes']:>9,}" if "response_bytes" in s else ""
            lines.append(
                f"  {span + ', ' + label:<62}{s['calls']:>6}{s['p50_ms']:>8.2f}{s['p99_ms']:>8.2f}"
                f"{s['max_ms']:>8.2f}{s['calls_per_s']:>9.0f}{s['machine_busy_pct']:>7.0f}%{size}"
            )
    lines.append(
        "  * server and client in this process, one call at a time, bytes = response size; the 7 d and "
        "30 d calls give no step, as GetQueueTrend does (the server picks 1 hour)."
    )
    return lines


def table(results: Results) -> str:
    """The human-readable report."""
    return "\n".join(
        _header(results)
        + _cycle_section(results)
        + _alone_section(results)
        + _naive_section(results)
        + _query_section(results)
        + text.targets_lines(results["targets"])
        + text.findings_lines("Where the cycle time goes (measured)", results)
    )
