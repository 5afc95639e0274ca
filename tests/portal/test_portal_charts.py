"""portal/charts.py and health_words.py, pure and table-driven: what the health charts and
sparklines say and draw for no data, all ok, all failed and a mix; escaping; percentiles in
words; markup the CSP allows."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from convoyd.core.health import HOUR, LATENCY_BOUNDS_MS, LATENCY_BUCKETS, HealthBucket, total
from convoyd.portal import charts
from convoyd.portal import health_words as words
from convoyd.portal.templates import Html

NOW = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
FIRST = (NOW // HOUR) * HOUR - 23 * HOUR
B120 = LATENCY_BOUNDS_MS.index(100) + 1  # [100, 150) ms
B750 = LATENCY_BOUNDS_MS.index(750) + 1  # [750, 1000) ms
NBSP = "\u00a0"


def hist(**counts: int) -> tuple[int, ...]:
    out = [0] * LATENCY_BUCKETS
    for name, n in counts.items():
        out[int(name[1:])] = n
    return tuple(out)


def day(*values: tuple[int, int, tuple[int, ...]]) -> list[HealthBucket]:
    """24 hourly buckets; the last ones are ``values`` (ok, failed, latency), the rest empty."""
    empty = [(0, 0, hist())] * (24 - len(values))
    return [
        HealthBucket(
            start=FIRST + i * HOUR, end=FIRST + (i + 1) * HOUR, ok=ok, failed=f, latency=lat
        )
        for i, (ok, f, lat) in enumerate([*empty, *values])
    ]


def week(buckets: Sequence[HealthBucket]) -> list[HealthBucket]:
    """28 six-hour buckets, the attempts of ``buckets`` all in the last one."""
    last = (NOW // (6 * HOUR)) * 6 * HOUR
    whole = total(buckets)
    return [
        HealthBucket(start=last - (27 - i) * 6 * HOUR, end=last - (26 - i) * 6 * HOUR)
        for i in range(27)
    ] + [
        HealthBucket(
            start=last,
            end=last + 6 * HOUR,
            ok=whole.ok,
            failed=whole.failed,
            latency=whole.latency,
        )
    ]


def svgs(markup: str) -> list[ET.Element]:
    """Every top-level <svg> of ``markup``, parsed as XML (so it is well formed)."""
    found = []
    depth, start = 0, 0
    for m in re.finditer(r"<svg\b|</svg>", markup):
        if m.group() == "</svg>":
            depth -= 1
            if depth == 0:
                found.append(ET.fromstring(markup[start : m.end()]))  # noqa: S314 - our own output
        else:
            if depth == 0:
                start = m.start()
            depth += 1
    return found


SVG = "{http://www.w3.org/2000/svg}"


@dataclass(frozen=True)
class Case:
    name: str
    buckets: list[HealthBucket]
    summary: str
    ok_bars: int
    failed_bars: int
    lines: bool
    spark_text: str


CASES = [
    Case(
        "empty",
        day(),
        "No attempts",
        ok_bars=0,
        failed_bars=0,
        lines=False,
        spark_text="no attempts",
    ),
    Case(
        "all ok",
        day((3, 0, hist(**{f"b{B120}": 3})), (1_200, 0, hist(**{f"b{B120}": 1_200}))),
        f"1,203 ok, 0 failed (100{NBSP}% ok); response time p50 125 ms, p95 148 ms",
        ok_bars=2,
        failed_bars=0,
        lines=True,
        spark_text=f"100{NBSP}% ok",
    ),
    Case(
        "all failed, none timed",  # connection refused: no response time
        day((0, 7, hist()), (0, 6, hist())),
        f"0 ok, 13 failed (0{NBSP}% ok); no response times",
        ok_bars=0,
        failed_bars=2,
        lines=False,
        spark_text=f"0{NBSP}% ok",
    ),
    Case(
        "a mix",
        day((1_191, 13, hist(**{f"b{B120}": 1_000, f"b{B750}": 204}))),
        f"1,191 ok, 13 failed (98.9{NBSP}% ok); response time p50 130 ms, p95 926 ms",
        ok_bars=1,
        failed_bars=1,
        lines=True,
        spark_text=f"98.9{NBSP}% ok",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_health_section_says_and_draws_the_numbers(case: Case) -> None:
    section = charts.health_section(case.buckets, week(case.buckets))
    assert isinstance(section, Html)
    assert f'<p class="health-summary">{case.summary}</p>' in section
    drawn = svgs(section)
    assert len(drawn) == 2 * (2 + 2 * 2)  # a period: 2 charts, 2 legends of 2 swatches
    charts_only = [s for s in drawn if s.get("role") == "img"]
    assert len(charts_only) == 4
    bars, times = charts_only[0], charts_only[1]
    assert bars.get("aria-label", "").startswith("Attempts per hour, last 24 hours:")
    assert bars.find(f"{SVG}title") is not None
    assert len(bars.findall(f".//{SVG}rect[@class='bar-ok']")) == case.ok_bars
    assert len(bars.findall(f".//{SVG}rect[@class='bar-failed']")) == case.failed_bars
    assert bool(times.findall(f".//{SVG}polyline")) is case.lines
    if case.ok_bars + case.failed_bars == 0:
        assert "No attempts in the last 24 hours" in section
        assert "No attempts in the last 7 days" in section
    # The phone-proof frame: as wide as the page, the plot stretched by its viewBox.
    assert bars.get("width") == "100%"
    assert bars.find(f"{SVG}svg").get("preserveAspectRatio") == "none"  # type: ignore[union-attr]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_sparkline_says_its_share_and_draws_a_bar_per_busy_hour(case: Case) -> None:
    spark = charts.sparkline(case.buckets)
    (svg,) = svgs(spark)
    assert svg.get("role") == "img"
    assert svg.get("aria-label", "").startswith("Last 24 hours: ")
    assert f'<span class="sparkline-text">{case.spark_text}</span>' in spark
    groups = svg.findall(f"{SVG}g")
    assert len(groups) == sum(1 for b in case.buckets if b.attempts)
    for g in groups:
        assert re.fullmatch(
            r"\d+ \w{3} \d\d:00-\d\d:00 UTC: [\d,]+ ok, [\d,]+ failed",
            g.findtext(f"{SVG}title") or "",
        )


def test_every_bar_says_its_hour_in_utc_and_its_counts() -> None:
    section = charts.health_section(day((5, 2, hist(b3=7))), week(day((5, 2, hist(b3=7)))))
    assert "<title>28 May 20:00-21:00 UTC: 5 ok, 2 failed</title>" in section
    assert "<title>Thu 28 May 18:00-00:00 UTC: 5 ok, 2 failed</title>" in section
    # The time axis: every 6 hours, and each midnight of the week by its weekday.
    assert re.findall(r'text-anchor="\w+">([^<]+)</text>', section)[:4] == [
        "00:00",
        "06:00",
        "12:00",
        "18:00",
    ]
    assert ">Thu</text>" in section and ">Fri</text>" in section


def test_nothing_given_is_put_in_unescaped() -> None:
    evil = '<img src=x onerror="alert(1)">&'
    period = words.Period(
        name=evil, per=evil, bucket_label=lambda _: evil, tick=lambda b: evil if b.ok else ""
    )
    buckets = day((1, 1, hist(b2=2)))
    out = charts.period_panel(buckets, period) + charts.sparkline(buckets, period)
    assert "<img" not in out and 'onerror="' not in out
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in out
    for svg in svgs(out):
        assert svg.tag == f"{SVG}svg"


@pytest.mark.parametrize(
    "markup",
    [
        charts.health_section(CASES[3].buckets, week(CASES[3].buckets)),
        charts.health_section(CASES[0].buckets, week(CASES[0].buckets)),
        charts.sparkline(CASES[3].buckets),
    ],
)
def test_the_markup_needs_no_script_and_no_inline_style(markup: str) -> None:
    assert "<script" not in markup and "<style" not in markup
    assert " style=" not in markup and re.search(r"\son\w+=", markup) is None


@pytest.mark.parametrize(
    ("latency", "p50", "p95"),
    [
        (hist(**{f"b{B120}": 100}), "125 ms", "148 ms"),
        (hist(b0=10), "0.5 ms", "0.9 ms"),
        (hist(**{f"b{LATENCY_BOUNDS_MS.index(1000) + 1}": 1}), "1.25 s", "1.48 s"),
        (hist(**{f"b{LATENCY_BOUNDS_MS.index(10000) + 1}": 1}), "12.5 s", "14.8 s"),
        (hist(**{f"b{LATENCY_BUCKETS - 1}": 4}), "60 s or more", "60 s or more"),
        (hist(b0=50, **{f"b{B750}": 50}), "1.0 ms", "975 ms"),
    ],
)
def test_percentiles_are_said_in_words(latency: tuple[int, ...], p50: str, p95: str) -> None:
    bucket = day((sum(latency), 0, latency))
    assert f"response time p50 {p50}, p95 {p95}" in words.summary("", total(bucket))


@pytest.mark.parametrize(
    ("ok", "failed", "share"),
    [(9_999, 1, "99.9"), (1, 9_999, "under 0.1"), (0, 5, "0"), (5, 0, "100"), (2, 1, "66.6")],
)
def test_the_ok_share_is_never_rounded_up_to_whole(ok: int, failed: int, share: str) -> None:
    b = HealthBucket(start=0.0, end=HOUR, ok=ok, failed=failed)
    assert words.ok_share(b) == f"{share}{NBSP}%"


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 1), (1, 1), (3, 5), (7, 10), (12, 20), (500, 500), (501, 1000), (0.4, 0.5)],
)
def test_scales_end_on_a_round_number(value: float, ceiling: float) -> None:
    assert words.nice_ceiling(value) == pytest.approx(ceiling)


def test_bars_scale_to_the_busiest_bucket_and_a_lone_failure_stays_visible() -> None:
    (svg, *_) = [
        s
        for s in svgs(charts.health_section(day((199, 1, hist()), (50, 0, hist())), week([])))
        if s.get("role") == "img"
    ]
    assert "200 attempts per hour" in ET.tostring(svg, encoding="unicode")
    heights = [float(r.get("height", "0")) for r in svg.findall(f".//{SVG}rect[@class='bar-ok']")]
    assert heights == [99.5, 25.0]
    (failed,) = svg.findall(f".//{SVG}rect[@class='bar-failed']")
    assert float(failed.get("height", "0")) == 1.5  # 0.5 of 100 drawn as the minimum
