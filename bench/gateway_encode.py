"""How long the gateway takes to turn a page of 100 jobs into its JSON body, beside json_format.

The pages are real ListJobs replies of the run's workload, each from another queue (distinct bytes, so
no cache can answer), taken as the gateway gets them: serialized bytes. Both sides parse those bytes,
build the proto3 JSON document and write it with the gateway's own `json_cache.encode`; they differ only
in the document builder: `transcode.to_json` (the gateway's per-type encoders) against
`fast_json.reference_json` (`json_format.MessageToDict`, then every repeated and map field present: what
the gateway promises, and what tests/gateway/test_fast_json.py holds the fast path to). Samples
alternate between the two, page by page, so both see the same machine; each side's bodies are compared,
and a page whose JSON differs is an error.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from workermon_gateway import transcode
from workermon_gateway.fast_json import reference_json
from workermon_gateway.json_cache import encode

from .figures import percentile

PAGE_SIZE = 100
WARMUP = 50


def fetch_pages(target: str, token: str, queues: Sequence[str], size: int = PAGE_SIZE) -> list[bytes]:
    """One first page of `size` jobs (every state) per queue, as the serialized replies the gateway gets."""
    pages = []
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.MonitorServiceStub(channel)
        for queue in queues:
            reply = stub.ListJobs(
                pb.ListJobsRequest(queue=queue, page_size=size),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=30,
            )
            pages.append(reply.SerializeToString())
    return pages


def _ours(raw: bytes) -> bytes:
    return encode(transcode.to_json(pb.ListJobsResponse.FromString(raw)))


def _reference(raw: bytes) -> bytes:
    return encode(reference_json(pb.ListJobsResponse.FromString(raw)))


def measure(pages: Sequence[bytes], samples: int) -> dict[str, Any]:
    """Per-page encode times of both sides (ms), alternating, after WARMUP pages each; errors counted."""
    if not pages:
        return {"pages": 0, "samples": 0, "ours": _stats([]), "reference": _stats([]), "errors": 0}
    sides: dict[str, Callable[[bytes], bytes]] = {"ours": _ours, "reference": _reference}
    for i in range(WARMUP):
        for encode_page in sides.values():
            encode_page(pages[i % len(pages)])
    errors = 0
    jobs = [len(pb.ListJobsResponse.FromString(raw).jobs) for raw in pages]
    for raw in pages:
        if _ours(raw) != _reference(raw):
            errors += 1
    times: dict[str, list[float]] = {name: [] for name in sides}
    # The collector would otherwise run inside some samples and not others.
    gc.disable()
    try:
        for i in range(samples):
            raw = pages[i % len(pages)]
            for name, encode_page in sides.items():
                began = time.perf_counter()
                encode_page(raw)
                times[name].append((time.perf_counter() - began) * 1000)
            if i % 100 == 99:
                gc.collect()
    finally:
        gc.enable()
    return {
        "pages": len(pages),
        "jobs_per_page": min(jobs),
        "body_bytes": len(_ours(pages[0])),
        "samples": samples,
        "ours": _stats(times["ours"]),
        "reference": _stats(times["reference"]),
        "errors": errors,
    }


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "p50_ms": float("nan"), "p99_ms": float("nan")}
    return {"count": len(values), "p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99)}
