#!/usr/bin/env bash
# Re-record the example transcripts beside this script: real runs on this machine, as
# root (capture and tracefs need it). Each file starts with the command that made it.
# Recorded piped at 80 columns: what a reader of a narrow terminal or a log sees.
set -euo pipefail
cd "$(dirname "$0")/.."
tcptrace=.venv/bin/tcptrace

transcript() {  # transcript NAME ARGS...
    local name=$1; shift
    { echo "# tcptrace $*"; echo; COLUMNS=80 "$tcptrace" "$@" 2>&1; } > "examples/$name.txt"
    echo "examples/$name.txt"
}

transcript close-end             close --mode end
transcript close-destroy         close --mode destroy --pending 200000
transcript close-unread          close --mode unread
transcript close-node-destroy    close --mode destroy --runtime node
transcript close-simultaneous    close --mode simultaneous
transcript replay-table          replay ../shared/captures-real/tcpreplay_test.pcap
transcript replay-ladder         replay ../shared/captures-real/zeek_http_get-gzip.pcap
transcript summary               summary ../shared/captures-real/zeek_http_206_example_b.pcap
transcript replay-one-direction  replay tests/data/shapes/one-direction.pcap
transcript replay-doubled        replay tests/data/shapes/doubled.pcap --close
transcript replay-tunnels        replay tests/data/shapes/vxlan.pcap
transcript backpressure          backpressure --pause 2
transcript buffers               buffers
transcript claims                claims
# Nobody closes on purpose, or the close has a twist (issue 16).
transcript close-kill            close --mode kill
transcript close-kill-unread-node close --mode kill-unread --runtime node
transcript close-linger          close --mode linger
transcript close-unsent          close --mode unsent
transcript close-tw-reuse        close --mode tw-reuse
transcript close-tw-reuse-port   close --mode tw-reuse-port
transcript close-vanish          close --mode vanish
transcript close-vanish-keepalive close --mode vanish-keepalive
transcript close-vanish-return   close --mode vanish-return
transcript close-end-ipv6        close --mode end --ipv6

# Pictures: an SVG ladder rendered to PNG by rsvg-convert, and a workshop page (at its
# RST, segment 8) as headless Chromium shows it.
"$tcptrace" replay captures/close-end.pcapng --svg examples/ladder-close-end.svg --svg-states >/dev/null
rsvg-convert examples/ladder-close-end.svg -o examples/ladder-close-end.png
"$tcptrace" replay captures/close-unread.pcapng --html examples/page-close-unread.html >/dev/null
profile=$(mktemp -d)
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run \
    --user-data-dir="$profile" --window-size=1400,1250 --hide-scrollbars \
    --screenshot="$PWD/examples/page-close-unread.png" \
    "file://$PWD/examples/page-close-unread.html#8" 2>/dev/null
rm -rf "$profile"
echo examples/ladder-close-end.png examples/page-close-unread.png
transcript diagnose              diagnose ../shared/captures-real/zeek_nmap-vsn.pcap
transcript diagnose-race         diagnose captures/close-keepalive-race-by-server.pcapng
transcript close-keepalive-race  close --mode keepalive-race --closer server
