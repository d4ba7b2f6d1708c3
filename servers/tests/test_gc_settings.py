"""The server process's collector settings (servers/gc_settings.py): work, not time."""

import gc

from django.conf import settings

from servers.gc_settings import settle_heap


def test_settling_the_heap_freezes_what_is_alive_and_sets_the_configured_thresholds():
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        settle_heap()
        assert gc.get_threshold() == settings.QW_GC_THRESHOLDS
        assert settings.QW_GC_THRESHOLDS[0] > 700  # CPython's default young threshold
        # Everything alive before the call (this test module included) is no
        # longer walked by any collection, the full ones included.
        assert gc.get_freeze_count() > 10_000
        frozen = gc.get_freeze_count()
        gc.collect()
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
