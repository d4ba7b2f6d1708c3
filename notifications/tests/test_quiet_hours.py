"""Quiet hours in the user's time zone (SPEC §10): inside or not, and when they end."""

from datetime import UTC, datetime, time

import pytest

from notifications.preferences import QuietHours

NIGHT = QuietHours(time(22, 0), time(7, 0), "Europe/Berlin")  # across midnight
LUNCH = QuietHours(time(12, 0), time(13, 30), "America/New_York")


@pytest.mark.parametrize(
    ("quiet", "now", "ends"),
    [
        # 23:30 in Berlin (CET, UTC+1): quiet until 07:00 the next morning
        (NIGHT, datetime(2026, 1, 10, 22, 30, tzinfo=UTC), datetime(2026, 1, 11, 6, 0, tzinfo=UTC)),
        # 03:00 in Berlin: quiet until 07:00 the same morning
        (NIGHT, datetime(2026, 1, 11, 2, 0, tzinfo=UTC), datetime(2026, 1, 11, 6, 0, tzinfo=UTC)),
        # summer time (CEST, UTC+2): 07:00 local is 05:00 UTC
        (NIGHT, datetime(2026, 7, 11, 1, 0, tzinfo=UTC), datetime(2026, 7, 11, 5, 0, tzinfo=UTC)),
        (NIGHT, datetime(2026, 1, 11, 6, 0, tzinfo=UTC), None),  # 07:00 sharp: over
        (NIGHT, datetime(2026, 1, 11, 12, 0, tzinfo=UTC), None),
        # 12:15 in New York (EST, UTC-5)
        (
            LUNCH,
            datetime(2026, 1, 12, 17, 15, tzinfo=UTC),
            datetime(2026, 1, 12, 18, 30, tzinfo=UTC),
        ),
        (LUNCH, datetime(2026, 1, 12, 16, 59, tzinfo=UTC), None),
    ],
)
def test_quiet_hours_end(quiet, now, ends):
    assert quiet.end_if_inside(now) == ends
