"""The garbage collector of a server process: what was imported is frozen, and young
collections run less often.

Measured in W1 (4,000 sockets opened at 300/s, issue 18, `gc.callbacks`):
with CPython's defaults (thresholds 700, 10, 10) the collector took 4.3 s
of the process's 13.2 s of CPU — 12 full collections of 276 ms each on
average (3.3 s) and 153 middle ones (0.55 s) — because every full
collection walks every object alive: Django's and the libraries' import-time
objects and the objects of every open socket. That is why the CPU per
connect grew with the number of open sockets, and the 276 ms pauses sat in
the connect latency.

- `gc.freeze()` once everything is imported (just before serving) moves the
  import-time objects to the permanent generation: no collection walks
  them again. They live as long as the process anyway.
- A higher first threshold: a connect allocates a few hundred containers,
  nearly all of them either freed by reference counting or alive as long as
  the socket; collecting the young generation every 700 allocations mostly
  promotes live sockets. The full collection keeps CPython's own rule (only
  when the objects promoted since the last one are over a quarter of the
  long-lived ones), so its cost per socket stays bounded.

The thresholds come from `QW_GC_THRESHOLDS` (three integers, as
`gc.set_threshold` takes them).
"""

from __future__ import annotations

import gc

from django.conf import settings


def settle_heap() -> None:
    """Call once, after every import and just before the server starts serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*settings.QW_GC_THRESHOLDS)
