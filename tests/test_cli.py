"""The command line itself: start-up cost and help, without privileges."""

import subprocess
import sys

TCPTRACE = [sys.executable, "-m", "tcptrace"]


def imported_modules(*args):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "tcptrace", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [line.split("|")[-1].strip() for line in proc.stderr.splitlines()
            if line.startswith("import time:")]


def test_help_imports_no_scapy():
    mods = imported_modules("--help")
    assert "tcptrace.cli" in mods
    assert not [m for m in mods if m.startswith("scapy")]


def test_every_command_help_imports_no_scapy():
    from tcptrace.cli import cli

    assert {"close", "backpressure", "buffers"} <= set(cli.commands)
    for command in cli.commands:
        assert not [m for m in imported_modules(command, "--help") if m.startswith("scapy")]


def test_unknown_option_is_a_usage_error_not_a_traceback():
    proc = subprocess.run([*TCPTRACE, "close", "--mode", "explode"], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "explode" in proc.stderr
