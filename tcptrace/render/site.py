"""`tcptrace site`: a folder of captures (the workshop library) published as a static
site in one step: one workshop page per capture (html_page), a copy of each capture
for Wireshark, and an index built from the folder's README.md.

The README is file text like any other: it is shown through untrusted.markup, and only
a small subset of Markdown is turned into markup afterwards (headings, paragraphs,
fenced code, tables, `code` and **bold**), on the escaped text, so nothing in it can
become an element or an attribute of its own. The index has no script; its
Content-Security-Policy allows its one stylesheet, by hash.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tcptrace import replay as rp
from tcptrace.errors import TcptraceError
from tcptrace.render.html_page import asset, html_page, policy
from tcptrace.render.ladder import conclusion_lines
from tcptrace.render.ladder_doc import replay_doc
from tcptrace.untrusted import markup, shown

CAPTURE_SUFFIXES = (".pcap", ".pcapng")


@dataclass
class Published:
    """What one capture became: its page (or why it has none) and reader warnings."""

    name: str
    page: str | None = None
    summary: str = ""
    warnings: list[str] = field(default_factory=list)


def write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise TcptraceError(f"cannot write {shown(str(path))}: {exc.strerror}") from None


def _publish_one(capture: Path, out: Path) -> Published:
    done = Published(capture.name)
    try:
        listing = rp.list_connections(capture, 0)
    except TcptraceError as exc:
        done.summary = f"no page: {exc}"
        done.warnings.append(str(exc))
        return done
    count = len(listing.rows)
    index = rp.first_close(listing) if count > 1 else 0
    if index != 0:
        listing = rp.list_connections(capture, index)
    kept = rp.kept_stream(listing, index)
    views, verdict = rp.analyse(kept)
    doc = replay_doc(str(capture), index, count, kept.conn, views, verdict, count > 1)
    done.page = capture.name + ".html"
    try:
        shutil.copyfile(capture, out / capture.name)
    except OSError as exc:
        raise TcptraceError(f"cannot copy {shown(str(capture))} to {shown(str(out))}: "
                            f"{exc.strerror}") from None
    write_text(out / done.page, html_page(doc, links=(("index.html", "all captures"),
                                                       (capture.name, "the capture file"))))
    where = f", stream {index} of {count}" if count > 1 else ""
    how = conclusion_lines(verdict)[0].removeprefix("How it ended: ")
    done.summary = (f"{how}; final: client {verdict.final['client']}, server "
                    f"{verdict.final['server']} ({len(views):,} segments{where})")
    done.warnings = [f"{capture.name}: {w}" for w in listing.warnings]
    return done


def publish(source: Path, out: Path) -> list[Published]:
    """Every capture in `source` (sorted by name) as a page in `out`, and out/index.html."""
    captures = sorted(p for p in source.iterdir()
                      if p.suffix in CAPTURE_SUFFIXES and p.is_file())
    if not captures:
        raise TcptraceError(f"{shown(str(source))} holds no .pcap or .pcapng file")
    if out.resolve() == source.resolve():
        raise TcptraceError("--out must be another folder than the captures' own")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TcptraceError(f"cannot create {shown(str(out))}: {exc.strerror}") from None
    done = [_publish_one(c, out) for c in captures]
    readme = source / "README.md"
    text = readme.read_text("utf-8", errors="replace") if readme.is_file() else ""
    write_text(out / "index.html", index_page(source.name, done, text))
    return done


# -- the index -----------------------------------------------------------------------------

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_HEADING = re.compile(r"(#{1,4}) (.*)")


def _inline(text: str, pages: dict[str, str]) -> str:
    """A line of README text as markup: escaped first, then `code` and **bold**; a code
    span naming a published capture links to its page."""
    def code(m: re.Match[str]) -> str:
        page = pages.get(m.group(1))
        inner = f"<code>{m.group(1)}</code>"
        return f'<a href="{markup(quote(page))}">{inner}</a>' if page else inner

    return _BOLD.sub(r"<strong>\1</strong>", _CODE.sub(code, markup(text)))


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str], pages: dict[str, str]) -> str:
    head, body = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    out = ["<table><thead><tr>" + "".join(f"<th>{_inline(c, pages)}</th>" for c in head)
           + "</tr></thead><tbody>"]
    out += ["<tr>" + "".join(f"<td>{_inline(c, pages)}</td>" for c in row) + "</tr>"
            for row in body]
    return "".join(out) + "</tbody></table>"


def _block_ends(line: str) -> bool:
    """Whether `line` ends a paragraph: a blank line, a fence, a heading or a table."""
    return not line.strip() or line.startswith(("```", "|")) or bool(_HEADING.match(line))


def readme_html(text: str, pages: dict[str, str]) -> str:
    """The README's Markdown subset as markup (see the module doc)."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")),
                       len(lines))
            out.append("<pre>" + "\n".join(markup(x) for x in lines[i + 1:end]) + "</pre>")
            i = end + 1
        elif m := _HEADING.match(line):
            level = len(m.group(1)) + 1        # the page's own title is the h1
            out.append(f"<h{level}>{_inline(m.group(2), pages)}</h{level}>")
            i += 1
        elif line.startswith("|"):
            end = next((j for j in range(i + 1, len(lines)) if not lines[j].startswith("|")),
                       len(lines))
            out.append(_table(lines[i:end], pages))
            i = end
        elif line.strip():
            end = next((j for j in range(i + 1, len(lines)) if _block_ends(lines[j])),
                       len(lines))
            out.append("<p>" + " ".join(_inline(x, pages) for x in lines[i:end]) + "</p>")
            i = end
        else:
            i += 1
    return "\n".join(out)


def index_page(name: str, done: list[Published], readme: str) -> str:
    css = asset("site.css")
    pages = {p.name: p.page for p in done if p.page}
    rows = "".join(
        "<tr><td>" + (f'<a href="{markup(quote(p.page))}">{markup(p.name)}</a>' if p.page
                      else markup(p.name)) + f"</td><td>{markup(p.summary)}</td></tr>"
        for p in done)
    title = f"tcptrace workshop: {shown(name)}"
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            '<meta http-equiv="Content-Security-Policy" content="'
            f"{policy(css, None)}\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{markup(title)}</title><style>{css}</style></head>\n"
            f"<body><h1>{markup(title)}</h1>"
            "<p>Every capture as a page you can step through: arrow keys or space, "
            "<kbd>f</kbd> for the next FIN or RST, or click a segment. The pages work "
            "offline, from this folder.</p>"
            "<table class=\"pages\"><thead><tr><th>capture</th><th>how it closed "
            f"(tcptrace)</th></tr></thead><tbody>{rows}</tbody></table>\n"
            f'<section class="readme">{readme_html(readme, pages)}</section>\n'
            "<footer>Made by tcptrace site.</footer></body></html>\n")
