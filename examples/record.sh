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
transcript backpressure          backpressure --pause 2
transcript buffers               buffers
transcript claims                claims
transcript diagnose              diagnose ../shared/captures-real/zeek_nmap-vsn.pcap
transcript diagnose-race         diagnose captures/close-keepalive-race-by-server.pcapng
transcript close-keepalive-race  close --mode keepalive-race --closer server
