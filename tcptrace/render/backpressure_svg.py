"""The same chart as an SVG document (pure: returns text; no dependency).

One panel per layer (application buffer, send queue, receive queue, advertised window),
each with its own byte scale, sharing the time axis; event markers as vertical lines
across all panels, labelled at the top. Elements carry ids/classes (`series-app_buffer`,
`event write_false`...) so the file is easy to check or restyle.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from tcptrace.backpressure.analysis import mib
from tcptrace.backpressure.result import BackpressureResult
from tcptrace.render.backpressure_chart import MARKERS, layer_series, time_span

COLOURS = {"app_buffer": "#d62728", "send_q": "#ff7f0e", "recv_q": "#1f77b4",
           "window": "#2ca02c"}
EVENT_COLOURS = {"write_false": "#d62728", "drain": "#2ca02c", "pause": "#9467bd",
                 "resume": "#9467bd", "zero_window": "#d62728", "window_probe": "#bcbd22",
                 "window_update": "#2ca02c", "window_full": "#ff7f0e",
                 "data_resumed": "#17becf"}
SHOWN = ("write_false", "drain", "pause", "resume", "zero_window", "window_probe",
         "window_update")


def _step_path(points: list[tuple[float, float]]) -> str:
    """A step line: each value holds until the next point."""
    if not points:
        return ""
    parts = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for x1, y1 in points[1:]:
        parts.append(f"H{x1:.1f}V{y1:.1f}")
    return " ".join(parts)


def backpressure_svg(result: BackpressureResult, width: int = 960) -> str:
    left, right, top, panel_h, gap = 220, 30, 70, 90, 22
    series = layer_series(result)
    span = time_span(result)
    plot_w = width - left - right
    height = top + len(series) * (panel_h + gap) + 40 + 16 * len(SHOWN)

    def x(t: float) -> float:
        return left + max(0.0, min(t, span)) / span * plot_w

    o = result.options
    title = (f"tcptrace backpressure: {o.runtime}, {o.bytes:,} bytes, reader paused "
             f"{o.pause:g} s" + (", backpressure ignored" if o.ignore_backpressure else ""))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f"<title>{escape(title)}</title>",
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="20" font-size="15" font-weight="bold">{escape(title)}</text>']
    for i, s in enumerate(series):
        y0 = top + i * (panel_h + gap)
        pts = [(t, v) for t, v in s.points if v is not None and t >= 0]
        peak = max((v for _, v in pts), default=0) or 1
        scaled = [(x(t), y0 + panel_h - v / peak * panel_h) for t, v in pts]
        colour = COLOURS[s.key]
        out.append(f'<g id="panel-{s.key}">')
        out.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel_h}" '
                   f'fill="#fafafa" stroke="#ccc"/>')
        out.append(f'<text x="{left - 8}" y="{y0 + 16}" text-anchor="end" '
                   f'font-weight="bold">{escape(s.label)}</text>')
        out.append(f'<text x="{left - 8}" y="{y0 + 32}" text-anchor="end" fill="#666">'
                   f'peak {escape(mib(peak if pts else 0))}</text>')
        if s.note:
            out.append(f'<text x="{left - 8}" y="{y0 + 48}" text-anchor="end" fill="#666" '
                       f'font-size="10">{escape(s.note)}</text>')
        out.append(f'<path id="series-{s.key}" class="series" d="{_step_path(scaled)}" '
                   f'fill="none" stroke="{colour}" stroke-width="1.5"/>')
        out.append("</g>")
    bottom = top + len(series) * (panel_h + gap) - gap
    out.append('<g id="events">')
    for n, e in enumerate(ev for ev in result.events if ev.kind in SHOWN):
        ex = x(e.t - result.t0)
        symbol, _, _, legend = MARKERS[e.kind]
        colour = EVENT_COLOURS[e.kind]
        tip = f"+{e.t - result.t0:.3f} s {legend}: {e.detail}"
        out.append(f'<g class="event {e.kind}"><title>{escape(tip)}</title>'
                   f'<line x1="{ex:.1f}" y1="{top - 12}" x2="{ex:.1f}" y2="{bottom}" '
                   f'stroke="{colour}" stroke-width="1" stroke-dasharray="3,2" opacity="0.7"/>'
                   f'<text x="{ex:.1f}" y="{top - 16 - 12 * (n % 2)}" text-anchor="middle" '
                   f'fill="{colour}" font-weight="bold">{escape(symbol)}</text></g>')
    out.append("</g>")
    out.append('<g id="axis">')
    for i in range(6):
        t = span * i / 5
        out.append(f'<line x1="{x(t):.1f}" y1="{bottom}" x2="{x(t):.1f}" y2="{bottom + 5}" '
                   f'stroke="#333"/><text x="{x(t):.1f}" y="{bottom + 18}" '
                   f'text-anchor="middle">{t:.2f} s</text>')
    present = [k for k in SHOWN if any(e.kind == k for e in result.events)]
    for i, k in enumerate(present):
        out.append(f'<text x="{left}" y="{bottom + 40 + 16 * i}" fill="{EVENT_COLOURS[k]}">'
                   f'{escape(MARKERS[k][0])} <tspan fill="#333">{escape(MARKERS[k][3])}</tspan>'
                   f'</text>')
    out.append("</g></svg>")
    return "\n".join(out) + "\n"
