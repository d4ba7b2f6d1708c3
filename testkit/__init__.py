"""The dev-only test harness: never imported by shipped code (import-linter holds that)."""

from testkit.waiting import eventually, eventually_async

__all__ = ["eventually", "eventually_async"]
