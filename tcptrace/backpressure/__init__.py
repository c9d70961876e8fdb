"""`tcptrace backpressure`: a writer outruns a paused reader; every buffer layer, watched.

Entry points for the CLI (each imports what it needs, nothing heavy at import time):

    run_backpressure(opts) -> BackpressureResult      live run (root: capture + netns)
    backpressure_json(result) -> dict                 tcptrace/1 document
    save_backpressure_capture(result, path)           pcapng with per-segment comments

Modules: scenario (live recording) -> wire + analysis (pure) -> jsonout; the terminal
output, chart and SVG are in tcptrace/render/backpressure*.py. The command line is
`tcptrace backpressure` (cli.py).
"""

from __future__ import annotations

from tcptrace.backpressure.result import BackpressureOptions, BackpressureResult


def run_backpressure(opts: BackpressureOptions) -> BackpressureResult:
    from tcptrace.backpressure.analysis import analyse
    from tcptrace.backpressure.scenario import record
    from tcptrace.engine import decode_frames

    raw = record(opts)
    return analyse(raw, decode_frames(raw.frames))


def backpressure_json(result: BackpressureResult) -> dict:
    from tcptrace.render.backpressure_json import backpressure_json as to_json

    return to_json(result)


def save_backpressure_capture(result: BackpressureResult, path: str) -> None:
    from tcptrace.pcapwrite import write_capture

    comments = [result.frame_notes.get(i, []) for i in range(1, len(result.frames) + 1)]
    write_capture(path, result.frames, comments)


__all__ = ["BackpressureOptions", "BackpressureResult", "run_backpressure",
           "backpressure_json", "save_backpressure_capture"]
