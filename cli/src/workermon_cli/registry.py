"""The one list of what a Worker Monitor process can run: every service and the gateway.

`workermon serve --target`, `workermon migrate`, the tests' suite helper and the benchmarks' server
all iterate it; adding a service is adding its `MODULE` here.
"""

from __future__ import annotations

from workermon_collector.service import MODULE as COLLECTOR
from workermon_core.modules import Module
from workermon_gateway.module import MODULE as GATEWAY
from workermon_heartbeat.service import MODULE as HEARTBEAT
from workermon_incidents.service import MODULE as INCIDENTS
from workermon_monitor.service import MODULE as MONITOR

MODULES: tuple[Module, ...] = (HEARTBEAT, COLLECTOR, MONITOR, INCIDENTS, GATEWAY)
BY_NAME: dict[str, Module] = {module.name: module for module in MODULES}
# Every gRPC service of the suite (what `--target services` names).
SERVICES: tuple[str, ...] = tuple(m.name for m in MODULES if m is not GATEWAY)
ALL = "all"


def resolve(target: str) -> list[Module]:
    """`all`, `services`, one target, or a comma-separated list; an unknown name is a usage error."""
    names: list[str] = []
    for item in (part.strip() for part in target.split(",")):
        if item == ALL:
            names += list(BY_NAME)
        elif item == "services":
            names += list(SERVICES)
        elif item:
            names.append(item)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        choices = ", ".join([ALL, "services", *BY_NAME])
        raise SystemExit(f"unknown --target {target!r}; choose one or more of: {choices}")
    return [BY_NAME[name] for name in dict.fromkeys(names)]


def with_migrations() -> list[Module]:
    """The modules that keep tables, in the order their migrations run."""
    return [module for module in MODULES if module.migrations is not None]
