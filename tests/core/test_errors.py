"""ErrorInfo domains: one per service."""

from __future__ import annotations

from workermon_core.errors import error_domain


def test_error_domain_names_the_service_of_the_method() -> None:
    assert error_domain("/workermon.monitor.v1.MonitorService/ListJobs") == "monitor.workermon"
    assert error_domain("/workermon.incidents.v1.IncidentService/ListIncidents") == "incidents.workermon"
    assert error_domain("/grpc.health.v1.Health/Check") == "workermon"
