"""The command line itself: start-up cost and help, without privileges."""

from conftest import run_tcptrace


def imported_modules(*args):
    code, _, err = run_tcptrace(*args, python_flags=("-X", "importtime"), timeout=60)
    assert code == 0, err
    return [line.split("|")[-1].strip() for line in err.splitlines()
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


def test_unknown_option_is_a_usage_error_not_a_traceback(tcptrace):
    code, _, err = tcptrace("close", "--mode", "explode")
    assert code == 2
    assert "Traceback" not in err and "explode" in err
