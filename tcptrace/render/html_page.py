"""One connection as a self-contained HTML page: the SVG ladder, the segment list, the
RFC 9293 state diagram with both sides' current states lit, and a step mode (keys,
clicks) with the selected segment's explanation, tags, kernel events, `ss` snapshots
and pcapng comments in a side panel. Opens from a USB stick in any current browser: CSS,
script and pictures are inline, nothing is fetched.

Untrusted text (pcapng comments, the file name) reaches the page only as escaped
character data (untrusted.markup) or inside the JSON data block (untrusted.script_json,
so it cannot close its <script>), from which the script sets it with textContent. The
Content-Security-Policy allows exactly our one stylesheet and our one script, by their
SHA-256 hashes, and nothing else: no network at all (default-src 'none'), and no script
that is not ours would run even if an escape were ever missed. Hashes rather than
'unsafe-inline', because 'unsafe-inline' would also allow an injected one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from importlib import resources
from urllib.parse import quote
from xml.sax.saxutils import escape

from tcptrace.ladder_model import APP, KERNEL, PACKET, SS, LadderRow, segment_steps
from tcptrace.render.ladder import TAG_MEANINGS
from tcptrace.render.ladder_doc import LadderDoc
from tcptrace.render.state_diagram import state_diagram_svg
from tcptrace.render.svg_ladder import arrow_label, ladder_svg
from tcptrace.untrusted import markup, script_json, shown

KEYS = ("<kbd>→</kbd> <kbd>↓</kbd> <kbd>space</kbd> next · <kbd>←</kbd> <kbd>↑</kbd> back · "
        "<kbd>Home</kbd> <kbd>End</kbd> first, last · <kbd>f</kbd> <kbd>F</kbd> next, "
        "previous FIN or RST · <kbd>p</kbd> projector · click a segment to select it")


def asset(name: str) -> str:
    return resources.files("tcptrace.render").joinpath("assets", name).read_text("utf-8")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def policy(css: str, script: str | None) -> str:
    """Our one stylesheet and our one script (none: no script at all), nothing else."""
    scripts = _hash(script) if script is not None else "'none'"
    return (f"default-src 'none'; style-src {_hash(css)}; script-src {scripts}; "
            "img-src 'none'; base-uri 'none'; form-action 'none'")


def _around(row: LadderRow) -> str:
    what = {SS: "ss", KERNEL: "kernel", APP: f"{row.side} app"}[row.kind]
    states = ""
    if row.kind == SS:
        states = f" client {row.client}, server {row.server};"
    return f"{row.t * 1000:.3f} ms  {what}:{states} {row.note}"


def page_data(doc: LadderDoc) -> dict:
    """What the script needs for the panel, segment by segment (comments already made
    visible by untrusted.shown; the page sets them as text)."""
    comments = [c for r, c in zip(doc.rows, doc.comments, strict=True) if r.kind == PACKET]
    segments = []
    for step in segment_steps(doc.rows):
        row, view = step.row, step.row.view
        assert view is not None
        segments.append({
            "frame": row.frame, "ms": f"{row.t * 1000:.3f}", "from": view.sender,
            "arrow": arrow_label(view), "close": bool({"FIN", "RST"} & set(view.flags)),
            "client": row.client, "server": row.server, "note": row.note,
            "tags": [f"{t}: {TAG_MEANINGS.get(t, '')}".rstrip(": ") for t in view.tags],
            "around": [_around(r) for r in step.around],
            "comments": [shown(c) for c in comments[step.index]]})
    return {"segments": segments}


def _table(doc: LadderDoc) -> str:
    out = ['<table><thead><tr><th>#</th><th>frame</th><th>ms</th><th>client</th>'
           '<th>segment</th><th>server</th><th>why</th></tr></thead><tbody>']
    n = 0
    for row, comments in zip(doc.rows, doc.comments, strict=True):
        if row.kind != PACKET or row.view is None:
            continue
        v = row.view
        classes = [c for c, flag in (("close", "FIN"), ("close rst", "RST")) if flag in v.flags]
        arrow = f"{arrow_label(v)} →" if v.sender == "client" else f"← {arrow_label(v)}"
        tags = f' <span class="tags">[{escape(", ".join(v.tags))}]</span>' if v.tags else ""
        extra = "".join(f'<span class="comment">comment: {markup(c)}</span>' for c in comments)
        out.append(f'<tr data-i="{n}" class="{" ".join(classes)}"><td class="num">{n + 1}</td>'
                   f'<td class="num">{row.frame or ""}</td><td class="num">{row.t * 1000:.3f}'
                   f'</td><td>{escape(row.client)}</td><td class="arrow">{escape(arrow)}</td>'
                   f'<td>{escape(row.server)}</td><td class="why">{escape(row.note)}{tags}'
                   f'{extra}</td></tr>')
        n += 1
    out.append("</tbody></table>")
    return "".join(out)


def _panel(doc: LadderDoc) -> str:
    lists = "".join(f'<section hidden><h3>{title}</h3><ul id="{key}"></ul></section>'
                    for key, title in (("p-tags", "tags"), ("p-around", "kernel, ss and "
                                       "application, before the next segment"),
                                       ("p-comments", "pcapng comments")))
    return ('<aside id="panel" aria-live="polite"><h2><span id="p-index"></span> · '
            '<span id="p-frame"></span> · <span id="p-time"></span></h2>'
            '<div id="p-arrow"></div><div class="pstates">'
            '<div class="client"><span>client, after it</span><strong id="p-client"></strong>'
            '</div><div class="server"><span>server, after it</span>'
            '<strong id="p-server"></strong></div></div><p id="p-note"></p>'
            f'{lists}{state_diagram_svg(doc.rows, interactive=True)}</aside>')


def html_page(doc: LadderDoc, links: Sequence[tuple[str, str]] = ()) -> str:
    """The page; `links`: (relative URL, words) for its header, e.g. the site's index."""
    css, script = asset("page.css"), asset("page.js")
    nav = "".join(f'<a href="{markup(quote(href))}">{escape(words)}</a> '
                  for href, words in links)
    h = doc.header
    data = script_json(json.dumps(page_data(doc), ensure_ascii=False, separators=(",", ":")))
    lines = "".join(f"<p>{markup(line)}</p>" for line in doc.lines)
    conclusion = "".join(f"<li>{escape(s)}</li>" for s in h.conclusion)
    svg = ladder_svg(doc.rows, h, notes=False)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy(css, script)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{markup(h.title)}</title>\n<style>{css}</style></head>\n"
        f'<body><header><nav>{nav}</nav><h1>{markup(h.title)}</h1>'
        f"<p>client {escape(h.client)} → server {escape(h.server)}</p>{lines}"
        f'<ul class="conclusion">{conclusion}</ul>'
        '<div class="toolbar"><button id="projector" type="button" aria-pressed="false">'
        'Projector (p)</button><button id="print" type="button">Print</button>'
        f'<span class="keys">{KEYS}</span></div></header>\n'
        f'<main><div id="ladder" tabindex="0" aria-label="ladder diagram">{svg}</div>'
        f"{_panel(doc)}</main>\n"
        f'<div id="segments-wrap"><h2>Segments</h2><div id="segments" tabindex="0">'
        f"{_table(doc)}</div></div>\n"
        "<footer>Made by tcptrace. Text read from the capture (comments, names) is shown "
        "with control and invisible characters as visible escapes.</footer>\n"
        f'<script type="application/json" id="ladder-data">{data}</script>\n'
        f"<script>{script}</script></body></html>\n")
