"""The command line. Only argument handling lives here: each command calls the edge
(capture, file reading), the analysis and a renderer. Heavy modules (scapy above all)
are imported inside the commands that need them, so `--help` stays fast."""

from __future__ import annotations

import json
import os
import sys

import click

from tcptrace import __version__
from tcptrace.errors import TcptraceError

CLOSE_MODES = ("end", "close", "destroy", "reset", "unread", "half-close", "simultaneous",
               "keepalive-race")


def _emit_json(doc: dict) -> None:
    # One write: json.dump to a stream makes millions of small writes on big documents.
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def _save_capture(path: str, frames, notes_by_frame: dict[int, list[str]]) -> None:
    from tcptrace.pcapwrite import write_capture

    comments = [notes_by_frame.get(i, []) for i in range(1, len(frames) + 1)]
    write_capture(path, frames, comments)


def _configure_output(ctx: click.Context, param: click.Parameter, value):
    """--width and --ascii set the output for the whole command, before it runs."""
    from tcptrace.render import console

    # Both are set on every invocation, so nothing carries over to the next command run
    # in the same process (tests run many).
    if param.name == "width":
        console.OUTPUT.width = value
    else:
        console.OUTPUT.ascii = bool(value)
    return value


def output_options(command):
    """--width N and --ascii, on every command that prints for people."""
    command = click.option("--width", type=click.IntRange(40, 1000), metavar="N",
                           expose_value=False, is_eager=True, callback=_configure_output,
                           help="Lay the output out for N columns (default: the "
                                "terminal's; piped: $COLUMNS, else 120).")(command)
    return click.option("--ascii", is_flag=True, expose_value=False, is_eager=True,
                        callback=_configure_output,
                        help="Draw with ASCII only (automatic when the output encoding "
                             "cannot carry box and arrow characters).")(command)


def ladder_export_options(command):
    """--svg FILE, --svg-states and --html FILE, on the commands that draw one ladder."""
    command = click.option("--html", type=click.Path(dir_okay=False), metavar="FILE",
                           help="Write a self-contained HTML page (ladder, segment list, "
                                "state diagram, step keys; no network).")(command)
    command = click.option("--svg-states", is_flag=True,
                           help="With --svg: add the RFC 9293 state diagram with the path "
                                "each side took.")(command)
    return click.option("--svg", type=click.Path(dir_okay=False), metavar="FILE",
                        help="Write the ladder as a standalone SVG picture (for "
                             "slides).")(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tcptrace")
def cli() -> None:
    """Show what TCP really does when a connection is closed, on the wire and in the kernel.

    \b
    tcptrace close --mode end       graceful close (FIN), live on loopback
    tcptrace close --mode destroy   abortive close (RST), live on loopback
    tcptrace replay FILE            the same annotated ladder from a pcap/pcapng file
    """


# Nobody closes on purpose, or the close has a twist (tcptrace/live/ending_modes.py,
# vanish.py).
ENDING_MODES = ("kill", "kill-unread", "linger", "linger-in-time", "unsent", "tw-reuse",
                "tw-reuse-port", "vanish", "vanish-keepalive", "vanish-return")
ALL_CLOSE_MODES = CLOSE_MODES + ENDING_MODES


@cli.command()
@output_options
@click.option("--mode", type=click.Choice(ALL_CLOSE_MODES), default="end", show_default=True,
              help="end: shutdown(SHUT_WR). close: plain close(). destroy/reset: SO_LINGER "
                   "{on,0} + close(). unread: close() with unread data. half-close: data "
                   "keeps flowing after a FIN. simultaneous: both sides at once.")
@click.option("--closer", type=click.Choice(("client", "server")), default="client",
              show_default=True, help="Which side makes the closing call.")
@click.option("--runtime", type=click.Choice(("python", "node")), default="python",
              show_default=True, help="python: socket syscalls. node: the real Node.js net module.")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Server port on 127.0.0.1 (default: one the OS picks).")
@click.option("--pending", type=click.IntRange(0, 1 << 30), default=0, metavar="BYTES",
              help="Bytes the closer queues, unread by the peer, before it closes.")
@click.option("--no-kernel", is_flag=True,
              help="Do not read kernel tracepoints (states from ss only).")
@click.option("--json", "as_json", is_flag=True, help="Print the tcptrace/1 JSON document.")
@click.option("--save", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write the capture: pcapng with each segment's explanation as a "
                   "comment, or classic pcap if FILE ends in .pcap.")
@click.option("--no-legend", is_flag=True, help="No legend of glyphs and tags under the ladder.")
@click.option("--ipv6", is_flag=True,
              help="IPv6: server ::1, client ::2, in a network namespace of the run's own.")
@ladder_export_options
def close(mode: str, closer: str, runtime: str, port: int, pending: int, no_kernel: bool,
          as_json: bool, save: str | None, no_legend: bool, ipv6: bool, svg: str | None,
          svg_states: bool, html: str | None) -> None:
    """Open a real loopback connection, close it, and show the annotated ladder.

    \b
    When nobody closes on purpose:
      kill, kill-unread        the closer's process is killed (SIGKILL)
      linger, linger-in-time   SO_LINGER {on, 2} with data unsent to a paused reader
      unsent                   close() while the send queue still holds data
      tw-reuse                 a new connection on a 4-tuple in TIME-WAIT
      tw-reuse-port            connect() picking a port in TIME-WAIT: tcp_tw_reuse
      vanish                   the server's host loses power; TCP_USER_TIMEOUT
      vanish-keepalive         the same with an idle client and keepalive
      vanish-return            the host comes back without the connection: RST
    """
    from tcptrace.live.close_run import run_close
    from tcptrace.render.jsonout import close_json

    _check_exports(svg, svg_states)
    run = run_close(mode, port=port, pending=pending, closer=closer, runtime=runtime,
                    kernel=not no_kernel, ipv6=ipv6)
    from tcptrace.diagnose import json_record, live_findings, marked

    found = live_findings(run.connection)
    run.views = marked(run.views, found)   # the proving segments tagged, in every output
    if svg or html:
        from tcptrace.render.ladder_doc import close_doc

        _write_exports(close_doc(run), svg, svg_states, html)
    if save:
        _save_capture(save, run.frames,
                      {v.segment.frame: [v.note] for v in run.all_views if v.segment})
    if as_json:
        doc = close_json(run)
        doc["findings"] = [json_record(f) for f in found]    # what diagnose finds in it
        _emit_json(doc)
        return
    from tcptrace.render.console import make_console
    from tcptrace.render.diagnose import finding_sentences
    from tcptrace.render.ladder import render_close

    console = make_console()
    render_close(console, run, legend=not no_legend, findings=finding_sentences(found, save))
    if save:
        console.print(f"Capture saved to {save}", markup=False)


@cli.command()
@output_options
@click.argument("file", metavar="FILE")
@click.option("--stream", type=int, metavar="N",
              help="Show connection N (numbered from 0, as in the table).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the tcptrace/1 JSON document (every connection, or --stream N's).")
@click.option("--step", is_flag=True,
              help="Workshop mode: one segment per key (Enter/space next, b back, q quit).")
@click.option("--speed", type=click.FloatRange(0, min_open=True), metavar="X",
              help="Play the ladder back with the capture's own timing, X times faster "
                   "(waits capped at 2 s).")
@click.option("--close", "only_close", is_flag=True,
              help="Show only the close: from 3 segments before the first FIN or RST.")
@click.option("--no-legend", is_flag=True,
              help="No legend of glyphs, tags and conn_state codes.")
@click.option("--vxlan-port", "vxlan_ports", type=click.IntRange(1, 65535), multiple=True,
              metavar="PORT", help="Also read UDP to PORT as VXLAN (4789 and 8472 always are).")
@ladder_export_options
def replay(file: str, stream: int | None, as_json: bool, step: bool,
           speed: float | None, only_close: bool, no_legend: bool,
           vxlan_ports: tuple[int, ...], svg: str | None, svg_states: bool,
           html: str | None) -> None:
    """Show how the TCP connections in a pcap/pcapng FILE closed (no privileges needed).

    One connection: its annotated ladder. Several: a table; pick one with --stream N.
    A damaged file still shows what could be read, with a warning on stderr and exit
    status 2.
    """
    from tcptrace import replay as rp
    from tcptrace.render import stepper
    from tcptrace.render.console import make_console
    from tcptrace.render.progress import ReadProgress
    from tcptrace.render.table import render_listing, render_replay, replay_header

    if sum((as_json, step, speed is not None)) > 1:
        raise TcptraceError("choose one of --json, --step and --speed")
    if only_close and (as_json or step):
        raise TcptraceError("--close shortens the ladder (and --speed); --json has every "
                            "segment with its frame number, --step jumps with f")
    _check_exports(svg, svg_states)
    if (svg or html) and as_json and stream is None:
        raise TcptraceError("--svg and --html show one connection: with --json, add "
                            "--stream N")
    if step:
        stepper.require_terminal()      # before reading what may be a big file
    err = make_console(stderr=True)
    if as_json and stream is None:      # everything: streamed as the engine hands it over
        with ReadProgress(err, "reading") as progress:
            warnings, skipped = _replay_json_all(file, progress, vxlan_ports)
    else:
        with ReadProgress(err, "reading") as progress:
            listing = rp.list_connections(file, stream or 0, progress, vxlan_ports)
        warnings, count, skipped = listing.warnings, len(listing.rows), listing.skipped
        if stream is None and count > 1 and (step or speed):
            raise TcptraceError(f"{file} has {count} TCP connections: pick one with "
                                f"--stream N (0..{count - 1})")
        if svg or html:
            _replay_exports(file, listing, stream, svg, svg_states, html, vxlan_ports)
        if stream is None and count > 1:
            render_listing(make_console(), listing, legend=not no_legend)
        else:
            index = stream or 0
            kept = rp.kept_stream(listing, index)
            conn = kept.conn
            views, verdict = rp.analyse(kept)
            if not as_json:     # the ladder, the slides and the playback tag the proof
                from tcptrace.diagnose import findings_of, marked

                found = findings_of(kept.raw)
                views = marked(views, found)
            if as_json:
                from tcptrace.render.jsonout import replay_json

                _emit_json(replay_json(file, [(index, conn, views, verdict)], warnings))
            elif step:
                stepper.run_stepper(make_console(), conn, views, verdict)
            elif speed:
                from tcptrace.render.ladder import close_part, glyphs_for

                console = make_console()
                console.print(replay_header(file, index, count, conn, glyphs_for(console)))
                views = close_part(views)[0] if only_close else views
                stepper.play(console, conn, views, verdict, speed)
            else:
                from tcptrace.render.diagnose import finding_sentences

                render_replay(make_console(), file, index, count, conn, views, verdict,
                              legend=not no_legend, only_close=only_close,
                              findings=finding_sentences(found, file))
    _note_skipped(skipped)
    _warn(warnings)


def _check_exports(svg: str | None, svg_states: bool) -> None:
    if svg_states and not svg:
        raise TcptraceError("--svg-states adds the state diagram to --svg FILE: give both")


def _write_exports(doc, svg: str | None, svg_states: bool, html: str | None) -> None:
    """The SVG and the page of one ladder (render/ladder_doc.LadderDoc), each file named
    with its size on stderr (stdout may be JSON)."""
    from tcptrace.render.html_page import html_page
    from tcptrace.render.svg_ladder import ladder_svg

    for path, make in ((svg, lambda: ladder_svg(doc.rows, doc.header, doc.comments,
                                                 states=svg_states)),
                       (html, lambda: html_page(doc))):
        if path:
            text = make()
            _write_text(path, text)
            click.echo(f"tcptrace: wrote {path} ({len(text.encode()):,} bytes)", err=True)


def _replay_exports(file: str, listing, stream: int | None, svg: str | None,
                    svg_states: bool, html: str | None, vxlan_ports: tuple[int, ...]) -> None:
    """--svg/--html of a replay: connection --stream N, the only one, or else the first
    that closed with a FIN or RST (which may take a second pass over the file)."""
    from tcptrace import replay as rp
    from tcptrace.diagnose import findings_of, marked
    from tcptrace.render.ladder_doc import replay_doc
    from tcptrace.untrusted import shown

    count, index = len(listing.rows), stream or 0
    picked = stream is None and count > 1
    if picked:
        index = rp.first_close(listing)
        if listing.kept is None or listing.kept.stream != index:
            if not os.path.isfile(file):
                raise TcptraceError(f"{shown(file)} has {count} TCP connections and can be "
                                    "read only once: pick one with --stream N")
            listing = rp.list_connections(file, index, vxlan_ports=vxlan_ports)
        click.echo(f"tcptrace: --svg/--html show stream {index}, the first of its {count} "
                   "connections that closed with a FIN or RST (--stream N for another)",
                   err=True)
    kept = rp.kept_stream(listing, index)
    views, verdict = rp.analyse(kept)
    views = marked(views, findings_of(kept.raw))    # the proving segments, as in the ladder
    _write_exports(replay_doc(file, index, count, kept.conn, views, verdict, picked), svg,
                   svg_states, html)


def _warn(warnings: list[str]) -> None:
    """The first reader warnings on stderr, then exit status 2: output was partial."""
    for warning in warnings[:5]:
        click.echo(f"tcptrace: warning: {warning}", err=True)
    if len(warnings) > 5:
        click.echo(f"tcptrace: warning: {len(warnings) - 5} more (see --json)", err=True)
    if warnings:
        sys.exit(2)


def _note_skipped(skipped: list[tuple[str, int]]) -> None:
    """Frames that may hold TCP the engine could not reach, once, on stderr (the output
    is complete for everything else: no change to the exit status)."""
    from tcptrace.replay import skipped_text

    if skipped:
        click.echo(f"tcptrace: warning: {skipped_text(skipped)}", err=True)


def _replay_json_all(file: str, progress, vxlan_ports: tuple[int, ...] = ()
                     ) -> tuple[list[str], list[tuple[str, int]]]:
    """`replay --json` of a whole capture, written as the engine hands each connection
    over, so memory does not grow with the file; returns the reader's warnings and the
    frames skipped."""
    from tcptrace import replay as rp
    from tcptrace.engine import Scan
    from tcptrace.render.jsonout import replay_json_stream

    scan = Scan(file, keep="all", progress=progress, vxlan_ports=vxlan_ports)
    shown = ((s.stream, s.conn, *rp.analyse(s)) for s in scan)
    replay_json_stream(sys.stdout, file, shown, lambda: scan.warnings)
    scan.require_connections()
    return scan.warnings, scan.skipped


@cli.command()
@output_options
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True,
              help="JSON Lines: one connection per line, with the tcptrace/1 verdict.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV: a header, then one connection per row.")
@click.option("--linger", type=click.FloatRange(0), default=60.0, show_default=True,
              metavar="SECONDS", help="Capture time after which a connection whose sides "
                                      "are both CLOSED or TIME-WAIT is summarised and forgotten.")
@click.option("--top", type=click.IntRange(1, 10_000), default=10, show_default=True,
              metavar="N", help="Rows in the RST, TIME-WAIT and top-talker tables.")
@click.option("--vxlan-port", "vxlan_ports", type=click.IntRange(1, 65535), multiple=True,
              metavar="PORT", help="Also read UDP to PORT as VXLAN (4789 and 8472 always are).")
def summary(file: str, as_json: bool, as_csv: bool, linger: float, top: int,
            vxlan_ports: tuple[int, ...]) -> None:
    """How every TCP connection in a pcap/pcapng FILE ended, in one streaming pass.

    FILE may be - (standard input) or a FIFO: `tcpdump -w - | tcptrace summary -`.
    Tables for people; --json or --csv, one connection per line, for programs (in the
    order connections are done with). Memory follows the connections open at once, not
    the file size. A damaged file still gives what could be read, with a warning on
    stderr and exit status 2.
    """
    from contextlib import nullcontext

    from tcptrace.engine import Scan
    from tcptrace.render.summary import CsvWriter, Totals

    if as_json and as_csv:
        raise TcptraceError("choose one of --json and --csv")
    if linger != linger:                # click's FloatRange lets nan through
        raise TcptraceError("--linger takes a number of seconds (inf: never forget)")
    machine = as_json or as_csv
    progress = None
    # No bar in a log, nor on the terminal the lines stream to (they would garble it);
    # rich is not even imported then.
    if sys.stderr.isatty() and not (machine and sys.stdout.isatty()):
        from tcptrace.render.console import make_console
        from tcptrace.render.progress import ReadProgress

        progress = ReadProgress(make_console(stderr=True), "summarising")
    run = Scan(file, linger=linger, progress=progress, vxlan_ports=vxlan_ports)
    with progress or nullcontext():
        if as_json:
            sys.stdout.flush()
            write = sys.stdout.buffer.write    # the engine's bytes, as they are
            for lines in run.json_lines():
                write(lines)
            sys.stdout.buffer.flush()
        elif as_csv:
            writer = CsvWriter(sys.stdout)
            for s in run:
                writer.write(s)
        else:
            totals = Totals(top)
            for s in run:
                totals.add(s)
            totals.findings = dict(run.tally()[0])
    run.require_connections()
    if not machine:
        from tcptrace.render.console import make_console
        from tcptrace.render.summary import render_tables

        render_tables(make_console(), file, totals)
    _note_skipped(run.skipped)
    _warn(run.warnings)


@cli.command()
@output_options
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True,
              help="JSON Lines: one finding per line (tcptrace/1), then refused and "
                   "unanswered attempts per server port.")
@click.option("--idle", type=click.FloatRange(0), default=1.0, show_default=True,
              metavar="SECONDS", help="Quiet time before a FIN that makes a FIN, data, "
                                      "RST a keep-alive race (else a write after close).")
@click.option("--close-wait", type=click.FloatRange(0), default=5.0, show_default=True,
              metavar="SECONDS", help="CLOSE-WAIT held this long, to the end of the "
                                      "capture, is a leak.")
@click.option("--zero-window", type=click.FloatRange(0), default=1.0, show_default=True,
              metavar="SECONDS", help="A zero window held this long while the peer "
                                      "probes is a stall.")
@click.option("--top", type=click.IntRange(1, 1000), default=3, show_default=True,
              metavar="N", help="Worst examples shown per kind.")
def diagnose(file: str, as_json: bool, idle: float, close_wait: float, zero_window: float,
             top: int) -> None:
    """Name the close pathologies in a pcap/pcapng FILE, with the frames that prove them.

    Keep-alive races, writes after the peer closed, aborts with unread data, CLOSE-WAIT
    leaks, FINs never acknowledged, zero-window stalls, refused and unanswered SYNs,
    TIME-WAIT assassination and 4-tuple reuse: grouped by kind with counts, what each
    usually means and what to change, and the command to look closer. FILE may be -.
    """
    from tcptrace import diagnose as dg

    if any(x != x for x in (idle, close_wait, zero_window)):
        raise TcptraceError("thresholds take a number of seconds")
    rules = dg.Rules(idle, close_wait, zero_window)
    each = None
    if as_json:
        def each(f: dg.Finding) -> None:
            sys.stdout.write(json.dumps(dg.json_record(f)) + "\n")
    progress = None
    if sys.stderr.isatty() and not (as_json and sys.stdout.isatty()):
        from tcptrace.render.console import make_console
        from tcptrace.render.progress import ReadProgress

        progress = ReadProgress(make_console(stderr=True), "diagnosing")
    from contextlib import nullcontext

    with progress or nullcontext():
        result = dg.diagnose(file, rules, top, progress, each)
    if as_json:
        for p in result.ports:
            sys.stdout.write(json.dumps(dg.port_record(p)) + "\n")
    else:
        from tcptrace.render.console import make_console
        from tcptrace.render.diagnose import render_diagnosis

        render_diagnosis(make_console(), result)
    _warn(result.warnings)


@cli.command()
@output_options
@click.option("--json", "as_json", is_flag=True, help="Print the claims as tcptrace/1 JSON.")
def claims(as_json: bool) -> None:
    """Check common interview claims about closing sockets against this machine's wire."""
    import shutil

    from tcptrace.claims import judge, required_runs
    from tcptrace.live.close_run import run_close
    from tcptrace.render.claims import render_claims
    from tcptrace.render.console import make_console
    from tcptrace.render.jsonout import claims_json

    keys = required_runs()
    if shutil.which("node") is None:
        click.echo("tcptrace: node is not on PATH: the Node.js claims are left out", err=True)
        keys = [k for k in keys if k.runtime != "node"]
    status = make_console(stderr=True)
    runs = {}
    for n, key in enumerate(keys, 1):
        status.print(f"[dim]run {n}/{len(keys)}: {key.label()}[/dim]")
        runs[key] = run_close(key.mode, pending=key.pending, closer=key.closer,
                              runtime=key.runtime)
    verdicts = judge(runs)
    if as_json:
        _emit_json(claims_json(verdicts))
        return
    render_claims(verdicts, make_console())


def _write_text(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise TcptraceError(f"cannot write {path}: {exc.strerror}") from None


@cli.command()
@output_options
@click.option("--runtime", type=click.Choice(("python", "node")), default="python",
              show_default=True, help="python: asyncio streams. node: the real net module.")
@click.option("--bytes", "nbytes", type=click.IntRange(1, 1 << 31), default=8 << 20,
              show_default=True, metavar="BYTES", help="How much the writer sends.")
@click.option("--pause", type=click.FloatRange(0, 600), default=3.0, show_default=True,
              metavar="SECONDS", help="How long the reader stops reading.")
@click.option("--sndbuf", type=click.IntRange(1, 1 << 30), metavar="BYTES",
              help="Set SO_SNDBUF on the writer (Linux doubles it; autotuning off).")
@click.option("--rcvbuf", type=click.IntRange(1, 1 << 30), metavar="BYTES",
              help="Set SO_RCVBUF on the reader (Linux doubles it; autotuning off).")
@click.option("--ignore-backpressure", is_flag=True,
              help="Keep writing when write() says stop: watch the application buffer grow.")
@click.option("--interval", type=click.FloatRange(0.005, 1.0), default=0.025,
              show_default=True, metavar="SECONDS", help="Time between ss samples.")
@click.option("--netns", type=click.Choice(("auto", "private", "host")), default="auto",
              show_default=True,
              help="Run in a private network namespace so kernel counters are this run's.")
@click.option("--json", "as_json", is_flag=True, help="Print the tcptrace/1 JSON document.")
@click.option("--svg", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the buffer-fill chart as SVG.")
@click.option("--save", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the capture (pcapng with comments, or .pcap).")
def backpressure(runtime, nbytes, pause, sndbuf, rcvbuf, ignore_backpressure, interval, netns,
                 as_json, svg, save) -> None:
    """A writer outruns a paused reader: every buffer layer filling, zero windows,
    persist probes, write() returning false, and the drain."""
    from tcptrace.backpressure import (
        BackpressureOptions,
        backpressure_json,
        run_backpressure,
        save_backpressure_capture,
    )

    result = run_backpressure(BackpressureOptions(
        runtime=runtime, bytes=nbytes, pause=pause, sndbuf=sndbuf, rcvbuf=rcvbuf,
        ignore_backpressure=ignore_backpressure, interval=interval, netns=netns))
    if save:
        save_backpressure_capture(result, save)
    if svg:
        from tcptrace.render.backpressure_svg import backpressure_svg

        _write_text(svg, backpressure_svg(result))
    if as_json:
        _emit_json(backpressure_json(result))
        return
    from tcptrace.render.backpressure import render
    from tcptrace.render.console import make_console

    render(result, make_console())


@cli.command()
@output_options
@click.option("--json", "as_json", is_flag=True, help="Print the layers as JSON.")
def buffers(as_json: bool) -> None:
    """The buffer layers on this machine, top to bottom, with real values and their source."""
    from tcptrace.buffers import gather_buffers

    report = gather_buffers()
    if as_json:
        from tcptrace.render.jsonout import buffers_json

        _emit_json(buffers_json(report))
        return
    from tcptrace.render.buffers import render_buffers
    from tcptrace.render.console import make_console

    render_buffers(report, make_console())


@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False), metavar="DIR")
@click.option("--out", required=True, type=click.Path(file_okay=False), metavar="OUT",
              help="The folder to write the site into (created if needed).")
def site(directory: str, out: str) -> None:
    """Publish a folder of captures (the workshop library) as a static site.

    One self-contained page per capture (as replay --html), a copy of each capture, and
    OUT/index.html built from DIR/README.md. Opens offline; copy OUT anywhere.
    """
    from pathlib import Path

    from tcptrace.render.site import publish

    done = publish(Path(directory), Path(out))
    warnings = [w for p in done for w in p.warnings]
    pages = sum(1 for p in done if p.page)
    click.echo(f"tcptrace: wrote {pages} page{'s' if pages != 1 else ''} and "
               f"{os.path.join(out, 'index.html')}", err=True)
    _warn(warnings)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:      # click's word for Ctrl-C
        click.echo("tcptrace: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except TcptraceError as exc:
        click.echo(f"tcptrace: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:           # raised outside click's own handling
        click.echo("tcptrace: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # the promise: no traceback for the user
        if os.environ.get("TCPTRACE_DEBUG"):
            raise
        click.echo(f"tcptrace: internal error: {type(exc).__name__}: {exc} "
                   "(set TCPTRACE_DEBUG=1 for the traceback)", err=True)
        sys.exit(70)
