#!/usr/bin/env bash
# npm run bench:live: sluice against plain forwarding, the C NFQUEUE loops and Suricata, in one
# run, on the anchors' namespace gateway (../shared/anchors, copied to a scratch folder because
# it builds in place). Prints one JSON line per engine and test (bench/live/report.mjs).
# Settings: REPS (default 1), DUR seconds per run (default 8), TESTS (default "tcp1 tcp4 udp64c conn"),
# ENGINES (default: all; on request: sluice-norecord, without connection recording, and
# sluice-noname, recording without waiting for names), INSTALL=0 to skip installing the anchors' Debian packages.
# Everything stays inside the anchors' three namespaces; every load is bounded by DUR.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ANCHORS_SRC=${ANCHORS_SRC:-$ROOT/../shared/anchors}
WORK=${WORK:-/tmp/sluice-bench-live}
REPS=${REPS:-1}
DUR=${DUR:-8}
TESTS=${TESTS:-"tcp1 tcp4 udp64c conn"}
ENGINES=${ENGINES:-"plain c-perpacket c-batch c-fasttrack suricata sluice-fasttrack sluice-inspect"}
[ -d "$ANCHORS_SRC" ] || { echo "bench:live: anchors not found at $ANCHORS_SRC" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench:live: run as root (namespaces, NFQUEUE)" >&2; exit 1; }

rm -rf "$WORK" && mkdir -p "$WORK"
cp -r "$ANCHORS_SRC" "$WORK/anchors"
A="$WORK/anchors"
OUT="$WORK/results"
export RUNTMP="$WORK/tmp"
mkdir -p "$RUNTMP"

if [ "${INSTALL:-1}" = 1 ]; then
  # run_all.sh's install step only (it adds bookworm-backports for Suricata, as the anchors do).
  sed -n '/if \[ "${INSTALL:-0}" = 1 \]; then/,/^fi$/p' "$A/run_all.sh" > "$WORK/install.sh"
  (cd "$A" && INSTALL=1 bash "$WORK/install.sh") > "$WORK/install.log" 2>&1 || { tail "$WORK/install.log" >&2; exit 1; }
fi
(cd "$A" && ./build.sh >/dev/null && suricata/make-config.sh >/dev/null 2>&1 || true)

# sluice's data: one queue (as the C loops use), the anchors' server side is the WAN.
mk_data() {  # dir fastTrack [recording] [waitForName]
  mkdir -p "$1"
  local rec=${3:-true} wait=${4:-true}
  printf '{"queues":{"first":0,"count":1},"ipv6":false,"wanInterfaces":["gws0"],"fastTrack":%s,"api":{"host":"127.0.0.1","port":0},"tracking":{"enabled":%s,"waitForName":%s},"history":{"enabled":%s}}\n' "$2" "$rec" "$wait" "$rec" > "$1/config.json"
  # The selftest's probe (UDP 9999) is blocked, everything else allowed.
  printf -- '- 10.250.2.2 UDP/9999\n+ *\n' > "$1/sluice.rules"
}
mk_data "$WORK/data-fast" true
mk_data "$WORK/data-inspect" false
# The same as sluice-fasttrack with connection recording off, to measure what recording costs.
mk_data "$WORK/data-norecord" true false
# Recording, but without holding TCP until its name: what waiting for the SNI/Host costs.
mk_data "$WORK/data-noname" true true false

cleanup() { (cd "$A" && ./rules.sh none >/dev/null 2>&1; ./topo.sh down >/dev/null 2>&1) || true; }
trap cleanup EXIT
(cd "$A" && (./topo.sh status | grep -q anc-gw || ./topo.sh up >/dev/null))

declare -A CFG=([plain]=plain [c-perpacket]=nfq_single [c-batch]=nfq_batch [c-fasttrack]=nfq_fasttrack [suricata]=suricata)
for e in $ENGINES; do
  case $e in
    sluice-fasttrack|sluice-inspect|sluice-norecord|sluice-noname)
      data="$WORK/data-${e#sluice-}"
      # ENGINE_RULES=show: sluice installs its own chains; the anchors' rules.sh must not flush them.
      (cd "$A" && ENGINE_CMD="node $ROOT/dist/src/cli/main.js run --data $data" ENGINE_RULES=show \
        ./bench.sh -r "$REPS" -d "$DUR" -t "$TESTS" -L -o "$OUT/$e" custom) > "$WORK/$e.log" 2>&1 \
        || { tail -5 "$WORK/$e.log" >&2; echo "bench:live: $e failed (log: $WORK/$e.log)" >&2; } ;;
    *)
      (cd "$A" && ./bench.sh -r "$REPS" -d "$DUR" -t "$TESTS" -L -o "$OUT/$e" "${CFG[$e]}") > "$WORK/$e.log" 2>&1 \
        || { tail -5 "$WORK/$e.log" >&2; echo "bench:live: $e failed (log: $WORK/$e.log)" >&2; } ;;
  esac
done
node "$ROOT/bench/live/report.mjs" "$OUT"
