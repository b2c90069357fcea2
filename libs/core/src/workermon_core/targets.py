"""Where a peer service is reached: one server, a list of replicas, or a DNS name listing them."""

from __future__ import annotations

import ipaddress

__all__ = ["channel_target"]


def channel_target(target: str) -> tuple[str, bool]:
    """The gRPC target for an address setting, and whether calls should be balanced over several servers.

    `host:port` is one server. Replicas are named as a comma-separated list of `ip:port`
    (`10.0.0.5:50051,10.0.0.6:50051`, given to gRPC as `ipv4:`/`ipv6:` addresses) or by a DNS name whose
    records list them (`dns:///heartbeat.workermon.svc:50051`, a Kubernetes headless Service); both are
    balanced round-robin, and a replica that goes away is left out until it answers again.
    """
    target = target.strip()
    if target.startswith("dns:"):
        return target, True
    parts = [part.strip() for part in target.split(",") if part.strip()]
    if len(parts) <= 1 or target.startswith(("ipv4:", "ipv6:")):
        return target, len(parts) > 1
    hosts = [part.rsplit(":", 1)[0] for part in parts]
    if not all(_is_ip(host.strip("[]")) for host in hosts):
        raise ValueError(
            f"{target!r}: a list of servers must give IP addresses (ip:port,ip:port); name replicas by DNS "
            "instead with dns:///<name>:<port>"
        )
    scheme = "ipv6" if any(":" in host.strip("[]") for host in hosts) else "ipv4"
    return f"{scheme}:{','.join(parts)}", True


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
