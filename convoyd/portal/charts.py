"""Delivery health drawn as inline SVG: buckets (core/health.py) in, markup out, no script.

Pure: no I/O and no clock. Every value reaches the markup through ``templates.render`` (so it
is escaped); colours are SVG presentation attributes, which the portal's CSP allows (no
``style`` attribute or element). A chart is an outer ``<svg>`` as wide as its box, in CSS
pixels, holding the text (so labels keep their size on a phone), and an inner ``<svg>`` with a
``viewBox`` stretched over the plot area (``preserveAspectRatio="none"``) holding the bars and
lines, whose strokes do not scale (``vector-effect``). Each chart is ``role="img"`` with an
``aria-label`` saying what it shows in words; each bar has a ``<title>`` (a tooltip) with its
numbers, and the same numbers are in a table under "Show the numbers".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from convoyd.core.health import HealthBucket, total
from convoyd.portal.health_words import (
    DAY,
    WEEK,
    Period,
    count,
    counts_text,
    duration,
    nice_ceiling,
    ok_share,
    summary,
    times_text,
)
from convoyd.portal.templates import EMPTY, Html, esc, join, render

OK_COLOUR = "#12b76a"
FAILED_COLOUR = "#f04438"
P50_COLOUR = "#3b5bdb"
P95_COLOUR = "#dc6803"
GRID_COLOUR = "#e4e7ec"
TEXT_COLOUR = "#667085"

# The outer chart, in CSS pixels: a label row, the plot, the time axis.
_TOP = 16
_PLOT = 110
_AXIS = 20
_HEIGHT = _TOP + _PLOT + _AXIS
# The inner plot's viewBox: UNIT wide per bucket, 100 high.
_UNIT = 10
_BAR = 8
# A bar of at least one attempt is never drawn thinner than this (of 100), so it shows.
_MIN_BAR = 1.5


# -- SVG pieces ---------------------------------------------------------------------------------


def _num(x: float) -> str:
    """A coordinate: a tenth of a unit is finer than any screen shows these charts."""
    return f"{x:.1f}"


def _frame(label: str, top_label: str, ticks: Html, plot: Html, n: int, note: str = "") -> Html:
    """The outer chart: ``plot`` (in the inner viewBox, ``n`` buckets wide), the scale's
    label at the top left, the time axis under it, and ``note`` across the middle."""
    return render(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" width="100%" height="{h}"'
        ' role="img" aria-label="{label}" font-size="11" fill="{text}">'
        "<title>{label}</title>"
        '<text x="0" y="11">{top}</text>'
        '<svg x="0" y="{top_y}" width="100%" height="{plot_h}" viewBox="0 0 {w} 100"'
        ' preserveAspectRatio="none">'
        '<line x1="0" y1="0.5" x2="{w}" y2="0.5" stroke="{grid}"'
        ' vector-effect="non-scaling-stroke"/>'
        '<line x1="0" y1="50" x2="{w}" y2="50" stroke="{grid}"'
        ' vector-effect="non-scaling-stroke"/>'
        '<line x1="0" y1="99.5" x2="{w}" y2="99.5" stroke="{text}"'
        ' vector-effect="non-scaling-stroke"/>'
        "{plot}</svg>{ticks}{note}</svg>",
        h=_HEIGHT,
        label=label,
        text=TEXT_COLOUR,
        top=top_label,
        top_y=_TOP,
        plot_h=_PLOT,
        w=n * _UNIT,
        grid=GRID_COLOUR,
        plot=plot,
        ticks=ticks,
        note=_empty_note(note) if note else EMPTY,
    )


def _ticks(buckets: Sequence[HealthBucket], tick: Callable[[HealthBucket], str]) -> Html:
    n = len(buckets)
    parts = []
    for i, b in enumerate(buckets):
        text = tick(b)
        if not text:
            continue
        at = 100 * (i + 0.5) / n
        anchor = "start" if at < 6 else "end" if at > 94 else "middle"
        parts.append(
            render(
                '<text x="{x}%" y="{y}" text-anchor="{anchor}">{text}</text>',
                x=_num(at),
                y=_TOP + _PLOT + 14,
                anchor=anchor,
                text=text,
            )
        )
    return join(parts)


def _empty_note(text: str) -> Html:
    return render(
        '<text x="50%" y="{y}" text-anchor="middle">{text}</text>', y=_TOP + _PLOT // 2, text=text
    )


def _height(n: int, scale: float) -> float:
    if n <= 0:
        return 0.0
    return max(_MIN_BAR, 100 * n / scale)


def _rect(x: float, y: float, w: float, h: float, colour: str, cls: str = "") -> str:
    """A rectangle of numbers and constants only (nothing to escape), for the hot loops."""
    attr = f' class="{cls}"' if cls else ""
    return (
        f'<rect{attr} x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}"'
        f' fill="{colour}"/>'
    )


def _target(x: float, w: float, h: float) -> str:
    """An invisible rectangle over a whole bucket: where its tooltip shows."""
    return f'<rect x="{_num(x)}" y="0" width="{_num(w)}" height="{_num(h)}" fill-opacity="0"/>'


def _bar(i: int, b: HealthBucket, scale: float, tip: str) -> str:
    """One bucket: ok from the baseline, failed stacked on it, and a full-height target for
    the tooltip (``tip`` escaped here)."""
    ok_h = _height(b.ok, scale)
    failed_h = _height(b.failed, scale)
    x = i * _UNIT + (_UNIT - _BAR) / 2
    parts = [f"<g><title>{esc(tip)}</title>", _target(x, _BAR, 100)]
    if ok_h:
        parts.append(_rect(x, 100 - ok_h, _BAR, ok_h, OK_COLOUR, "bar-ok"))
    if failed_h:
        y = max(0.0, 100 - ok_h - failed_h)
        parts.append(_rect(x, y, _BAR, failed_h, FAILED_COLOUR, "bar-failed"))
    parts.append("</g>")
    return "".join(parts)


def attempts_chart(buckets: Sequence[HealthBucket], period: Period) -> Html:
    """Succeeded and failed attempts per bucket, stacked bars."""
    whole = total(buckets)
    label = f"Attempts {period.per}, {period.name.lower()}: {counts_text(whole)}"
    if whole.attempts == 0:
        note = f"No attempts in the {period.name.lower()}"
        return _frame(label, "", _ticks(buckets, period.tick), EMPTY, len(buckets), note)
    scale = nice_ceiling(max(b.attempts for b in buckets))
    bars = Html(
        "".join(
            _bar(i, b, scale, f"{period.bucket_label(b)}: {counts_text(b)}")
            for i, b in enumerate(buckets)
        )
    )
    top = f"{count(int(scale))} attempts {period.per}"
    return _frame(label, top, _ticks(buckets, period.tick), bars, len(buckets))


def _segments(points: Sequence[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = [[]]
    for p in points:
        if p is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(p)
    return [r for r in runs if r]


def _line(points: Sequence[tuple[float, float] | None], colour: str, cls: str) -> Html:
    """A polyline per run of buckets with a value; a lone one as a short dash."""
    parts = []
    for run in _segments(points):
        if len(run) == 1:
            x, y = run[0]
            run = [(x - _UNIT * 0.3, y), (x + _UNIT * 0.3, y)]
        parts.append(
            render(
                '<polyline class="{cls}" points="{pts}" fill="none" stroke="{c}"'
                ' stroke-width="2" stroke-linejoin="round" vector-effect="non-scaling-stroke"/>',
                cls=cls,
                pts=" ".join(f"{_num(x)},{_num(y)}" for x, y in run),
                c=colour,
            )
        )
    return join(parts)


def latency_chart(buckets: Sequence[HealthBucket], period: Period) -> Html:
    """p50 and p95 response time per bucket, two lines (gaps where nothing was timed)."""
    whole = total(buckets)
    label = f"Response time {period.per}, {period.name.lower()}: {times_text(whole)}"
    p50s = [b.percentile(0.5) for b in buckets]
    p95s = [b.percentile(0.95) for b in buckets]
    known = [v for v in p95s if v is not None]
    if not known:
        note = f"No response times in the {period.name.lower()}"
        return _frame(label, "", _ticks(buckets, period.tick), EMPTY, len(buckets), note)
    scale = nice_ceiling(max(known))

    def points(values: Sequence[float | None]) -> list[tuple[float, float] | None]:
        return [
            None if v is None else ((i + 0.5) * _UNIT, 100 - 100 * min(v, scale) / scale)
            for i, v in enumerate(values)
        ]

    targets = Html(
        "".join(
            f"<g><title>{esc(period.bucket_label(b))}: {esc(times_text(b))}</title>"
            f"{_target(i * _UNIT, _UNIT, 100)}</g>"
            for i, b in enumerate(buckets)
        )
    )
    plot = join(
        [
            targets,
            _line(points(p95s), P95_COLOUR, "line-p95"),
            _line(points(p50s), P50_COLOUR, "line-p50"),
        ]
    )
    return _frame(
        label, f"{duration(scale)} (top of scale)", _ticks(buckets, period.tick), plot, len(buckets)
    )


def _swatch(colour: str, text: str) -> Html:
    return render(
        '<span class="legend-item"><svg xmlns="http://www.w3.org/2000/svg" width="10"'
        ' height="10" aria-hidden="true"'
        ' focusable="false"><rect width="10" height="10" rx="2" fill="{c}"/></svg> {t}</span>',
        c=colour,
        t=text,
    )


def legend(*items: tuple[str, str]) -> Html:
    return render(
        '<p class="chart-legend">{items}</p>',
        items=join((_swatch(c, t) for c, t in items), " "),
    )


def numbers(buckets: Sequence[HealthBucket], period: Period) -> Html:
    """The charts' numbers as a table, folded away, newest first as every portal listing."""
    rows = []
    for b in reversed(buckets):
        p50, p95 = b.percentile(0.5), b.percentile(0.95)
        cells = (
            period.bucket_label(b),
            count(b.ok),
            count(b.failed),
            "—" if p50 is None else duration(p50),
            "—" if p95 is None else duration(p95),
        )
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    return render(
        '<details class="chart-numbers"><summary>Show the numbers</summary>'
        '<div class="table-wrap"><table class="compact"><thead><tr><th>Time (UTC)</th>'
        "<th>OK</th><th>Failed</th><th>p50</th><th>p95</th></tr></thead>"
        "<tbody>{rows}</tbody></table></div></details>",
        rows=Html("".join(rows)),
    )


def period_panel(buckets: Sequence[HealthBucket], period: Period) -> Html:
    """One period: its summary in words, both charts with their legends, the numbers."""
    return render(
        '<div class="health-period"><h3>{name}</h3><p class="health-summary">{summary}</p>'
        '<div class="chart">{bars}{bars_legend}</div>'
        '<div class="chart">{times}{times_legend}</div>{numbers}</div>',
        name=period.name,
        summary=summary("", total(buckets)),
        bars=attempts_chart(buckets, period),
        bars_legend=legend((OK_COLOUR, "Succeeded"), (FAILED_COLOUR, "Failed")),
        times=latency_chart(buckets, period),
        times_legend=legend((P50_COLOUR, "p50 (median)"), (P95_COLOUR, "p95")),
        numbers=numbers(buckets, period),
    )


NOTE = (
    "Attempts count in the hour they started; times are in UTC. Response time covers the"
    " attempts the receiver answered (with any status) or that timed out; p50 and p95 are"
    " estimated from response times grouped in ranges, so they are approximate."
)


def health_section(day: Sequence[HealthBucket], week: Sequence[HealthBucket]) -> Html:
    """The endpoint page's "Delivery health" card: the last 24 hours and the last 7 days."""
    return render(
        '<section class="card health" aria-labelledby="delivery-health">'
        '<h2 id="delivery-health">Delivery health</h2>{day}{week}'
        '<p class="muted">{note}</p></section>',
        day=period_panel(day, DAY),
        week=period_panel(week, WEEK),
        note=NOTE,
    )


def sparkline(buckets: Sequence[HealthBucket], period: Period = DAY) -> Html:
    """A small chart of attempts per bucket (the endpoints list), with its share of ok."""
    whole = total(buckets)
    said = "no attempts" if whole.attempts == 0 else f"{counts_text(whole)} ({ok_share(whole)} ok)"
    label = f"{period.name}: {said}"
    n = max(1, len(buckets))
    width, height = 4 * n, 24
    scale = max((b.attempts for b in buckets), default=0)
    bars = []
    for i, b in enumerate(buckets):
        if b.attempts == 0:
            continue
        ok_h = 0.0 if b.ok == 0 else max(1.0, 22 * b.ok / scale)
        failed_h = 0.0 if b.failed == 0 else max(1.0, 22 * b.failed / scale)
        bars.append(f"<g><title>{esc(period.bucket_label(b))}: {esc(counts_text(b))}</title>")
        bars.append(_target(4 * i, 4, height))
        if ok_h:
            bars.append(_rect(4 * i, 23 - ok_h, 3, ok_h, OK_COLOUR))
        if failed_h:
            bars.append(_rect(4 * i, max(0.0, 23 - ok_h - failed_h), 3, failed_h, FAILED_COLOUR))
        bars.append("</g>")
    svg = render(
        '<svg xmlns="http://www.w3.org/2000/svg" class="sparkline-svg" width="{w}"'
        ' height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{label}">'
        '<title>{label}</title><line x1="0" y1="23.5" x2="{w}" y2="23.5" stroke="{grid}"/>'
        "{bars}</svg>",
        w=width,
        h=height,
        label=label,
        grid=GRID_COLOUR,
        bars=Html("".join(bars)),
    )
    text = "no attempts" if whole.attempts == 0 else f"{ok_share(whole)} ok"
    return render(
        '<span class="sparkline">{svg} <span class="sparkline-text">{text}</span></span>',
        svg=svg,
        text=text,
    )
