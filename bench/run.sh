#!/usr/bin/env bash
# maildoor's performance figures in one go (issue 6), on this machine.
#
#   bench/run.sh                 every step below, in order
#   bench/run.sh sink rss        only the steps named
#
# Steps:
#   peers    the shared harness (bench.py): maildoor beside fsync-probe,
#            Postfix, OpenSMTPD, aiosmtpd and smtp-sink, driven by smtp-source;
#            then issue 6's targets judged on that run
#   sink     protocol overhead: maildoor with a discarding store
#            (maildoor-load --serve-discard) against smtp-sink, same client,
#            20 sessions, 1 KiB; best of SINK_ROUNDS alternating rounds
#   rss      peak RSS (VmHWM) of maildoor while it receives one 25 MiB message
#   mixed    big and small messages at once: MIXED_BIG connections send
#            8 MiB messages while 20 send 1 KiB ones; both rates and the
#            small messages' latency (do big flushes hold small ones up?)
#   idle     IDLE_COUNT idle connections held open (idle_conns.py), RSS
#   startup  spawn to the first 220 greeting, in ms (STARTUP_RUNS runs)
#
# Environment (all optional):
#   MAILDOOR_BENCH_HARNESS  the shared harness; default ../shared/bench from the repo root
#   BENCH_SCENARIOS         bench.py --scenarios (default a,b,c,d)
#   BENCH_PEERS             bench.py --peers (default: all of them)
#   BENCH_KEEP              set: bench.py --keep, every store deleted only at the end
#   BENCH_OUT               directory for logs, JSON and summary.txt (default: new /tmp/maildoor-bench.*)
#   SINK_SESSIONS, SINK_MESSAGES, SINK_SIZE, SINK_ROUNDS   (20, 5000, 1024, 3)
#   IDLE_COUNT, IDLE_HOLD   (10000, 5)
#   MIXED_BIG               (2)
#   STARTUP_RUNS            (5)
#
# Needs root and what ../shared/bench/install.sh installs (Postfix's
# smtp-source and smtp-sink, the peers). Everything runs on 127.0.0.1 and
# every server started here is stopped on exit. The disk is shared: compare
# figures of one run only, as ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HARNESS=${MAILDOOR_BENCH_HARNESS:-$ROOT/../shared/bench}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/maildoor-bench.XXXXXX)}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=(peers sink rss mixed idle startup)

MD=$ROOT/target/release/maildoor
LOAD=$ROOT/target/release/maildoor-load
RCPT=user@bench.test

note() { echo "$*" | tee -a "$SUMMARY"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # PORT: until something accepts on it (at most 15 s)
  python3 - "$1" <<'EOF'
import socket, sys, time
end = time.monotonic() + 15
while time.monotonic() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.02)
sys.exit(1)
EOF
}
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
now_ns() { date +%s%N; }
need() { # PROGRAM...: each must be on PATH
  local p
  for p in "$@"; do
    command -v "$p" >/dev/null || { echo "$p not found: run $HARNESS/install.sh (as root)" >&2; exit 1; }
  done
}
need_harness() {
  [ -f "$HARNESS/$1" ] || { echo "$HARNESS/$1 not found: set MAILDOOR_BENCH_HARNESS to the shared bench directory" >&2; exit 1; }
}

SERVERS=()
stop_servers() {
  local pid
  for pid in "${SERVERS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${SERVERS[@]}"; do
    # Up to 15 s for a clean exit (an exited child stays a zombie until waited for).
    for _ in $(seq 150); do
      [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || echo Z)" = Z ] && break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SERVERS=()
}
trap stop_servers EXIT

# start_maildoor NAME [ENV=VALUE...]: a fresh maildoor on a free port;
# sets PORT and PID.
start_maildoor() {
  local name=$1
  shift
  PORT=$(free_port)
  mkdir -p "$OUT/$name"
  env "$@" "$MD" --listen "127.0.0.1:$PORT" --maildir "$OUT/$name/Maildir" --domain bench.test \
    --log-level warn >"$OUT/$name/server.log" 2>&1 &
  PID=$!
  SERVERS+=("$PID")
  wait_port "$PORT" || { echo "maildoor did not listen: see $OUT/$name/server.log" >&2; exit 1; }
}

step_peers() {
  need_harness bench.py
  need smtp-source
  note "== peers: bench.py (scenarios ${BENCH_SCENARIOS:-a,b,c,d})"
  local args=(--maildoor "$MD --listen 127.0.0.1:{port} --maildir {maildir} --domain bench.test --log-level warn"
    --json "$OUT/bench.json")
  [ -n "${BENCH_SCENARIOS:-}" ] && args+=(--scenarios "$BENCH_SCENARIOS")
  [ -n "${BENCH_PEERS:-}" ] && args+=(--peers "$BENCH_PEERS")
  local tmp="${TMPDIR:-/tmp}"
  if [ -n "${BENCH_KEEP:-}" ]; then
    # No store is deleted until every peer has run: on ext4 without a
    # journal a create walks past every inode deleted in the last minutes,
    # and bench.py runs maildoor last, after the others' stores are
    # deleted (README, Performance). Kept under $OUT, removed at the end.
    args+=(--keep)
    tmp="$OUT/peers-tmp"
    mkdir -p "$tmp"
    # Postfix's processes run as another user and must reach their store.
    chmod 755 "$OUT" "$tmp"
  fi
  TMPDIR="$tmp" python3 "$HARNESS/bench.py" "${args[@]}" 2>"$OUT/bench.rows.log" | tee -a "$SUMMARY"
  [ -n "${BENCH_KEEP:-}" ] && rm -rf "$tmp"
  targets "$OUT/bench.json" | tee -a "$SUMMARY"
}

# Issue 6's targets, judged on one bench.py run (its JSON rows).
targets() {
  python3 - "$1" <<'PY'
import json, sys
rows = {(r["peer"], r["scenario"]): r for r in json.load(open(sys.argv[1])) if "error" not in r}
def rate(peer, scn):
    r = rows.get((peer, scn))
    return r["msgs_per_s"] if r else None
def check(what, value, goal):
    print(f"  {what}: {value:.2f}x (target >= {goal}x) {'met' if value >= goal else 'MISSED'}")
print("== targets (issue 6), this run")
md, probe, sink = rate("maildoor", "a"), rate("fsync-probe", "a"), rate("smtp-sink", "a")
if md and probe and sink:
    check("a: maildoor / serial limit 1/(1/probe + 1/smtp-sink)", md * (1 / probe + 1 / sink), 0.8)
for scn, postfix_goal in (("b", 2.0), ("c", 1.5)):
    md = rate("maildoor", scn)
    if not md:
        continue
    if rate("fsync-probe", scn):
        check(f"{scn}: maildoor / fsync-probe", md / rate("fsync-probe", scn), 0.8)
    if rate("postfix", scn):
        check(f"{scn}: maildoor / postfix", md / rate("postfix", scn), postfix_goal)
r = rows.get(("maildoor", "b"))
if r:
    print(f"  b: maildoor peak RSS {r['peak_rss_mib']} MiB (target < 32 MiB) {'met' if r['peak_rss_mib'] < 32 else 'MISSED'}")
PY
}

step_sink() {
  local sessions=${SINK_SESSIONS:-20} messages=${SINK_MESSAGES:-5000} size=${SINK_SIZE:-1024}
  local rounds=${SINK_ROUNDS:-3}
  need smtp-source smtp-sink
  note "== sink: discarding maildoor vs smtp-sink, $sessions sessions, $messages x $size bytes, best of $rounds"
  mkdir -p "$OUT/sink"
  local sink_port discard_port
  sink_port=$(free_port)
  smtp-sink -u nobody "127.0.0.1:$sink_port" 1024 >"$OUT/sink/smtp-sink.log" 2>&1 &
  SERVERS+=($!)
  discard_port=$(free_port)
  "$LOAD" --serve-discard "127.0.0.1:$discard_port" >"$OUT/sink/discard.log" 2>&1 &
  SERVERS+=($!)
  wait_port "$sink_port" && wait_port "$discard_port" || { echo "sink servers did not start" >&2; exit 1; }
  local r name port t0 t1
  for r in $(seq "$rounds"); do
    for name in smtp-sink maildoor-discard; do
      port=$sink_port
      [ "$name" = maildoor-discard ] && port=$discard_port
      t0=$(now_ns)
      timeout 300 smtp-source -s "$sessions" -m "$messages" -l "$size" -f "from@bench.test" -t "$RCPT" \
        "127.0.0.1:$port" >>"$OUT/sink/smtp-source.log" 2>&1 || echo "smtp-source failed on $name" >&2
      t1=$(now_ns)
      echo "$name smtp-source $(awk -v m="$messages" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", m / (ns / 1e9) }')" \
        >>"$OUT/sink/rates"
      timeout 300 "$LOAD" --server "127.0.0.1:$port" --connections "$sessions" --messages "$messages" \
        --size "$size" --to "$RCPT" --json >"$OUT/sink/$name.$r.json" || true
      python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], "maildoor-load", r["messages_per_s"], r["failed"])' \
        "$OUT/sink/$name.$r.json" "$name" >>"$OUT/sink/rates"
    done
  done
  python3 - "$OUT/sink/rates" <<'EOF' | tee -a "$SUMMARY"
import sys
best = {}
for line in open(sys.argv[1]):
    name, client, rate, *rest = line.split()
    if rest and rest[0] != "0":
        print(f"  {name} via {client}: {rest[0]} failed messages in one round")
    best[(name, client)] = max(best.get((name, client), 0.0), float(rate))
for client in ("smtp-source", "maildoor-load"):
    s, d = best.get(("smtp-sink", client), 0), best.get(("maildoor-discard", client), 0)
    ratio = f"{d / s:.2f}x" if s else "n/a"
    print(f"  {client:<13} accept/s: smtp-sink {s:.0f}, maildoor-discard {d:.0f}, ratio {ratio} (target >= 0.9x)")
EOF
  stop_servers
}

step_mixed() {
  local big=${MIXED_BIG:-2}
  note "== mixed: $big connections of 8 MiB messages beside 20 of 1 KiB"
  start_maildoor mixed
  timeout 300 "$LOAD" --server "127.0.0.1:$PORT" --connections "$big" --messages $((30 * big)) --size 8388608 \
    --reuse --to "$RCPT" --maildir "$OUT/mixed/Maildir" >"$OUT/mixed/big.txt" 2>&1 &
  local loader=$!
  timeout 300 "$LOAD" --server "127.0.0.1:$PORT" --connections 20 --messages 3000 --size 1024 \
    --reuse --to "$RCPT" --maildir "$OUT/mixed/Maildir" >"$OUT/mixed/small.txt" 2>&1 ||
    echo "maildoor-load (small) failed: see $OUT/mixed/small.txt" >&2
  wait "$loader" || echo "maildoor-load (big) failed: see $OUT/mixed/big.txt" >&2
  note "  8 MiB: $(grep -h '^throughput' "$OUT/mixed/big.txt")"
  note "  1 KiB: $(grep -h '^throughput' "$OUT/mixed/small.txt")"
  note "  1 KiB: $(grep -h '^latency' "$OUT/mixed/small.txt")"
  grep -h '^check' "$OUT/mixed/big.txt" "$OUT/mixed/small.txt" | sed 's/^/  /' | tee -a "$SUMMARY"
  stop_servers
}

step_rss() {
  note "== rss: one 25 MiB message"
  start_maildoor rss
  local before after
  before=$(status_kib "$PID" VmHWM)
  timeout 300 "$LOAD" --server "127.0.0.1:$PORT" --messages 1 --connections 1 --size 26214400 --to "$RCPT" \
    --maildir "$OUT/rss/Maildir" >"$OUT/rss/load.txt" 2>&1 || echo "maildoor-load failed: see $OUT/rss/load.txt" >&2
  after=$(status_kib "$PID" VmHWM)
  sed 's/^/  /' "$OUT/rss/load.txt" | tee -a "$SUMMARY"
  note "  maildoor peak RSS (VmHWM): $(mib "$before") MiB before, $(mib "$after") MiB after receiving (target < 32 MiB)"
  stop_servers
}

step_idle() {
  local count=${IDLE_COUNT:-10000}
  need_harness idle_conns.py
  note "== idle: $count idle connections"
  start_maildoor idle "MAILDOOR_MAX_CONNECTIONS=$((count + 100))"
  note "  maildoor open-file limit: $(awk '/Max open files/ { print $4 " soft, " $5 " hard" }' "/proc/$PID/limits")"
  timeout 600 python3 "$HARNESS/idle_conns.py" --port "$PORT" --count "$count" --hold "${IDLE_HOLD:-5}" \
    --pid "$PID" --rcpt "$RCPT" >"$OUT/idle/idle.txt" 2>&1 || echo "idle_conns.py reported a failure" >&2
  sed 's/^/  /' "$OUT/idle/idle.txt" | tee -a "$SUMMARY"
  note "  maildoor peak RSS (VmHWM): $(mib "$(status_kib "$PID" VmHWM)") MiB (target < 100 MiB)"
  stop_servers
}

step_startup() {
  local runs=${STARTUP_RUNS:-5}
  note "== startup: spawn to first 220, $runs runs"
  mkdir -p "$OUT/startup"
  python3 - "$MD" "$OUT/startup" "$runs" <<'EOF' | tee -a "$SUMMARY"
import socket, statistics, subprocess, sys, time
md, out, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = []
for i in range(runs):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(f"{out}/server{i}.log", "wb")
    t0 = time.monotonic()
    p = subprocess.Popen([md, "--listen", f"127.0.0.1:{port}", "--maildir", f"{out}/Maildir{i}",
                          "--domain", "bench.test", "--log-level", "warn"], stdout=log, stderr=log)
    got = None
    while time.monotonic() - t0 < 10 and p.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as c:
                c.settimeout(5)
                if c.recv(512).startswith(b"220"):
                    got = (time.monotonic() - t0) * 1000
                    break
        except OSError:
            time.sleep(0.0005)
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if got is None:
        print(f"  run {i}: no 220 within 10 s (see {out}/server{i}.log)")
    else:
        times.append(got)
if times:
    print(f"  spawn to first 220: min {min(times):.1f} ms, median {statistics.median(times):.1f} ms, "
          f"max {max(times):.1f} ms (target < 50 ms)")
EOF
}

echo "building release binaries..."
cargo build --release --bins --quiet
note "maildoor bench run $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname), $(nproc) cores, kernel $(uname -r), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
note "output: $OUT"
for step in "${STEPS[@]}"; do
  case $step in
    peers | sink | rss | mixed | idle | startup) "step_$step" ;;
    *) echo "unknown step: $step (peers sink rss mixed idle startup)" >&2; exit 2 ;;
  esac
done
echo
echo "===== summary ($SUMMARY) ====="
cat "$SUMMARY"
