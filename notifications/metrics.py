"""Prometheus metrics of offline delivery (SPEC §10), on the process's default registry.

The worker process (`manage.py notify_worker --metrics-port`) serves them
itself; in the embedded default they appear on the server's /metrics.
"""

from prometheus_client import Counter, Histogram

OFFLINE_DELIVERIES = Counter(
    "qw_offline_deliveries_total",
    "Pushes and emails to people who were away, by outcome",
    ["channel", "outcome"],  # outcome: sent | suppressed | failed
)
OFFLINE_DELAY = Histogram(
    "qw_offline_delivery_delay_seconds",
    "From the commit of a message or notification to its push or email being accepted",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
