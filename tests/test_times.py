"""One reading of times and durations for the CLI and the HTTP API (inferwatch/times.py)."""

import pytest

from inferwatch.times import duration_ms, parse_time

T = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def test_rfc3339_forms_mean_the_same_instant():
    assert parse_time("2024-01-01T00:00:00Z") == parse_time("2024-01-01t01:00:00+01:00") == T
    assert parse_time("2024-01-01") == parse_time("2024-01-01T00:00:00") == T  # no offset: UTC
    assert parse_time("2024-01-01T00:00:00.250Z") == T + 250


def test_durations_count_back_from_now_and_can_be_refused():
    assert parse_time("12h", now=T) == T - 12 * 3_600_000
    assert parse_time("1.5w", now=T) == T - int(1.5 * 7 * 86_400_000)
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time("12h", now=T, durations=False)


def test_an_offset_can_be_required():
    assert parse_time("2024-01-01T00:00:00Z", require_offset=True) == T
    for text in ("2024-01-01", "2024-01-01T00:00:00"):
        with pytest.raises(ValueError, match="offset"):
            parse_time(text, require_offset=True)


@pytest.mark.parametrize("text", ["0h", "-1d", "5 parsecs", "d", "soon"])
def test_bad_durations_name_the_accepted_form(text):
    with pytest.raises(ValueError, match="s, m, h, d or w"):
        duration_ms(text)


def test_durations():
    assert duration_ms("90s") == 90_000 and duration_ms(" 2h ") == 7_200_000 and duration_ms("1w") == 604_800_000


@pytest.mark.parametrize("text", ["99999999999999999999d", "9999999999999w"])
def test_instants_outside_the_years_1_to_9999_are_refused(text):
    with pytest.raises(ValueError, match="years 1 to 9999"):
        parse_time(text, now=T)
