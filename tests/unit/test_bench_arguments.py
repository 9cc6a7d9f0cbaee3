"""`python -m bench`'s options refuse what would break a run later (hostile input)."""

from __future__ import annotations

import pytest

from bench import cpu_at_rate
from bench.__main__ import _arguments, _settings


@pytest.mark.parametrize(
    "argv",
    [
        ["--keys", "0"],
        ["--keys", "10000,-1"],
        ["--keys", "a,b"],
        ["--keys", ","],
        ["--keys", "1.5"],
        ["--start-rate", "0"],
        ["--step-seconds", "-3"],
        ["--max-steps", "many"],
        ["--cpu-fraction", "0"],
        ["--cpu-fraction", "1.5"],
        ["--cpu-fraction", "nan"],
        ["--concurrency", ""],
        ["--drain-rows", "1e9"],
    ],
)
def test_bad_values_stop_the_bench_before_it_starts_anything(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        _arguments(argv)
    assert stopped.value.code == 2


def test_good_values_reach_the_settings() -> None:
    settings = _settings(
        _arguments(["--keys", "1000, 1", "--start-rate", "40", "--cpu-fraction", "0.8"])
    )
    assert settings.key_counts == (1000, 1)
    assert settings.search.start == 40
    assert settings.cpu_fraction == 0.8


def test_quick_mode_is_short_and_keeps_the_key_counts() -> None:
    settings = _settings(_arguments(["--quick", "--keys", "100,1"]))
    assert settings.step_seconds <= 5
    assert settings.drain_rows == 10_000
    assert settings.key_counts == (100, 1)


@pytest.mark.parametrize("argv", [["--rate", "0"], ["--seconds", "-1"], ["--passes", "two"]])
def test_bad_values_stop_cpu_at_rate_before_it_starts_anything(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cpu_at_rate.main(argv)
    assert stopped.value.code == 2  # argparse's usage error, before any server starts
