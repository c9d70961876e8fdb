#!/usr/bin/env bash
# Re-record the workshop library: one pcapng per scenario, with each segment's
# explanation as a packet comment. Needs CAP_NET_RAW (run as root). Add a line here
# when `tcptrace close` gains a mode, and a row to captures/README.md and to
# SCENARIOS in tests/test_captures.py.
set -euo pipefail
cd "$(dirname "$0")/.."
tcptrace=.venv/bin/tcptrace

record() {      # record NAME CLOSE-ARGS...
    local name=$1; shift
    "$tcptrace" close "$@" --save "captures/$name.pcapng" >/dev/null
    echo "captures/$name.pcapng  <-  tcptrace close $* --save captures/$name.pcapng"
}

record close-end                    --mode end
record close-close                  --mode close
record close-destroy                --mode destroy
record close-reset                  --mode reset
record close-unread                 --mode unread
record close-half-close             --mode half-close
record close-simultaneous           --mode simultaneous
record close-end-by-server          --mode end --closer server
record close-half-close-by-server   --mode half-close --closer server
record close-destroy-node           --mode destroy --runtime node
record close-unread-node            --mode unread --runtime node
record close-end-pending-200000     --mode end --pending 200000
record close-destroy-pending-200000 --mode destroy --pending 200000
# Nobody closes on purpose, or the close has a twist (issue 16); --ipv6 versions.
record close-kill                   --mode kill
record close-kill-unread            --mode kill-unread
record close-linger                 --mode linger
record close-linger-in-time         --mode linger-in-time
record close-unsent                 --mode unsent
record close-tw-reuse               --mode tw-reuse
record close-tw-reuse-by-server     --mode tw-reuse --closer server
record close-tw-reuse-port          --mode tw-reuse-port
record close-vanish                 --mode vanish
record close-vanish-keepalive       --mode vanish-keepalive
record close-vanish-return          --mode vanish-return
record close-end-ipv6               --mode end --ipv6
record close-unread-ipv6            --mode unread --ipv6
record close-vanish-return-ipv6     --mode vanish-return --ipv6
record close-keepalive-race-by-server --mode keepalive-race --closer server
# One capture per `tcptrace diagnose` finding (scripted; some in a network namespace).
.venv/bin/python captures/record_findings.py
