"""The `ferry` tables' human units (ferry.collector.cli.units): exact strings at every boundary."""

from __future__ import annotations

import math

import pytest

from ferry.collector.cli.units import count, duration, human, human_ms, sig3, unit_name

KIB, MIB, GIB, TIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (-0.0, "0 B"),
        (1, "1 B"),
        (512.5, "512 B"),
        (5.25, "5.25 B"),
        (1023, "1023 B"),
        (1023.7, "1 KiB"),  # rounds up to the next step
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (10 * KIB + 512, "10.5 KiB"),
        (1023 * KIB, "1023 KiB"),
        (MIB, "1 MiB"),
        (20_856_800, "19.9 MiB"),
        (0.9e9, "858 MiB"),
        (1.5 * GIB, "1.5 GiB"),
        (GIB - 1, "1 GiB"),
        (3 * TIB, "3 TiB"),
        (1024 * TIB, "1 PiB"),
        (-1536, "-1.5 KiB"),
        (-20_856_800, "-19.9 MiB"),
    ],
)
def test_bytes(value, text):
    assert human(value, "By") == text


def test_byte_aliases_and_rates():
    assert human(1.5, "KiBy") == "1.5 KiB"
    assert human(2048, "bytes") == "2 KiB"
    assert human(1.2 * MIB, "By/s") == "1.2 MiB/s"
    assert human(0, "By/s") == "0 B/s"
    assert human(-512, "By/s") == "-512 B/s"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0%"),
        (1, "100%"),
        (0.425, "42.5%"),
        (0.05, "5%"),
        (0.0001, "0.01%"),
        (0.99999, "100%"),
        (1.5, "150%"),  # a process on more than one CPU
        (-0.25, "-25%"),
    ],
)
def test_ratios_as_percent(value, text):
    assert human(value, "1") == text


def test_percent_given_as_percent():
    assert human(42.5, "%") == "42.5%"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (5e-10, "0.5 ns"),
        (1e-9, "1 ns"),
        (999.9e-9, "1 µs"),
        (250e-6, "250 µs"),
        (0.00099996, "1 ms"),
        (0.85, "850 ms"),
        (0.9996, "1 s"),
        (1, "1 s"),
        (12.34, "12.3 s"),
        (59.9, "59.9 s"),
        (59.97, "1m 00s"),
        (60, "1m 00s"),
        (245, "4m 05s"),
        (3599.4, "59m 59s"),
        (3599.6, "1h 00m"),
        (11_520, "3h 12m"),
        (86_399, "1d 0h"),
        (187_200, "2d 4h"),
        (-245, "-4m 05s"),
    ],
)
def test_durations_from_seconds(seconds, text):
    assert human(seconds, "s") == text
    assert duration(abs(seconds)) == text.lstrip("-")


def test_durations_from_other_time_units():
    assert human(850, "ms") == "850 ms"
    assert human(0.25, "ms") == "250 µs"
    assert human(59_900, "ms") == "59.9 s"
    assert human(1500, "us") == "1.5 ms"
    assert human(1500, "ns") == "1.5 µs"
    assert human(90, "min") == "1h 30m"
    assert human_ms(4200) == "4.2 s"
    assert human_ms(185_000) == "3m 05s"


def test_time_rates_are_a_share_of_time():
    # cpu seconds per second: 100% is one CPU busy
    assert human(0.425, "s/s") == "42.5%"
    assert human(3.2, "s/s") == "320%"
    assert human(425, "ms/s") == "42.5%"


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0, "", "0"),
        (7, "{count}", "7"),
        (1_234_567, "{count}", "1,234,567"),
        (1_234_567, "", "1,234,567"),
        (999, "{thread}", "999"),
        (1000, "{thread}", "1,000"),
        (1234.5678, "", "1,234.57"),
        (2.5, "{thread}", "2.5"),
        (0.53, "{thread}", "0.53"),
        (0.001234, "", "0.00123"),
        (12, "{packet}/s", "12/s"),
        (1234.5, "/s", "1,234.5/s"),
        (3, "1/s", "3/s"),
        (2e15, "", "2.000e+15"),
        (-1_234_567, "{count}", "-1,234,567"),
        (21.5, "Cel", "21.5 Cel"),  # an unknown unit follows the number
        (1_234_567, "widgets", "1,234,567 widgets"),
        (4.5, "Cel/s", "4.5 Cel/s"),
    ],
)
def test_counts_and_unknown_units(value, unit, text):
    assert human(value, unit) == text


@pytest.mark.parametrize("unit", ["By", "1", "s", "ms", "{count}", "", "By/s", "s/s", "Cel"])
def test_nan_and_infinities_whatever_the_unit(unit):
    assert human(math.nan, unit) == "NaN"
    assert human(math.inf, unit) == "Inf"
    assert human(-math.inf, unit) == "-Inf"


def test_sig3_and_count_helpers():
    assert [sig3(x) for x in (0, 0.425, 1, 1.5, 9.996, 19.87, 99.96, 858.3, 1023)] == [
        "0",
        "0.425",
        "1",
        "1.5",
        "10",
        "19.9",
        "100",
        "858",
        "1023",
    ]
    assert count(2.001) == "2"  # two decimals, trailing zeros dropped


def test_unit_names_of_a_listing():
    assert [unit_name(u) for u in ("By", "1", "s", "ms", "{thread}", "By/s", "s/s", "", "Cel")] == [
        "bytes",
        "ratio",
        "seconds",
        "milliseconds",
        "thread",
        "bytes/s",
        "seconds/s",
        "",
        "Cel",
    ]
