"""Small server-side SVG charts: horizontal bars and a heat map, no script, no library.

Each chart is drawn for a 256 kbps link: a few hundred bytes per row, at most MAX_ROWS rows,
colours as presentation attributes (the CSP forbids style attributes), and the numbers
written in the bars so a printout needs no colour. The SVG is decoration for sighted
readers: it is aria-hidden, and the data table beside it is what a screen reader reads.
Right-to-left pages get the mirror image (labels on the right, bars growing leftwards).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

MAX_ROWS = 24
WIDTH = 480
ROW = 20
LABEL = 150
PAD = 4
COLOURS = {"main": "#2c6e9b", "second": "#9cc3de", "gap": "#b3261e", "thin": "#e0a030",
           "ok": "#3c8d4f", "none": "#e4e4e4"}


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    second: float | None = None  # drawn lighter, behind (say, the 90th percentile)


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


TEXT = "#222"


def _svg(width: int, height: int, body: list[str], anchor: str) -> Markup:
    """The chart; text colour and the usual anchor are set once here (both are inherited),
    so each <text> only says where it differs: a heat map of 24 × 6 cells stays small."""
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-hidden="true" focusable="false" direction="ltr" '
        f'font-size="11" font-family="sans-serif" fill="{TEXT}" text-anchor="{anchor}">'
        f'{"".join(body)}</svg>')


def _text(x: float, y: float, content: str, anchor: str | None = None,
          fill: str = TEXT) -> str:
    """A label; `anchor` only when it is not the chart's own, `fill` only when not TEXT."""
    extra = (f' text-anchor="{anchor}"' if anchor else "") + \
        (f' fill="{fill}"' if fill != TEXT else "")
    return f'<text x="{x:.0f}" y="{y:.0f}"{extra}>{escape(content)}</text>'


def bar_chart(bars: Sequence[Bar], rtl: bool = False) -> Markup:
    """Horizontal bars, one row per item (the first MAX_ROWS), scaled to the largest value."""
    bars = list(bars)[:MAX_ROWS]
    top = max([b for bar in bars for b in (bar.value, bar.second) if b is not None] or [0])
    span = WIDTH - LABEL - 3 * PAD - 40  # room for the value written after the bar
    body: list[str] = []

    def x_of(position: float, length: float = 0) -> float:
        """A left-to-right position, mirrored on right-to-left pages."""
        return WIDTH - position - length if rtl else position

    near = "end" if rtl else "start"
    for i, bar in enumerate(bars):
        y = i * ROW
        body.append(_text(x_of(PAD), y + 14, bar.label[:24]))
        for value, colour, height in ((bar.second, COLOURS["second"], ROW - 6),
                                      (bar.value, COLOURS["main"], ROW - 10)):
            if value is None or top <= 0:
                continue
            length = max(1.0, span * value / top)
            body.append(f'<rect x="{x_of(LABEL + 2 * PAD, length):.0f}" '
                        f'y="{y + (ROW - height) / 2:.0f}" width="{length:.0f}" '
                        f'height="{height}" fill="{colour}"/>')
        longest = max((v for v in (bar.value, bar.second) if v is not None), default=0.0)
        text = _number(bar.value) if bar.value is not None else "–"
        if bar.second is not None:
            text += f" / {_number(bar.second)}"
        end = LABEL + 3 * PAD + (span * longest / top if top > 0 else 0)
        body.append(_text(x_of(end), y + 14, text))
    return _svg(WIDTH, max(ROW, len(bars) * ROW), body, near)


def cell_level(open_consults: int, within_day: int) -> str:
    """A heat-map cell's colour: no demand, nobody for it, fewer people than cases, enough."""
    if open_consults == 0:
        return "none"
    if within_day == 0:
        return "gap"
    return "thin" if within_day < open_consults else "ok"


def heat_map(rows: Sequence[str], columns: Sequence[str],
             cells: dict[tuple[int, int], tuple[int, int, int]], rtl: bool = False) -> Markup:
    """Rows × columns, each cell 'open · now · within 24 h', coloured by cell_level."""
    rows, columns = list(rows)[:MAX_ROWS], list(columns)
    cell_width = max(56, (WIDTH - LABEL) // max(1, len(columns)))
    width = LABEL + cell_width * len(columns)
    body: list[str] = []
    for j, column in enumerate(columns):
        x = LABEL + j * cell_width + cell_width / 2
        body.append(_text(x if not rtl else width - x, 14, column))
    for i, row in enumerate(rows):
        y = ROW + i * ROW
        body.append(_text(PAD if not rtl else width - PAD, y + 14, row[:24], "start" if not rtl
                          else "end"))
        for j in range(len(columns)):
            open_, now, within_day = cells.get((i, j), (0, 0, 0))
            level = cell_level(open_, within_day)
            x = LABEL + j * cell_width
            if rtl:
                x = width - x - cell_width
            body.append(f'<rect x="{x + 1:.0f}" y="{y + 1}" width="{cell_width - 2}" '
                        f'height="{ROW - 2}" fill="{COLOURS[level]}"/>')
            fill = "#fff" if level in ("gap", "ok") else "#222"
            body.append(_text(x + cell_width / 2, y + 14, f"{open_}·{now}·{within_day}",
                              fill=fill))
    return _svg(width, ROW * (len(rows) + 1), body, "middle")
