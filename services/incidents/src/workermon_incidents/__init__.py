"""Worker Monitor IncidentService: rules, incident lifecycle, notifications."""
