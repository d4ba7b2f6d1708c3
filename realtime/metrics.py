"""Prometheus metrics (SPEC §9). One registry per process."""

from prometheus_client import Counter, Gauge, Histogram

OPEN_CONNECTIONS = Gauge("qw_open_connections", "Open WebSocket connections")
FRAMES_IN = Counter("qw_frames_in_total", "Frames received from clients", ["type"])
FRAMES_OUT = Counter("qw_frames_out_total", "Frames sent to clients", ["type"])
EVENTS_PUBLISHED = Counter("qw_events_published_total", "Layer messages published after commit")
DELIVERY_LATENCY = Histogram(
    "qw_delivery_latency_seconds",
    "From a durable event's commit to its frame leaving the server (live delivery)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RATE_LIMITED = Counter("qw_rate_limited_total", "Frames refused by a rate limit", ["kind"])
FAULTS = Counter(
    "qw_faults_total",
    "Failures from an unreachable Redis or PostgreSQL, by operation (realtime.faults logs "
    "the outage, not each failure)",
    ["kind", "operation"],
)
# The fan-out (realtime.layers): group messages decoded (once per process each),
# and local members served by the fast lane or by their queue.
FANOUT_DECODES = Counter("qw_fanout_decodes_total", "Group messages decoded by the layer's reader")
FANOUT_FAST = Counter("qw_fanout_fast_total", "Group message copies written by the fast lane")
FANOUT_QUEUED = Counter("qw_fanout_queued_total", "Group message copies queued to a consumer")
