"""Server-side SVG for bulletins: a weekly trend chart and a map of areas (no tiles, no JS)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from telehealth.places.models import Area
from telehealth.places.services import outer_rings


def trend_chart(labels: Sequence[str], counts: Sequence[int | None],
                upper: Sequence[float | None] | None = None, title: str = "",
                width: int = 360, height: int = 120,
                expected: Sequence[float | None] | None = None) -> Markup:
    """Bars for the weekly counts, a dashed line for the detector's upper bound and, when
    given, a thin grey one for its expected count (with a seasonal baseline it moves with the
    season, and the bound with it)."""
    pad_left, pad_bottom, pad_top = 28, 18, 8
    shown = [c or 0 for c in counts]
    bounds = [u for u in [*(upper or []), *(expected or [])] if u is not None]
    top = max([1, *shown, *bounds])
    plot_w, plot_h = width - pad_left - 4, height - pad_bottom - pad_top
    step = plot_w / max(1, len(shown))

    def y(value: float) -> float:
        return pad_top + plot_h - plot_h * value / top

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
             f'<title>{escape(title)}</title>',
             f'<line x1="{pad_left}" y1="{y(0):.1f}" x2="{width - 4}" y2="{y(0):.1f}" '
             'stroke="#888"/>',
             f'<text x="{pad_left - 4}" y="{y(top) + 4:.1f}" text-anchor="end" '
             f'font-size="10">{top:g}</text>']
    for i, (label, value) in enumerate(zip(labels, shown, strict=True)):
        x = pad_left + i * step
        parts.append(f'<rect x="{x + 1:.1f}" y="{y(value):.1f}" width="{max(1.0, step - 2):.1f}" '
                     f'height="{y(0) - y(value):.1f}" fill="#3c6e9f"><title>{escape(label)}: '
                     f'{value}</title></rect>')
    if len(labels) > 0:
        parts.append(f'<text x="{pad_left}" y="{height - 4}" font-size="10">'
                     f'{escape(labels[0])}</text>')
        parts.append(f'<text x="{width - 4}" y="{height - 4}" font-size="10" text-anchor="end">'
                     f'{escape(labels[-1])}</text>')
    # The detector's expected count, then its upper bound: a line through the weeks it judged.
    for values, drawing in ((expected, 'class="expected" points="{}" fill="none" '
                                       'stroke="#555" stroke-width="1"'),
                            (upper, 'class="upper" points="{}" fill="none" stroke="#c0392b" '
                                    'stroke-dasharray="4 3" stroke-width="1.5"')):
        points = [f"{pad_left + (i + 0.5) * step:.1f},{y(v):.1f}"
                  for i, v in enumerate(values or []) if v is not None]
        if points:
            parts.append(f'<polyline {drawing.format(" ".join(points))}/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def area_map(areas: Sequence[Area], alerted: set[int], title: str = "",
             width: int = 420, height: int = 320) -> Markup:
    """The areas' stored boundaries, those with an alert this week shaded red."""
    shapes = [(area, outer_rings(area)) for area in areas]
    points = [p for _a, rings in shapes for ring in rings for p in ring]
    if not points:
        return Markup("")
    min_x, max_x = min(p[0] for p in points), max(p[0] for p in points)
    min_y, max_y = min(p[1] for p in points), max(p[1] for p in points)
    # Equirectangular, with longitudes shrunk by the cosine of the middle latitude.
    shrink = math.cos(math.radians((min_y + max_y) / 2))
    span_x, span_y = max(1e-9, (max_x - min_x) * shrink), max(1e-9, max_y - min_y)
    scale = min((width - 20) / span_x, (height - 20) / span_y)

    def project(lon: float, lat: float) -> tuple[float, float]:
        return 10 + (lon - min_x) * shrink * scale, 10 + (max_y - lat) * scale

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="map" role="img" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
             f'<title>{escape(title)}</title>']
    for area, rings in shapes:
        if not rings:
            continue
        path = " ".join("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in
                                        (project(*p) for p in ring)) + " Z" for ring in rings)
        shaded = area.id in alerted
        parts.append(f'<path d="{path}" data-area="{escape(area.code)}" '
                     f'data-alert="{"yes" if shaded else "no"}" '
                     f'fill="{"#e74c3c" if shaded else "#eef2f5"}" stroke="#333" '
                     f'stroke-width="1"><title>{escape(area.name)}</title></path>')
        ring = rings[0]
        cx = sum(p[0] for p in ring[:-1]) / max(1, len(ring) - 1)
        cy = sum(p[1] for p in ring[:-1]) / max(1, len(ring) - 1)
        x, y = project(cx, cy)
        parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="11" text-anchor="middle">'
                     f'{escape(area.name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
