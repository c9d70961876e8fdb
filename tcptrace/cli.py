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

CLOSE_MODES = ("end", "close", "destroy", "reset", "unread", "half-close", "simultaneous")


def _emit_json(doc: dict) -> None:
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _save_capture(path: str, frames, notes_by_frame: dict[int, list[str]]) -> None:
    from tcptrace.pcapwrite import write_capture

    comments = [notes_by_frame.get(i, []) for i in range(1, len(frames) + 1)]
    write_capture(path, frames, comments)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tcptrace")
def cli() -> None:
    """Show what TCP really does when a connection is closed, on the wire and in the kernel.

    \b
    tcptrace close --mode end       graceful close (FIN), live on loopback
    tcptrace close --mode destroy   abortive close (RST), live on loopback
    tcptrace replay FILE            the same annotated ladder from a pcap/pcapng file
    """


@cli.command()
@click.option("--mode", type=click.Choice(CLOSE_MODES), default="end", show_default=True,
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
def close(mode: str, closer: str, runtime: str, port: int, pending: int, no_kernel: bool,
          as_json: bool, save: str | None) -> None:
    """Open a real loopback connection, close it, and show the annotated ladder."""
    from tcptrace.live import run_close
    from tcptrace.render.jsonout import close_json

    run = run_close(mode, port=port, pending=pending, closer=closer, runtime=runtime,
                    kernel=not no_kernel)
    if save:
        _save_capture(save, run.frames,
                      {v.segment.frame: [v.note] for v in run.views if v.segment})
    if as_json:
        _emit_json(close_json(run))
        return
    from tcptrace.render.ladder import make_console, render_close

    console = make_console()
    render_close(console, run)
    if save:
        console.print(f"• Capture saved to {save}")


def _write_text(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise TcptraceError(f"cannot write {path}: {exc.strerror}") from None


@cli.command()
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
    from tcptrace.backpressure import (BackpressureOptions, backpressure_json,
                                       backpressure_svg, render_backpressure, run_backpressure,
                                       save_backpressure_capture)

    result = run_backpressure(BackpressureOptions(
        runtime=runtime, bytes=nbytes, pause=pause, sndbuf=sndbuf, rcvbuf=rcvbuf,
        ignore_backpressure=ignore_backpressure, interval=interval, netns=netns))
    if save:
        save_backpressure_capture(result, save)
    if svg:
        _write_text(svg, backpressure_svg(result))
    if as_json:
        _emit_json(backpressure_json(result))
        return
    from tcptrace.render.ladder import make_console

    render_backpressure(result, make_console())


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the layers as JSON.")
def buffers(as_json: bool) -> None:
    """The buffer layers on this machine, top to bottom, with real values and their source."""
    from tcptrace.buffers import buffers_json, gather_buffers

    report = gather_buffers()
    if as_json:
        _emit_json(buffers_json(report))
        return
    from tcptrace.render.ladder import make_console
    from tcptrace.render_buffers import render_buffers

    render_buffers(report, make_console())


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except TcptraceError as exc:
        click.echo(f"tcptrace: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("tcptrace: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # `tcptrace ... | head`: the reader left; not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the promise is: no traceback for the user
        if os.environ.get("TCPTRACE_DEBUG"):
            raise
        click.echo(f"tcptrace: internal error: {type(exc).__name__}: {exc} "
                   "(set TCPTRACE_DEBUG=1 for the traceback)", err=True)
        sys.exit(70)
