"""Text that comes from a capture file, made safe to show in a terminal.

A pcapng comment (and any other string a capture holds: interface names, section
options) is chosen by whoever wrote the file. Printed as it is, its escape sequences
could clear the screen, recolour or retitle the terminal, write the clipboard (OSC 52)
or fake lines of tcptrace's own output. `shown` is the one place that makes such text
harmless; every terminal renderer passes capture text through it (JSON does not: it
keeps the exact text, and JSON escaping is already safe).

What `shown` does, character by character:

- C0 controls (U+0000-U+001F, newline and tab included: a comment is shown on one
  line), DEL (U+007F) and C1 controls (U+0080-U+009F) become visible escapes:
  `\\n`, `\\r`, `\\t` for those three, `\\xNN` (two lower-case hex digits) for the others,
  so ESC is `\\x1b` and BEL is `\\x07`.
- Invisible format and separator characters (Unicode categories Cf, Zl, Zp, Cs: the
  bidi overrides and isolates U+202A-U+202E and U+2066-U+2069, zero-width spaces and
  joiners, U+FEFF, the line and paragraph separators, lone surrogates) become `\\uNNNN`.
- Everything else is kept, including U+FFFD: the engine already decodes comments as
  lossy UTF-8, so invalid bytes arrive as replacement characters.
- Backslashes are kept as they are: `\\x1b` in the output can be a real ESC or the four
  characters the file held; the JSON output tells them apart.
- Text longer than `limit` characters (counted before escaping) is cut there and
  ends with `… [cut: N characters]`, N the number left out.

The result is plain text, not rich markup: renderers put it in a `Text`, never in a
markup string (or escape it with rich.markup.escape).
"""

from __future__ import annotations

import unicodedata

LIMIT = 4096

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HIDDEN = {"Cf", "Zl", "Zp", "Cs"}


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return _SHORT.get(ch, f"\\x{code:02x}")
    if code > 0x9F and unicodedata.category(ch) in _HIDDEN:
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return ch


def _safe(ch: str) -> bool:
    return 0x20 <= ord(ch) < 0x7F          # the common case, checked without a lookup


def shown(text: str, limit: int = LIMIT) -> str:
    """`text` (from a capture file) as a terminal may show it: see the module doc."""
    cut = len(text) - limit if len(text) > limit else 0
    if cut:
        text = text[:limit]
    if not all(_safe(ch) for ch in text):
        text = "".join(ch if _safe(ch) else _escape(ch) for ch in text)
    return text + f"… [cut: {cut:,} characters]" if cut else text


# -- markup: the SVG and HTML exports -------------------------------------------------------
# Characters XML 1.0 forbids even as references (besides the C0 controls `shown` already
# escapes): the noncharacters U+FFFE and U+FFFF. An SVG holding one is not well-formed.
_NOT_XML = str.maketrans({0xFFFE: "\\ufffe", 0xFFFF: "\\uffff"})
_MARKUP = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                         "'": "&#x27;"})


def markup(text: str, limit: int = LIMIT) -> str:
    """`text` (from a capture file) as the character data or attribute value of an SVG
    or HTML document: `shown` first (so the page shows the same visible escapes as the
    terminal), then `& < > " '` as references. It can never open or close an element,
    an attribute, a comment or a CDATA section."""
    return shown(text, limit).translate(_NOT_XML).translate(_MARKUP)


_SCRIPT_JSON = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                              "\u2028": "\\u2028", "\u2029": "\\u2029"})


def script_json(text: str) -> str:
    """JSON text made safe to embed in `<script type="application/json">`: with `<`,
    `>` and `&` as \\u escapes it cannot hold `</script>` nor `<!--`, and the line and
    paragraph separators are escaped too (older JavaScript parsers end a string on
    them). The page reads it with JSON.parse, which turns them back."""
    return text.translate(_SCRIPT_JSON)
