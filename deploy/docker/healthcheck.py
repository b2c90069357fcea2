"""The image's HEALTHCHECK: healthy when every listener this process has answers ready.

A process of the image serves gRPC (any service target), HTTP (the gateway), or both, on the ports of
WORKERMON_GRPC_PORT and WORKERMON_HTTP_PORT. A port nobody listens on belongs to a target this process
does not run and is left out; one that listens must answer ready: gRPC health (grpc.health.v1, the
whole server) SERVING, the gateway's /readyz 200 (every service behind it SERVING). Nothing listening
at all is unhealthy (still starting, or stopped). Exit status 0 healthy, 1 not; one line says why.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_SECONDS = 3.0
ANY_ADDRESS = ("", "0.0.0.0", "::", "[::]")


def _address(kind: str, default_port: int) -> tuple[str, int]:
    """Where this process's listener of `kind` (GRPC or HTTP) is reached from inside the container."""
    host = os.environ.get(f"WORKERMON_{kind}_HOST", "127.0.0.1")
    port = int(os.environ.get(f"WORKERMON_{kind}_PORT", str(default_port)))
    return ("127.0.0.1" if host in ANY_ADDRESS else host.strip("[]")), port


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


def _grpc_ready(host: str, port: int) -> tuple[bool, str]:
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=TIMEOUT_SECONDS
            )
        except grpc.RpcError as exc:
            return False, f"gRPC health on {target}: {exc.code().name}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, f"gRPC health on {target}: {status}"


def _http_ready(host: str, port: int) -> tuple[bool, str]:
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as reply:
            return reply.status == 200, f"{url}: {reply.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: {exc.code}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def main() -> int:
    """Check every listener of this process; 0 when all of them are ready and there is at least one."""
    results = [
        check(*address)
        for check, address in (
            (_grpc_ready, _address("GRPC", 50051)),
            (_http_ready, _address("HTTP", 8080)),
        )
        if _listening(*address)
    ]
    if not results:
        print("unhealthy: nothing listens on the gRPC or the HTTP port (starting, or stopped)")
        return 1
    healthy = all(ok for ok, _ in results)
    print(("healthy: " if healthy else "unhealthy: ") + "; ".join(why for _, why in results))
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
