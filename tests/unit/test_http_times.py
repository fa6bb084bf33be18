"""HTTP answers render timestamps as ISO-8601 UTC (issue 16 point 5), durations stay numbers."""

from streams.api.web import iso_times


def test_timestamps_become_iso_and_durations_stay_numbers() -> None:
    body = {
        "order_id": "SO-1",
        "placed": True,
        "promised_ship_at": None,
        "milestones": {"placed_at": 1793610000000, "accepted_at": None},
        "holds": [{"hold_type": "CREDIT", "since": 1793610060000}],
        "open_breaches": [{"milestone": "ACCEPTANCE", "due_at": 1793624400000, "detected_at": 0}],
        "as_of": 1793610000123,
        "cycle_time": {"all": {"sum_ms": 7200000, "buckets": [{"le_ms": 3600000, "count": 1}]}},
        "mean_age_days": 2,
        "seq": 3,
    }
    assert iso_times(body) == {
        "order_id": "SO-1",
        "placed": True,
        "promised_ship_at": None,
        "milestones": {"placed_at": "2026-11-02T09:00:00.000Z", "accepted_at": None},
        "holds": [{"hold_type": "CREDIT", "since": "2026-11-02T09:01:00.000Z"}],
        "open_breaches": [
            {"milestone": "ACCEPTANCE", "due_at": "2026-11-02T13:00:00.000Z", "detected_at": "1970-01-01T00:00:00.000Z"}
        ],
        "as_of": "2026-11-02T09:00:00.123Z",
        "cycle_time": {"all": {"sum_ms": 7200000, "buckets": [{"le_ms": 3600000, "count": 1}]}},
        "mean_age_days": 2,
        "seq": 3,
    }
