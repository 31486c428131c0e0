#!/usr/bin/env bash
# capture-fixtures.sh - regenerate the pcap fixtures used by the packet
# decoder's golden and differential (tshark) tests.
#
# Usage (as root, Linux with network namespaces):
#   bash scripts/capture-fixtures.sh test/fixtures/pcap
#
# Builds three private network namespaces
#   slf-cli (10.77.1.2, fd77:1::2) -- slf-gw (router) -- slf-srv (10.77.2.2, fd77:2::2)
# runs real tools between them (curl, openssl, dig/dnsmasq, ping, iperf3,
# socat, ngtcp2's gtlsclient/gtlsserver, python sockets), captures each case
# with tcpdump on the client's veth (Ethernet link type, -s 0 unless stated),
# and writes the packets no tool here can produce with scapy (crafted_*).
# Only 10.77.0.0/16 and fd77::/16 inside the slf-* namespaces are used.
# Every process is bounded by `timeout`, and everything started is torn down
# on exit (trap), as are leftovers of earlier runs (slf-* namespaces).
#
# Debian packages used: tcpdump tshark iproute2 ethtool iputils-ping curl
# openssl dnsmasq-base dnsutils iperf3 socat python3 python3-scapy
# ngtcp2-client ngtcp2-server
set -euo pipefail

OUT_ARG=${1:-test/fixtures/pcap}
mkdir -p "$OUT_ARG"
OUT=$(cd "$OUT_ARG" && pwd)
PY=/usr/bin/python3            # Debian's python3 (has scapy), not a pyenv shim

NS_CLI=slf-cli NS_GW=slf-gw NS_SRV=slf-srv
CLI4=10.77.1.2 GW4A=10.77.1.1 GW4B=10.77.2.1 SRV4=10.77.2.2
CLI6=fd77:1::2 GW6A=fd77:1::1 GW6B=fd77:2::1 SRV6=fd77:2::2
MAC_CLI=02:77:01:00:00:02 MAC_GWA=02:77:01:00:00:01
MAC_GWB=02:77:02:00:00:01 MAC_SRV=02:77:02:00:00:02
CAP_IF=c0                      # client's veth, inside slf-cli

log() { printf '[capture-fixtures] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
for t in ip tcpdump tshark ethtool ping curl openssl dnsmasq dig iperf3 socat gtlsclient gtlsserver ss timeout; do
  command -v "$t" >/dev/null || die "missing tool: $t"
done
"$PY" -c 'import scapy.all' 2>/dev/null || die "python3-scapy missing"

WORK=$(mktemp -d /tmp/slf-fixtures.XXXXXX)
PIDS=()

# ---------------------------------------------------------------- cleanup
kill_ns_procs() {               # processes left inside one of our namespaces
  local ns=$1 p
  for p in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
}
teardown_netns() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^slf-' || true); do
    kill_ns_procs "$ns"
    ip netns del "$ns" 2>/dev/null || true
  done
}
cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  teardown_netns
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------- topology
in_cli() { ip netns exec "$NS_CLI" "$@"; }
in_gw()  { ip netns exec "$NS_GW" "$@"; }
in_srv() { ip netns exec "$NS_SRV" "$@"; }

# start a bounded background process in a namespace; pid in BG_PID
bg_ns() {  # ns seconds cmd...
  local ns=$1 secs=$2; shift 2
  ip netns exec "$ns" timeout "$secs" "$@" &
  BG_PID=$!
  PIDS+=("$BG_PID")
}
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

wait_listen() {  # ns t|u port
  local i
  for i in $(seq 50); do
    if ip netns exec "$1" ss -Hln"$2" "sport = :$3" | grep -q .; then return 0; fi
    sleep 0.1
  done
  die "nothing listening on $2/$3 in $1"
}

setup_topology() {
  local ns
  for ns in $NS_CLI $NS_GW $NS_SRV; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sh -c '
      for k in all default; do
        sysctl -qw net.ipv6.conf.$k.accept_dad=0
        sysctl -qw net.ipv6.conf.$k.router_solicitations=0
        sysctl -qw net.ipv6.conf.$k.accept_ra=0
      done
      sysctl -qw net.ipv4.icmp_ratelimit=0
      sysctl -qw net.ipv6.icmp.ratelimit=0'
  done
  ip link add name c0 address $MAC_CLI netns $NS_CLI type veth \
     peer name g1 address $MAC_GWA netns $NS_GW
  ip link add name g2 address $MAC_GWB netns $NS_GW type veth \
     peer name s0 address $MAC_SRV netns $NS_SRV

  in_gw sysctl -qw net.ipv4.ip_forward=1
  in_gw sysctl -qw net.ipv6.conf.all.forwarding=1

  ip -n $NS_CLI addr add $CLI4/24 dev c0
  ip -n $NS_CLI addr add $CLI6/64 dev c0 nodad
  ip -n $NS_GW addr add $GW4A/24 dev g1
  ip -n $NS_GW addr add $GW6A/64 dev g1 nodad
  ip -n $NS_GW addr add $GW4B/24 dev g2
  ip -n $NS_GW addr add $GW6B/64 dev g2 nodad
  ip -n $NS_SRV addr add $SRV4/24 dev s0
  ip -n $NS_SRV addr add $SRV6/64 dev s0 nodad

  # wire-like frames: no checksum offload, no TSO/GSO super-packets, no GRO
  local pair
  for pair in $NS_CLI:c0 $NS_GW:g1 $NS_GW:g2 $NS_SRV:s0; do
    ip netns exec "${pair%%:*}" ethtool -K "${pair#*:}" \
      tx off rx off sg off tso off gso off gro off >/dev/null 2>&1 || true
    ip -n "${pair%%:*}" link set "${pair#*:}" up
  done

  ip -n $NS_CLI route add default via $GW4A
  ip -n $NS_CLI -6 route add default via $GW6A
  ip -n $NS_SRV route add default via $GW4B
  ip -n $NS_SRV -6 route add default via $GW6B

  # let link-up chatter (MLD reports for solicited-node groups) die down and
  # warm the neighbour caches so the captures below are not polluted
  sleep 2
  in_cli ping -c 1 -W 2 $SRV4 >/dev/null
  in_cli ping -6 -c 1 -W 2 $SRV6 >/dev/null
}

# ---------------------------------------------------------------- capture
CAP_PID= CAP_FILE= CAP_NAME=
cap_start() {  # name count filter [snaplen]
  CAP_NAME=$1
  local count=$2 filter=$3 snap=${4:-0}
  CAP_FILE=$WORK/$CAP_NAME.pcap
  rm -f "$CAP_FILE"
  ip netns exec $NS_CLI timeout -s INT 30 \
    tcpdump -i $CAP_IF -n -U -Z root -s "$snap" -c "$count" -w "$CAP_FILE" "$filter" \
    2>"$WORK/$CAP_NAME.tcpdump.log" &
  CAP_PID=$!
  PIDS+=("$CAP_PID")
  local i
  for i in $(seq 50); do
    grep -q 'listening on' "$WORK/$CAP_NAME.tcpdump.log" 2>/dev/null && return 0
    sleep 0.1
  done
  die "tcpdump did not start for $CAP_NAME"
}
cap_stop() {  # [seconds to wait for -c to be reached]
  local secs=${1:-2} i
  for i in $(seq $((secs * 10))); do
    kill -0 "$CAP_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -INT "$CAP_PID" 2>/dev/null || true
  wait "$CAP_PID" 2>/dev/null || true
  local n
  n=$(tcpdump -r "$CAP_FILE" -n 2>/dev/null | wc -l)
  [ "$n" -gt 0 ] || die "$CAP_NAME: no packets captured"
  cp "$CAP_FILE" "$OUT/$CAP_NAME.pcap"
  log "$CAP_NAME: $n packets"
}

# ------------------------------------------------------------------ cases
http_cases() {
  mkdir -p "$WORK/www"
  printf '<html><body>sluice fixture</body></html>\n' >"$WORK/www/index.html"
  bg_ns $NS_SRV 120 "$PY" -m http.server 80 --bind :: --directory "$WORK/www" >/dev/null 2>&1
  local h80=$BG_PID
  bg_ns $NS_SRV 120 "$PY" -m http.server 8080 --bind :: --directory "$WORK/www" >/dev/null 2>&1
  local h8080=$BG_PID
  wait_listen $NS_SRV t 80
  wait_listen $NS_SRV t 8080

  cap_start tcpv4_http_get 30 "host $SRV4 and tcp port 80"
  in_cli timeout 10 curl -sS -o /dev/null --resolve www.example.test:80:$SRV4 http://www.example.test/index.html
  cap_stop 2

  cap_start tcpv6_http_get 30 "ip6 host $SRV6 and tcp port 80"
  in_cli timeout 10 curl -sS -o /dev/null --resolve "www.example.test:80:[$SRV6]" http://www.example.test/index.html
  cap_stop 2

  cap_start http_host_with_port 30 "host $SRV4 and tcp port 8080"
  in_cli timeout 10 curl -sS -o /dev/null --resolve www.example.test:8080:$SRV4 http://www.example.test:8080/index.html
  cap_stop 2

  cap_start http_host_ipv6_literal 30 "ip6 host $SRV6 and tcp port 8080"
  in_cli timeout 10 curl -sS -g -o /dev/null "http://[$SRV6]:8080/index.html"
  cap_stop 2

  # the same GET seen through a 50-byte snaplen: Ethernet(14)+IPv4(20)+16
  # bytes of TCP, i.e. every frame is cut inside the fixed TCP header
  cap_start truncated_snaplen 30 "host $SRV4 and tcp port 80" 50
  in_cli timeout 10 curl -sS -o /dev/null --resolve www.example.test:80:$SRV4 http://www.example.test/index.html
  cap_stop 2

  stop_pid $h80; stop_pid $h8080
}

tls_cases() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 30 \
    -subj /CN=www.example.test -addext subjectAltName=DNS:www.example.test 2>/dev/null

  bg_ns $NS_SRV 60 openssl s_server -quiet -www -4 -accept 4433 \
    -cert "$WORK/cert.pem" -key "$WORK/key.pem" -naccept 2 </dev/null >/dev/null 2>&1
  local s4=$BG_PID
  bg_ns $NS_SRV 60 openssl s_server -quiet -www -6 -accept 4434 \
    -cert "$WORK/cert.pem" -key "$WORK/key.pem" -naccept 1 </dev/null >/dev/null 2>&1
  local s6=$BG_PID
  wait_listen $NS_SRV t 4433
  wait_listen $NS_SRV t 4434

  cap_start tls_clienthello_v4 30 "host $SRV4 and tcp port 4433"
  in_cli timeout 10 openssl s_client -connect $SRV4:4433 -servername www.example.test \
    </dev/null >/dev/null 2>&1 || true
  cap_stop 2

  cap_start tls_clienthello_v6 30 "ip6 host $SRV6 and tcp port 4434"
  in_cli timeout 10 openssl s_client -connect "[$SRV6]:4434" -servername www.example.test \
    </dev/null >/dev/null 2>&1 || true
  cap_stop 2

  cap_start tls13_curl_sni 30 "host $SRV4 and tcp port 4433"
  in_cli timeout 10 curl -sS -k -o /dev/null --tlsv1.3 \
    --resolve www.example.test:4433:$SRV4 https://www.example.test:4433/
  cap_stop 2

  stop_pid $s4; stop_pid $s6
}

dns_cases() {
  bg_ns $NS_SRV 90 dnsmasq --no-daemon --no-resolv --no-hosts --conf-file=/dev/null \
    --pid-file= --user=root --group=root --bind-interfaces \
    --listen-address=$SRV4 --listen-address=$SRV6 --port=53 \
    --local=/example.test/ \
    --host-record=www.example.test,10.77.2.80,fd77:2::80 \
    --cname=alias.example.test,alias2.example.test \
    --cname=alias2.example.test,www.example.test \
    --host-record=mail.example.test,10.77.2.25 \
    --mx-host=example.test,mail.example.test,10 \
    --txt-record=example.test,"v=spf1 -all" >"$WORK/dnsmasq.log" 2>&1
  local d=$BG_PID
  wait_listen $NS_SRV u 53
  wait_listen $NS_SRV t 53
  local DIG=(timeout 10 dig +tries=1 +time=2)

  cap_start dns_udp_a 2 "host $SRV4 and udp port 53"
  in_cli "${DIG[@]}" @$SRV4 www.example.test A >/dev/null
  cap_stop 2

  cap_start dns_udp_aaaa 2 "host $SRV4 and udp port 53"
  in_cli "${DIG[@]}" @$SRV4 www.example.test AAAA >/dev/null
  cap_stop 2

  cap_start dns_cname_chain 2 "host $SRV4 and udp port 53"
  in_cli "${DIG[@]}" @$SRV4 alias.example.test A >/dev/null
  cap_stop 2

  cap_start dns_nxdomain 2 "host $SRV4 and udp port 53"
  in_cli "${DIG[@]}" @$SRV4 nope.example.test A >/dev/null
  cap_stop 2

  cap_start dns_tcp 20 "host $SRV4 and tcp port 53"
  in_cli "${DIG[@]}" +tcp @$SRV4 www.example.test A >/dev/null
  cap_stop 2

  cap_start dns_udp_v6 2 "ip6 host $SRV6 and udp port 53"
  in_cli "${DIG[@]}" @$SRV6 www.example.test AAAA >/dev/null
  cap_stop 2

  cap_start dns_mx_or_txt 4 "host $SRV4 and udp port 53"
  in_cli "${DIG[@]}" @$SRV4 example.test MX >/dev/null
  in_cli "${DIG[@]}" @$SRV4 example.test TXT >/dev/null
  cap_stop 2

  stop_pid $d
}

icmp_cases() {
  cap_start icmpv4_echo 4 "host $SRV4 and icmp"
  in_cli ping -c 2 -i 0.2 -W 2 $SRV4 >/dev/null
  cap_stop 2

  cap_start icmpv6_echo 4 "ip6 host $SRV6 and icmp6 and (ip6[40] == 128 or ip6[40] == 129)"
  in_cli ping -6 -c 2 -i 0.2 -W 2 $SRV6 >/dev/null
  cap_stop 2

  in_cli ip -6 neigh flush dev c0
  in_gw ip -6 neigh flush dev g1
  cap_start icmpv6_neighbor_discovery 2 "icmp6 and (ip6[40] == 135 or ip6[40] == 136)"
  in_cli ping -6 -c 1 -W 2 $GW6A >/dev/null
  cap_stop 3

  cap_start icmpv4_port_unreachable 2 "host $SRV4 and (udp or icmp)"
  printf 'sluice-probe\n' | in_cli timeout 5 socat -u - UDP4-SENDTO:$SRV4:33434
  cap_stop 2

  cap_start icmpv6_port_unreachable 2 "ip6 host $SRV6 and (udp or icmp6)"
  printf 'sluice-probe\n' | in_cli timeout 5 socat -u - "UDP6-SENDTO:[$SRV6]:33434"
  cap_stop 2

  cap_start icmpv4_time_exceeded 2 "icmp"
  in_cli ping -c 1 -t 1 -W 2 $SRV4 >/dev/null || true
  cap_stop 2

  cap_start ipv4_fragments 6 "host $SRV4"
  in_cli ping -c 1 -s 4000 -W 2 $SRV4 >/dev/null
  cap_stop 2

  cap_start ipv6_fragments 6 "ip6 host $SRV6"
  in_cli ping -6 -c 1 -s 4000 -W 2 $SRV6 >/dev/null
  cap_stop 2

  cap_start ipv4_options_record_route 2 "host $SRV4 and icmp"
  in_cli ping -c 1 -R -W 2 $SRV4 >/dev/null
  cap_stop 2
}

iperf_cases() {
  bg_ns $NS_SRV 30 iperf3 -s -1 -B $SRV4 -p 5201 >/dev/null 2>&1
  local p=$BG_PID
  wait_listen $NS_SRV t 5201
  cap_start iperf3_tcp 20 "host $SRV4 and tcp port 5201"
  in_cli timeout 20 iperf3 -c $SRV4 -p 5201 -n 100K >/dev/null
  cap_stop 3
  stop_pid $p

  bg_ns $NS_SRV 30 iperf3 -s -1 -B $SRV4 -p 5202 >/dev/null 2>&1
  p=$BG_PID
  wait_listen $NS_SRV t 5202
  cap_start iperf3_udp 10 "host $SRV4 and udp port 5202"
  in_cli timeout 20 iperf3 -u -c $SRV4 -p 5202 -n 4K -l 512 -b 1M >/dev/null
  cap_stop 3
  stop_pid $p
}

udp_cases() {
  # socat UDP echo: each datagram is answered with the same bytes
  bg_ns $NS_SRV 30 socat -T 1 UDP4-RECVFROM:9999,bind=$SRV4,fork EXEC:cat >/dev/null 2>&1
  local p=$BG_PID
  wait_listen $NS_SRV u 9999
  cap_start udp_v4_small 4 "host $SRV4 and udp port 9999"
  printf 'hello sluice\n' | in_cli timeout 5 socat -T 1 - UDP4:$SRV4:9999 >/dev/null
  printf 'second datagram\n' | in_cli timeout 5 socat -T 1 - UDP4:$SRV4:9999 >/dev/null
  cap_stop 2
  stop_pid $p

  # UDP-Lite (IP protocol 136) from a plain Python socket
  bg_ns $NS_SRV 15 "$PY" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136)
s.setsockopt(136, 11, 8)          # UDPLITE_RECV_CSCOV: accept partial coverage
s.bind(("'$SRV4'", 5555))
s.settimeout(10)
for _ in range(2):
    s.recvfrom(2048)
' >/dev/null 2>&1
  p=$BG_PID
  sleep 0.5                     # ss does not list UDP-Lite sockets
  cap_start udplite_v4 2 "host $SRV4 and ip proto 136"
  in_cli "$PY" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136)
s.sendto(b"udp-lite full coverage", ("'$SRV4'", 5555))
s.setsockopt(136, 10, 12)         # UDPLITE_SEND_CSCOV = 12: header + 4 bytes
s.sendto(b"udp-lite partial coverage", ("'$SRV4'", 5555))
'
  cap_stop 2
  stop_pid $p
}

quic_cases() {
  bg_ns $NS_SRV 30 gtlsserver -q $SRV4 4443 "$WORK/key.pem" "$WORK/cert.pem" >/dev/null 2>&1
  local p=$BG_PID
  wait_listen $NS_SRV u 4443
  # gtlsclient (ngtcp2 0.12) sends SNI "localhost" for a numeric host and
  # ignores --sni, so give it a name: /etc/hosts is bind-mounted only inside
  # the private mount namespace that `ip netns exec` creates for the command
  printf '%s www.example.test\n' $SRV4 >"$WORK/hosts"
  local QC=(sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$WORK/hosts"
            timeout 5 gtlsclient -q --no-pmtud --exit-on-all-streams-close
            --dcid=5eed0000c0ffee01 --scid=5eed0000c0ffee02)
  # real QUIC v1 client Initial (ngtcp2) plus the server's first flight
  cap_start quic_initial 3 "host $SRV4 and udp port 4443"
  in_cli "${QC[@]}" www.example.test 4443 https://www.example.test:4443/ >/dev/null 2>&1 || true
  cap_stop 2
  # client offers an unknown version -> server answers Version Negotiation
  cap_start quic_version_negotiation 2 "host $SRV4 and udp port 4443"
  in_cli "${QC[@]}" -v 0x1a2a3a4a www.example.test 4443 https://www.example.test:4443/ >/dev/null 2>&1 || true
  cap_stop 2
  stop_pid $p
}

mld_case() {
  # joining a multicast group makes the kernel send MLDv2 reports, which
  # carry a Hop-by-Hop header with the Router Alert option
  cap_start mld_hop_by_hop 2 "ip6 and ip6[6] == 0"
  in_cli timeout 10 "$PY" -c '
import socket, struct, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
grp = socket.inet_pton(socket.AF_INET6, "ff02::77:1")
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, grp + struct.pack("@I", socket.if_nametoindex("c0")))
time.sleep(2.5)
'
  cap_stop 3
}

crafted_cases() {
  "$PY" - "$OUT" <<'PYEOF'
import sys, struct
from scapy.all import (Ether, IP, IPv6, UDP, TCP, ICMP, GRE, Raw,
                       IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                       IPv6ExtHdrSegmentRouting, RouterAlert, PadN)
from scapy.layers.sctp import SCTP, SCTPChunkInit, SCTPChunkAbort
from scapy.layers.ipsec import AH, ESP

out = sys.argv[1]
MC, MG = "02:77:01:00:00:02", "02:77:01:00:00:01"   # client, gateway (client side)
C4, S4, C6, S6 = "10.77.1.2", "10.77.2.2", "fd77:1::2", "fd77:2::2"
T0 = 1700000000.0

def l4(pkt, hlen):
    """transport bytes of a well-formed packet (checksum over the right
    pseudo-header), to be put under a header that scapy would mis-sum"""
    return bytes(pkt)[hlen:]

def up(): return Ether(src=MC, dst=MG)       # client -> gateway
def down(): return Ether(src=MG, dst=MC)     # gateway -> client

def save(name, pkts):
    # classic pcap, DLT_EN10MB, microsecond timestamps, exact bytes as built
    with open(f"{out}/{name}.pcap", "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
        for i, p in enumerate(pkts):
            b = bytes(p)
            fh.write(struct.pack("<IIII", int(T0), i * 1000, len(b), len(b)) + b)
    print(f"[capture-fixtures] {name}: {len(pkts)} packets (crafted)", file=sys.stderr)

# SCTP: the kernel here has no SCTP, so an INIT and the peer's ABORT
save("crafted_sctp_v4", [
    up() / IP(src=C4, dst=S4, id=1, flags="DF") / SCTP(sport=40000, dport=5000, tag=0) /
      SCTPChunkInit(init_tag=0x11223344, a_rwnd=106496, n_out_streams=10,
                    n_in_streams=65535, init_tsn=0x01020304),
    down() / IP(src=S4, dst=C4, id=2, ttl=63, flags="DF") / SCTP(sport=5000, dport=40000, tag=0x11223344) /
      SCTPChunkAbort(),
])

# GRE: the kernel here has no GRE tunnels; outer IP proto 47 carrying an
# IPv4 ICMP echo between tunnel addresses, and its reply
save("crafted_gre_other_protocol", [
    up() / IP(src=C4, dst=S4, id=3, flags="DF") / GRE(proto=0x0800) /
      IP(src="10.77.100.1", dst="10.77.100.2", id=4) / ICMP(type=8, id=0x77, seq=1) / Raw(b"sluice-gre"),
    down() / IP(src=S4, dst=C4, id=5, ttl=63, flags="DF") / GRE(proto=0x0800) /
      IP(src="10.77.100.2", dst="10.77.100.1", id=6) / ICMP(type=0, id=0x77, seq=1) / Raw(b"sluice-gre"),
])

# IPv6 extension header chain: HBH / DestOpt / Routing (SRH, type 4) /
# Fragment (first fragment, M=1) / UDP; the fragment carries the UDP header
# and the first 8 payload bytes of a 24-byte-payload datagram
full_udp = bytes(IPv6(src=C6, dst=S6) / UDP(sport=40001, dport=7777) / Raw(b"sluice-ext-chain-payload"))[40:]
save("crafted_ipv6_ext_chain", [
    up() / IPv6(src=C6, dst="fd77:2::1", hlim=64) /
      IPv6ExtHdrHopByHop(options=[RouterAlert(value=0), PadN(optdata=b"")]) /
      IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")]) /
      IPv6ExtHdrSegmentRouting(addresses=[S6, "fd77:2::1"], segleft=1, lastentry=1) /
      IPv6ExtHdrFragment(offset=0, m=1, id=0x5eed, nh=17) /
      Raw(full_udp[:16]),
])

# IPv6 / AH / TCP SYN
save("crafted_ipv6_ah", [
    up() / IPv6(src=C6, dst=S6) / AH(nh=6, payloadlen=4, spi=0x1000, seq=1, icv=b"\xaa" * 12) /
      Raw(l4(IPv6(src=C6, dst=S6) /
             TCP(sport=40002, dport=80, flags="S", seq=1000, window=64240, options=[("MSS", 1440)]), 40)),
])

# IPv6 / ESP: opaque encrypted payload, a decoder must stop at the ESP header
save("crafted_ipv6_esp", [
    up() / IPv6(src=C6, dst=S6, nh=50) /
      ESP(spi=0x2000, seq=1, data=bytes(range(48))),
])

# Next header 59: frame 1 bare IPv6 with payload length 0; frame 2 a
# Destination Options header with NH=59 followed by 8 bytes to be ignored
save("crafted_ipv6_no_next_header", [
    up() / IPv6(src=C6, dst=S6, nh=59, plen=0),
    up() / IPv6(src=C6, dst=S6) / IPv6ExtHdrDestOpt(nh=59, options=[PadN(optdata=b"\x00\x00\x00\x00")]) /
      Raw(b"IGNORED!"),
])

# IPv4 header length field below the minimum: frame 1 IHL=4, frame 2 IHL=0
save("crafted_ipv4_bad_ihl", [
    up() / IP(src=C4, dst=S4, ihl=4, id=7, proto=17) / Raw(l4(IP(src=C4, dst=S4) / UDP(sport=40003, dport=9999) / Raw(b"bad-ihl"), 20)),
    up() / IP(src=C4, dst=S4, ihl=0, id=8, proto=17) / Raw(l4(IP(src=C4, dst=S4) / UDP(sport=40003, dport=9999) / Raw(b"bad-ihl"), 20)),
])

# IPv4 total length: frame 1 says 1500 but only 35 bytes of IP are there;
# frame 2 says 16, less than IHL*4 = 20
save("crafted_ipv4_bad_total_length", [
    up() / IP(src=C4, dst=S4, len=1500, id=9, proto=17) / Raw(l4(IP(src=C4, dst=S4) / UDP(sport=40004, dport=9999) / Raw(b"too-long"), 20)),
    up() / IP(src=C4, dst=S4, len=16, id=10, proto=17) / Raw(l4(IP(src=C4, dst=S4) / UDP(sport=40004, dport=9999) / Raw(b"too-short"), 20)),
])

# TCP data offset: frame 1 = 3 (12 bytes, below 20); frame 2 = 15 (60 bytes)
# while the segment only holds 20 bytes of header and 4 of data
save("crafted_tcp_bad_data_offset", [
    up() / IP(src=C4, dst=S4, id=11) / TCP(sport=40005, dport=80, flags="PA", seq=1, ack=1, dataofs=3) / Raw(b"DATA"),
    up() / IP(src=C4, dst=S4, id=12) / TCP(sport=40005, dport=80, flags="PA", seq=5, ack=1, dataofs=15) / Raw(b"DATA"),
])

def qname(name):
    return b"".join(bytes([len(l)]) + l for l in name.encode().split(b".")) + b"\x00"

def dns_resp(payload, sport=53, dport=40100, ipid=20):
    return down() / IP(src=S4, dst=C4, ttl=63, id=ipid) / UDP(sport=sport, dport=dport) / Raw(payload)

def dns_query(payload, sport=40100, ipid=30):
    return up() / IP(src=C4, dst=S4, id=ipid) / UDP(sport=sport, dport=53) / Raw(payload)

# DNS compression loops.
# frame 1: answer owner name is a pointer to its own offset
q = qname("loop.example.test")
hdr = struct.pack("!HHHHHH", 0x4c01, 0x8180, 1, 1, 0, 0)
ans_off = 12 + len(q) + 4
loop1 = hdr + q + struct.pack("!HH", 1, 1) + struct.pack("!H", 0xC000 | ans_off) + \
        struct.pack("!HHIH", 1, 1, 60, 4) + bytes([10, 77, 2, 80])
# frame 2: question name is label "a" followed by a pointer back to the
# label itself (offset 12): a.a.a.a... never terminates
loop2 = struct.pack("!HHHHHH", 0x4c02, 0x8180, 1, 0, 0, 0) + b"\x01a" + struct.pack("!H", 0xC000 | 12) + \
        struct.pack("!HH", 1, 1)
save("crafted_dns_pointer_loop", [dns_resp(loop1, ipid=21), dns_resp(loop2, dport=40101, ipid=22)])

# DNS name too long: frame 1 question of five 63-byte labels (321 bytes
# encoded, limit 255); frame 2 a label length byte of 64 (0x40, not a
# valid label length nor a pointer)
long_name = qname(".".join(["a" * 63] * 5))
too_long = struct.pack("!HHHHHH", 0x4c03, 0x0100, 1, 0, 0, 0) + long_name + struct.pack("!HH", 1, 1)
bad_label = struct.pack("!HHHHHH", 0x4c04, 0x0100, 1, 0, 0, 0) + bytes([64]) + b"b" * 64 + b"\x04test\x00" + \
            struct.pack("!HH", 1, 1)
save("crafted_dns_label_too_long", [dns_query(too_long, ipid=31), dns_query(bad_label, sport=40102, ipid=32)])
PYEOF
}

# ----------------------------------------------------------------- README
# name|tool that produced it|what it exercises
CASES='
tcpv4_http_get|curl -> python3 -m http.server (real)|IPv4/TCP handshake, HTTP/1.1 GET with Host: www.example.test, HTTP/1.0 200 response in 2 segments, FIN close
tcpv6_http_get|curl -> python3 -m http.server (real)|same over IPv6 (Host: www.example.test)
http_host_with_port|curl -> python3 -m http.server :8080 (real)|Host header with port: www.example.test:8080
http_host_ipv6_literal|curl -g -> python3 -m http.server :8080 (real)|IPv6 literal Host header: [fd77:2::2]:8080
truncated_snaplen|curl -> http.server, tcpdump -s 50 (real)|every frame cut at 50 bytes (Ethernet+IPv4+16 bytes of the 20-byte fixed TCP header); caplen < len, pcap snaplen 50; tshark marks each frame "[Packet size limited during capture: TCP truncated]"
tls_clienthello_v4|openssl s_client -servername -> openssl s_server (real)|TLS 1.3 ClientHello with SNI www.example.test over IPv4, full handshake and close
tls_clienthello_v6|openssl s_client -servername -> openssl s_server (real)|same over IPv6
tls13_curl_sni|curl -k --resolve -> openssl s_server -www (real)|curl TLS 1.3 ClientHello (SNI www.example.test, ALPN) and encrypted response
dns_udp_a|dig -> dnsmasq (real)|DNS/UDP A query with EDNS OPT and its answer
dns_udp_aaaa|dig -> dnsmasq (real)|DNS/UDP AAAA query and answer
dns_cname_chain|dig -> dnsmasq (real)|answer alias -> alias2 -> www (CNAME, CNAME, A); owner names use compression pointers
dns_nxdomain|dig -> dnsmasq (real)|RCODE 3 NXDOMAIN response
dns_tcp|dig +tcp -> dnsmasq (real)|DNS over TCP with 2-byte length prefix, handshake and close
dns_udp_v6|dig -> dnsmasq over IPv6 (real)|DNS/UDP over IPv6, AAAA answer
dns_mx_or_txt|dig -> dnsmasq (real)|frames 1-2 MX query/answer (+additional A), frames 3-4 TXT query/answer
icmpv4_echo|ping -c 2 (real)|ICMPv4 echo request/reply
icmpv6_echo|ping -6 -c 2 (real)|ICMPv6 echo request/reply
icmpv6_neighbor_discovery|ping -6 to the gateway after flushing neighbours (real)|ICMPv6 Neighbor Solicitation (to solicited-node multicast) and Neighbor Advertisement
icmpv4_port_unreachable|socat UDP to a closed port (real)|ICMPv4 type 3 code 3 embedding the original IPv4+UDP header
icmpv6_port_unreachable|socat UDP6 to a closed port (real)|ICMPv6 type 1 code 4 embedding the original IPv6+UDP header
icmpv4_time_exceeded|ping -t 1 through the gateway (real)|ICMPv4 type 11 from 10.77.1.1 embedding the original IPv4+ICMP header
ipv4_fragments|ping -s 4000 (real)|IPv4 fragments: first (MF, offset 0), middle, last, both directions
ipv6_fragments|ping -6 -s 4000 (real)|IPv6 Fragment header (NH 44): first, middle, last, both directions
ipv4_options_record_route|ping -R (real)|IPv4 header with options (IHL 15: NOP + Record Route)
iperf3_tcp|iperf3 -n 100K (real)|first 20 packets of an iperf3 TCP test: control and data connections, full-size segments
iperf3_udp|iperf3 -u -n 4K -l 512 (real)|iperf3 UDP: 4-byte connect handshake and 512-byte datagrams
udp_v4_small|socat UDP4 -> socat echo (real)|two small UDP datagrams and their echoes
udplite_v4|python3 socket IPPROTO_UDPLITE (real)|IP proto 136: frame 1 full checksum coverage (0), frame 2 partial coverage 12
quic_initial|ngtcp2 gtlsclient -> gtlsserver (real)|QUIC v1 client Initial (1200-byte datagram, DCID 5eed0000c0ffee01, SCID 8 bytes, SNI www.example.test) and the coalesced Initial/Handshake reply of the server
quic_version_negotiation|ngtcp2 gtlsclient -v 0x1a2a3a4a -> gtlsserver (real)|client long header with an unknown version, server Version Negotiation (version 0)
mld_hop_by_hop|python3 IPV6_JOIN_GROUP ff02::77:1 (real, kernel MLD)|MLDv2 reports: IPv6 next header 0, Hop-by-Hop with Router Alert, ICMPv6 type 143
crafted_sctp_v4|scapy (kernel here has no SCTP)|IP proto 132: SCTP INIT chunk and the peer ABORT, valid CRC32c
crafted_gre_other_protocol|scapy (kernel here has no GRE tunnels)|IP proto 47: GRE carrying an IPv4 ICMP echo and its reply
crafted_ipv6_ext_chain|scapy|IPv6 / Hop-by-Hop (Router Alert) / Destination Options / Routing type 4 (SRH, segments left 1) / Fragment (first, M=1) / UDP header + 8 bytes
crafted_ipv6_ah|scapy|IPv6 / AH (12-byte ICV) / TCP SYN
crafted_ipv6_esp|scapy|IPv6 / ESP (next header 50) with 48 opaque bytes: decoding must stop at ESP
crafted_ipv6_no_next_header|scapy|frame 1 IPv6 next header 59 with payload length 0; frame 2 Destination Options with next header 59 followed by 8 bytes to ignore
crafted_ipv4_bad_ihl|scapy|frame 1 IHL 4, frame 2 IHL 0 (below the minimum 5)
crafted_ipv4_bad_total_length|scapy|frame 1 total length 1500 > captured 36 bytes of IP; frame 2 total length 16 < IHL*4
crafted_tcp_bad_data_offset|scapy|frame 1 TCP data offset 3 (< 5); frame 2 data offset 15 (60 bytes) beyond the end of the segment
crafted_dns_pointer_loop|scapy|frame 1 answer owner name is a pointer to itself; frame 2 question name "a" + pointer back to offset 12 (endless a.a.a...)
crafted_dns_label_too_long|scapy|frame 1 query name of five 63-byte labels (321 bytes encoded, > 255); frame 2 label length byte 0x40 (64, invalid)
'

write_readme() {
  local f=$OUT/README.md name tool what n
  {
    echo "# pcap fixtures for the packet decoder"
    echo
    echo "Regenerate (root, Debian 12): \`bash scripts/capture-fixtures.sh test/fixtures/pcap\`."
    echo "Real traffic between network namespaces slf-cli (10.77.1.2, fd77:1::2) -- slf-gw -- slf-srv (10.77.2.2, fd77:2::2),"
    echo "captured with tcpdump on the client veth (DLT_EN10MB, -s 0 unless stated, offloads off, so checksums are valid);"
    echo "crafted_* files are written by scapy because no tool here produces them. Crafted files have fixed timestamps; real ones do not,"
    echo "and their packet counts can differ slightly from run to run (this file is rewritten by the script)."
    echo
    echo "Differential tests with tshark: fragments (ipv4_fragments, ipv6_fragments, crafted_ipv6_ext_chain) are reassembled by tshark"
    echo "unless \`-o ip.defragment:FALSE -o ipv6.defragment:FALSE\`; HTTP/TLS/DNS-over-TCP fields land on the last segment of a PDU unless"
    echo "\`-o tcp.desegment_tcp_streams:FALSE\`."
    echo
    echo "One line per case: file, packets, tool, what it exercises."
    echo
    while IFS='|' read -r name tool what; do
      [ -n "$name" ] || continue
      [ -f "$OUT/$name.pcap" ] || { echo "- \`$name.pcap\`: NOT PRODUCED ($tool)"; continue; }
      n=$(tcpdump -r "$OUT/$name.pcap" -n 2>/dev/null | wc -l)
      echo "- \`$name.pcap\`: $n packets; $tool; $what"
    done <<<"$CASES"
    echo
    echo "Not producible here: real SCTP (kernel without SCTP), real GRE (kernel without ip_gre) -> crafted_sctp_v4, crafted_gre_other_protocol."
  } >"$f"
}

# ------------------------------------------------------------------- main
teardown_netns                 # leftovers of an earlier run
while IFS='|' read -r name _; do  # old outputs of this script, never other files
  [ -n "$name" ] && rm -f "$OUT/$name.pcap"
done <<<"$CASES"
setup_topology
http_cases
tls_cases
dns_cases
icmp_cases
iperf_cases
udp_cases
quic_cases
mld_case
crafted_cases
write_readme
log "done: $(ls "$OUT"/*.pcap | wc -l) pcaps in $OUT"
