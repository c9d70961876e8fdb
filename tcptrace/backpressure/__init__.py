"""`tcptrace backpressure`: a writer outruns a paused reader; every buffer layer, watched.

Entry points for the CLI (each imports what it needs, nothing heavy at import time):

    run_backpressure(opts) -> BackpressureResult      live run (root: capture + netns)
    render_backpressure(result, console)              chart, events, explanation, verdict
    backpressure_json(result) -> dict                 tcptrace/1 document
    backpressure_svg(result) -> str                   the chart as SVG
    save_backpressure_capture(result, path)           pcapng with per-segment comments

Modules: scenario (live recording) -> wire + analysis (pure) -> chart/svg/render/jsonout.
The command line is `tcptrace backpressure` (cli.py).
"""

from __future__ import annotations

from tcptrace.backpressure.result import BackpressureOptions, BackpressureResult


def run_backpressure(opts: BackpressureOptions) -> BackpressureResult:
    from tcptrace.backpressure.analysis import analyse
    from tcptrace.backpressure.scenario import record
    from tcptrace.engine import decode_frames

    raw = record(opts)
    return analyse(raw, decode_frames(raw.frames))


def render_backpressure(result: BackpressureResult, console) -> None:
    from tcptrace.backpressure.render import render

    render(result, console)


def backpressure_json(result: BackpressureResult) -> dict:
    from tcptrace.backpressure.jsonout import backpressure_json as to_json

    return to_json(result)


def backpressure_svg(result: BackpressureResult) -> str:
    from tcptrace.backpressure.svg import backpressure_svg as to_svg

    return to_svg(result)


def save_backpressure_capture(result: BackpressureResult, path: str) -> None:
    from tcptrace.pcapwrite import write_capture

    comments = [result.frame_notes.get(i, []) for i in range(1, len(result.frames) + 1)]
    write_capture(path, result.frames, comments)


__all__ = ["BackpressureOptions", "BackpressureResult", "run_backpressure",
           "render_backpressure", "backpressure_json", "backpressure_svg",
           "save_backpressure_capture"]
