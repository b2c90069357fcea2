"""The live stream: one upstream subscription fanned out to every browser as Server-Sent Events.

`GET {base_path}/v1/stream` sends these events (`event:` name, `data:` one JSON object):

- `overview`: GetOverviewResponse in the proto3 JSON mapping, sent when it changes (polled every
  `stream_overview_interval_seconds`), and at once to a client connecting without Last-Event-ID.
- `worker`: a worker transition from HeartbeatService.WatchWorkers:
  `{"type": "WORKER_EVENT_TYPE_ONLINE|..._OFFLINE|..._UPDATED", "workerId", "time" (RFC 3339),
  "reason", "worker" (Worker JSON, or null when the registry no longer holds it)}`.
- `incident`: reserved for IncidentService.WatchIncidents (see "Adding a source" below).
- `status`: `{"upstream": "ok"|"unavailable", "services": {"monitor": "ok", "heartbeat": ...}}`, sent when
  a source loses or regains its upstream, so the UI can show "reconnecting".
- `reset`: `{"reason": ...}`: the Last-Event-ID given is older than the replay buffer (or from another
  gateway process); the client must refetch its state. The current overview follows.

Every event has an id `<epoch-ms>-<seq>`, strictly increasing within a gateway process. Events are kept
for `stream_replay_seconds` (and at most `max_events`), so a client reconnecting with `Last-Event-ID`
(the header browsers send, or a `lastEventId` query parameter) receives every event it missed, then live
ones. Of the missed `overview` events only the newest is replayed: each is a whole snapshot.

One poller and one WatchWorkers call serve every client, whatever their number. Each client has a
bounded queue; a client that falls behind by more than that is disconnected (and logged) instead of
letting memory grow. A stream also ends when the token it was opened with expires: the client must
reconnect with a fresh one.

Adding a source (IncidentService): write a class with a `name` ("incident") and
`async def run(self, sink: SourceSink) -> None` that follows WatchIncidents, calls `sink.connected()`
once the upstream answers and `sink.publish("incident", json_of(event))` per event, and raises on an
upstream failure (returning counts as a failure too). Pass it in `LiveStream(..., sources=[...])` or
`live.add_source(...)` before `start()`: the stream retries it with backoff and reports its health in
`status` events like the built-in ones."""
