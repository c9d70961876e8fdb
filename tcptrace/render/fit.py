"""Tables that fit the console's width without cutting anything.

Rich's own squeeze ellipsizes cells ("192.168.7…", "fin (1 simultaneou…"). Here each
column says how it may give way: a rigid column (numbers, states, codes) keeps its
longest word on one line and only wraps at spaces (its header too); a flexible one
(endpoints, explanations) wraps and folds over lines. When even that is too wide, the
least important columns are left out, and the caption says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich import box
from rich.cells import cell_len
from rich.table import Table

from tcptrace.render.console import ascii_only

if TYPE_CHECKING:
    from rich.console import Console, JustifyMethod

FLEX_MIN = 15           # narrowest a flexible column gets: an IPv4 address


_ASCII = str.maketrans({"µ": "u", "·": ".", "•": "-", "→": "->", "←": "<-", "—": "-",
                        "–": "-", "…": "...", "─": "-", "┴": "+", "×": "x", "≥": ">=",
                        "≤": "<="})


def plain(text: str, ascii: bool) -> str:
    """`text` as an ASCII-only output can carry it: known glyphs spelled out, anything
    else as '?'. Unchanged when not `ascii`."""
    if not ascii:
        return text
    return text.translate(_ASCII).encode("ascii", "replace").decode("ascii")


@dataclass
class Col:
    header: str
    justify: JustifyMethod = "left"
    flex: bool = False      # may wrap and fold anywhere (endpoints, prose)
    drop: int = 0           # 0: always shown; otherwise the highest is left out first
    split: str = ""         # a flexible cell too wide breaks before its last `split`
    whole: bool = False     # a rigid column whose cells never wrap ("3.76 MiB")


def _longest_word(text: str) -> int:
    return max((cell_len(w) for w in text.split()), default=0)


def _widths(cols: Sequence[Col], rows: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
    """(comfortable, tightest) width of each column's content, padding excluded."""
    out = []
    for i, col in enumerate(cols):
        cells = [row[i] for row in rows]
        full = max([cell_len(col.header), *(cell_len(c) for c in cells)])
        if col.flex:
            out.append((full, min(full, max(FLEX_MIN, _longest_word(col.header)))))
        else:
            words = [cell_len(c) if col.whole else _longest_word(c) for c in cells]
            tight = max([_longest_word(col.header), *words])
            out.append((full, tight))
    return out


def _fit(cols: Sequence[Col], sizes: list[tuple[int, int]], room: int) -> list[int] | None:
    """Rigid columns' widths within `room`, or None if even the tightest layout is too
    wide. A rigid column is tightened (to its longest word; those that save the most
    first) while a flexible one would otherwise have to wrap: a header over two lines
    reads better than an endpoint folded in the middle."""
    fixed = [full for full, _ in sizes]
    flex = [i for i, col in enumerate(cols) if col.flex]
    rigid = [i for i, col in enumerate(cols) if not col.flex]

    def need(flex_size: int) -> int:
        return sum(sizes[i][flex_size] for i in flex) + sum(fixed[i] for i in rigid)

    for saving in sorted({sizes[i][0] - sizes[i][1] for i in rigid}, reverse=True):
        if need(0) <= room:
            break
        for i in rigid:
            if sizes[i][0] - sizes[i][1] == saving:
                fixed[i] = sizes[i][1]
    if need(1) > room:
        return None
    _share(cols, sizes, fixed, room - sum(fixed[i] for i in rigid))
    return fixed


def _share(cols, sizes, fixed: list[int], room: int) -> None:
    """Gives flexible columns `room` between them: each its full width if it fits, the
    narrowest first, the rest split evenly (never below its tightest)."""
    flex = sorted((i for i, col in enumerate(cols) if col.flex), key=lambda i: sizes[i][0])
    for n, i in enumerate(flex):
        fair = room // (len(flex) - n)
        fixed[i] = max(sizes[i][1], min(sizes[i][0], fair))
        room -= fixed[i]


def _choose(cols, rows, width: int) -> tuple[list[int], list[int]]:
    """The columns kept (indexes) and each one's width."""
    keep = list(range(len(cols)))
    while True:
        kept = [cols[i] for i in keep]
        sizes = _widths(kept, [[r[i] for i in keep] for r in rows])
        room = width - (3 * len(keep) + 1)          # padding 1+1 and a border each
        fixed = _fit(kept, sizes, room)
        droppable = [i for i in keep if cols[i].drop]
        if fixed is None and droppable:
            keep.remove(max(droppable, key=lambda i: cols[i].drop))
            continue
        if fixed is None:
            # Nothing left to drop: rigid columns at their tightest, flexible ones share
            # what is left (endpoints then break before the port, or fold).
            fixed = [tight for _, tight in sizes]
            rigid = sum(w for col, w in zip(kept, fixed, strict=True) if not col.flex)
            _share(kept, [(full, 4) for full, _ in sizes], fixed, room - rigid)
        return keep, fixed


def fitted_table(console: Console, cols: Sequence[Col], rows: Sequence[Sequence[str]], *,
                 title: str | None = None, caption: str | None = None,
                 width: int | None = None) -> Table:
    """A table of `rows` (strings) laid out for `width` (default: the console's)."""
    keep, fixed = _choose(cols, rows, width or console.width)
    left_out = [cols[i].header for i in range(len(cols)) if i not in keep]
    if left_out:
        note = f"not shown at this width: {', '.join(left_out)} (--json has all)"
        caption = f"{caption}\n{note}" if caption else note
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left",
                  box=box.ASCII if ascii_only(console) else box.HEAVY_HEAD)
    for i, w in zip(keep, fixed, strict=True):
        # fold, never ellipsis: if rich must squeeze further, characters move, none go.
        table.add_column(cols[i].header, justify=cols[i].justify, width=w, overflow="fold")
    for row in rows:
        table.add_row(*(_broken(row[i], cols[i], w) for i, w in zip(keep, fixed, strict=True)))
    return table


def _broken(cell: str, col: Col, width: int) -> str:
    """`192.168.72.14:3254` in 15 columns reads better as two lines broken before the
    port than folded inside it."""
    if not col.split or cell_len(cell) <= width or col.split not in cell:
        return cell
    head, _, tail = cell.rpartition(col.split)
    return f"{head}\n{col.split}{tail}"
