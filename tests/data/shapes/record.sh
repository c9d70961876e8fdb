#!/usr/bin/env bash
# Records the real captures of issue 14 (captures that do not look like loopback) in
# network namespaces of its own, removed on exit, also on failure. Needs root,
# iproute2, tcpdump and python3; sends traffic only inside those namespaces.
#
#   one-direction.pcap       tcpdump -Q out on the client's end of a veth pair: only the
#                            client's segments (on lo every frame is outgoing)
#   one-direction-both.pcap  the same connection, both directions (the truth to compare)
#   server-first.pcap      the same, tcpdump -Q out on the client, in a connection the
#                            server closes first: the server's FIN is proved only by
#                            the client's ACK of one more number
#   server-first-both.pcap   that connection, both directions (the truth to compare)
#   doubled.pcap             tcpdump -i any in a namespace bridging client and server:
#                            every frame twice, on the port in and on the port out
#   single.pcap              the same connection on one bridge port only: once each
#   vxlan.pcap               tcpdump -i any on the client: two connections over VXLAN
#                            (VNI 42 on port 4789, VNI 7 on port 4790), each seen plain
#                            on the VXLAN device and encapsulated on the underlay veth
#
# `record.sh NAME` records only that group: one-direction, server-first, doubled or
# vxlan (the others stay as they are).
set -euo pipefail
cd "$(dirname "$0")"
ONLY=${1:-all}
want() { [ "$ONLY" = all ] || [ "$ONLY" = "$1" ]; }
P="tcptrace-shapes-$$"
A="$P-a" B="$P-b" BR="$P-br"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for ns in "$A" "$B" "$BR"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -f ./*.err
}
trap cleanup EXIT

ns() { ip netns exec "$@"; }

capture() {     # capture NS FILE TCPDUMP-ARGS...: starts tcpdump, returns once it listens
    local where=$1 file=$2; shift 2
    ip netns exec "$where" tcpdump -U --immediate-mode -s 262144 -w "$file" "$@" \
        2>"$file.err" &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q "listening on" "$file.err" && return; sleep 0.05; done
    echo "tcpdump did not start: $(cat "$file.err")" >&2; return 1
}

stop_captures() {   # the last frames reach the files before tcpdump is stopped
    sleep 0.5
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait "${PIDS[@]}" 2>/dev/null || true
    PIDS=()
}

exchange() {    # exchange SERVER-NS CLIENT-NS ADDR PORT [SERVER-ROLE CLIENT-ROLE]: one
                # connection, closed by the client unless the roles say otherwise
    local server=$1 client=$2 addr=$3 port=$4 srole=${5:-server} crole=${6:-client}
    coproc SERVER { ns "$server" python3 peer.py "$srole" "$addr" "$port"; }
    local spid=$SERVER_PID ready
    read -r ready <&"${SERVER[0]}"
    [ "$ready" = ready ]
    ns "$client" python3 peer.py "$crole" "$addr" "$port"
    wait "$spid"
}

pair() {        # pair NS1 IF1 ADDR1 NS2 IF2 ADDR2: a veth pair between two namespaces
    ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
    ip -n "$1" addr add "$3/24" dev "$2"; ip -n "$1" link set "$2" up
    ip -n "$4" addr add "$6/24" dev "$5"; ip -n "$4" link set "$5" up
}

for n in "$A" "$B" "$BR"; do ip netns add "$n"; ip -n "$n" link set lo up; done

# One direction: the client's outgoing frames only, and both for comparison.
if want one-direction; then
    pair "$A" a0 10.9.0.1 "$B" b0 10.9.0.2
    capture "$A" one-direction.pcap -i a0 -Q out tcp
    capture "$A" one-direction-both.pcap -i a0 tcp
    exchange "$B" "$A" 10.9.0.2 8080
    stop_captures
fi

# The same, in a connection the server closes first.
if want server-first; then
    pair "$A" a3 10.9.3.1 "$B" b3 10.9.3.2
    capture "$A" server-first.pcap -i a3 -Q out tcp
    capture "$A" server-first-both.pcap -i a3 tcp
    exchange "$B" "$A" 10.9.3.2 8084 server-first client-last
    stop_captures
fi

# Doubled: a bridge between client and server; -i any sees each frame on both ports.
if want doubled; then
    ip -n "$BR" link add br0 type bridge
    ip link add a1 netns "$A" type veth peer name pa netns "$BR"
    ip link add b1 netns "$B" type veth peer name pb netns "$BR"
    for port in pa pb; do ip -n "$BR" link set "$port" master br0 up; done
    ip -n "$BR" link set br0 up
    ip -n "$A" addr add 10.9.1.1/24 dev a1; ip -n "$A" link set a1 up
    ip -n "$B" addr add 10.9.1.2/24 dev b1; ip -n "$B" link set b1 up
    capture "$BR" doubled.pcap -i any tcp
    capture "$BR" single.pcap -i pa tcp
    exchange "$B" "$A" 10.9.1.2 8081
    stop_captures
fi

# VXLAN over a veth underlay: VNI 42 on the IANA port, VNI 7 on a port of our choosing.
if want vxlan; then
    pair "$A" a2 10.9.2.1 "$B" b2 10.9.2.2
    for side in "$A 10.9.2.1 10.9.2.2 1" "$B 10.9.2.2 10.9.2.1 2"; do
        set -- $side
        ip -n "$1" link add vx42 type vxlan id 42 local "$2" remote "$3" dstport 4789
        ip -n "$1" link add vx7 type vxlan id 7 local "$2" remote "$3" dstport 4790
        ip -n "$1" addr add "192.168.42.$4/24" dev vx42; ip -n "$1" link set vx42 up
        ip -n "$1" addr add "192.168.7.$4/24" dev vx7; ip -n "$1" link set vx7 up
    done
    capture "$A" vxlan.pcap -i any
    exchange "$B" "$A" 192.168.42.2 8082
    exchange "$B" "$A" 192.168.7.2 8083
    stop_captures
fi
ls -l ./*.pcap
