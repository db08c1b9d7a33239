#!/usr/bin/env bash
# `make bench`: SIP core benchmarks of ctiswitch against Kamailio as a reference.
#
#   1. call set-up rate: SIPp callers → target → SIPp carrier, rate stepped up (BENCH_RATES)
#      with BENCH_STEP_SECONDS worth of calls per step; the highest rate with 0 failed calls
#      and the target's CPU seconds per 1,000 calls. Targets: Kamailio (transaction-stateful
#      proxy with record-route, bench/kamailio.cfg) without and with digest auth, then the
#      switch (extension 801 authenticates with a 407 and dials 0123456789 → default trunk).
#   2. RTP relay: BENCH_MEDIA_CALLS concurrent calls through the switch with PCMA in both
#      directions; the switch's CPU per relayed call and its memory per active call.
#   3. queue (issue 5, bench/queue.sh): calls per second into a queue served by 200 agents
#      (one SIPp UAS registered as extensions 2001-2200), rate stepped up (BENCH_QUEUE_RATES);
#      every call must be answered by an agent with exactly one call-log row, and at the end
#      no agent may be stuck (QUEUE_INFO empty, a burst of 200 calls takes 200 agents).
#
# Every figure is one line starting with "BENCH". Everything binds and sends to 127.0.0.1
# only; every SIPp run is bounded by -m, -timeout and `timeout`. Exit status: 0 when the
# harness worked (even if the switch carried no calls: that is reported, not fatal),
# 1 when the switch did not build or start, 2 on a harness error.
#
# Knobs (environment): BENCH_RATES="500 1000 2000 3000 4000 5000" BENCH_STEP_SECONDS=5
# BENCH_HOLD_MS=200 BENCH_MEDIA_CALLS=100 BENCH_MEDIA_RATE=25 BENCH_MEDIA_WINDOW=10
# BENCH_ONLY="kamailio switch media dsp engine queue" (any subset) BENCH_PIN=1 (pin the target to CPU 1 and
# the SIPp pair to CPU 0; BENCH_PIN=0 to let the scheduler place them) BENCH_KEEP=1 (keep
# the temporary directory and print its path) BENCH_TRACE=1 (SIPp message traces into the
# temporary directory: slow, for debugging failed calls) BENCH_RETRIES=1 (tries again of a
# failed rate step before calling it the limit) BENCH_DIAL=0123456789 (the number the caller
# dials: anything that is not an extension goes out through the default trunk)
# BENCH_KAMAILIO_ALLOC=fm (Kamailio's shm allocator: fm, qm or tlsf). BENCH_RTP_PORTS=8000 (the
# switch's RTP port range size: fewer when other work holds ports in 20000-32000).
# BENCH_SWITCH_BIN=/path/to/ctiswitch (run that binary, built elsewhere, instead of building:
# for A/B runs of two builds on one script).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RATES=${BENCH_RATES:-"500 1000 2000 3000 4000 5000"}
STEP_S=${BENCH_STEP_SECONDS:-5}
HOLD_MS=${BENCH_HOLD_MS:-200}
MEDIA_CALLS=${BENCH_MEDIA_CALLS:-100}
MEDIA_RATE=${BENCH_MEDIA_RATE:-25}
MEDIA_WINDOW=${BENCH_MEDIA_WINDOW:-10}
ONLY=${BENCH_ONLY:-"kamailio switch media dsp engine queue"}
PIN=${BENCH_PIN:-1}
TRACE=${BENCH_TRACE:-0}
RETRIES=${BENCH_RETRIES:-1}
EXT=801
PASSWORD=1234
DIAL=${BENCH_DIAL:-0123456789}
PCAP=/usr/share/sip-tester/g711a.pcap
# SIPp's call length in bench/uac_media.xml: three plays of the 7 s pcap.
MEDIA_CALL_S=21

LIB="python3 $ROOT/bench/benchlib.py"
log() { echo "bench: $*" >&2; }
harness_error() {
  echo "bench: HARNESS ERROR: $*" >&2
  exit 2
}
has() { [[ " $ONLY " == *" $1 "* ]]; }
[[ $RETRIES =~ ^[0-9]+$ ]] || harness_error "BENCH_RETRIES must be a number"
for n in $RATES $STEP_S $HOLD_MS $MEDIA_CALLS $MEDIA_RATE $MEDIA_WINDOW; do
  [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || harness_error "knob value '$n' is not a positive integer"
done
[ "$MEDIA_CALLS" -le 500 ] || harness_error "BENCH_MEDIA_CALLS is capped at 500"

# --- tools -------------------------------------------------------------------------------
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v curl >/dev/null 2>&1 || need+=(curl)
if has kamailio && ! command -v kamailio >/dev/null 2>&1; then need+=(kamailio); fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  # Debian's kamailio package starts its service on install (port 5060, all interfaces):
  # forbid service starts for the duration of the install.
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee $policy >/dev/null && $SUDO chmod +x $policy
    made_policy=1
  fi
  rc=0
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    "${need[@]}" >/dev/null; } || rc=$?
  [ $made_policy = 1 ] && $SUDO rm -f $policy
  [ $rc = 0 ] || harness_error "apt-get install ${need[*]} failed"
fi
[ -r "$PCAP" ] || harness_error "$PCAP missing (package sip-tester)"
CPUS=$(nproc)
pin_target=() pin_load=()
if [ "$PIN" = 1 ] && [ "$CPUS" -ge 2 ]; then
  pin_target=(taskset -c 1)
  pin_load=(taskset -c 0)
fi

# Other work on this machine skews every figure: say so.
busy=$(python3 - <<'PY'
import time
def snap():
    f = list(map(int, open("/proc/stat").readline().split()[1:]))
    return sum(f), f[3] + f[4]
t0, i0 = snap(); time.sleep(1); t1, i1 = snap()
print("%.0f" % (100 * (1 - (i1 - i0) / max(t1 - t0, 1))))
PY
)
log "machine: $CPUS CPUs, $busy% busy before the bench, load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$busy" -gt 15 ] && log "WARNING: other processes use ${busy}% of the CPUs: figures will be noisy"

# --- temp dir, background processes, cleanup ----------------------------------------------
TMP=$(mktemp -d /tmp/ctiswitch-bench.XXXXXX)
BG_PIDS=()
# kill_tree PID…: SIGTERM to the processes and all their descendants, SIGKILL after 6 s.
kill_tree() {
  local p all=()
  for p in "$@"; do all+=($($LIB tree "$p" 2>/dev/null || true) "$p"); done
  [ ${#all[@]} -gt 0 ] || return 0
  kill -TERM "${all[@]}" 2>/dev/null || true
  for _ in $(seq 1 30); do
    local alive=0
    for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.2
  done
  kill -KILL "${all[@]}" 2>/dev/null || true
}
cleanup() {
  # Everything this script started is one of its descendants.
  local left
  left=$($LIB tree $$ 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -n "$left" ] && kill_tree $left
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Stop one background process we started (and its descendants); $1 = pid.
stop_bg() {
  kill_tree "$1"
  wait "$1" 2>/dev/null || true
}

fmt() { python3 -c "import sys; print(('%.'+sys.argv[2]+'f') % float(sys.argv[1]))" "$1" "$2"; }
# div A B [K]: A*K/B to 3 decimals, "-" when either is unknown or B is 0.
div() {
  python3 -c "
import sys
try:
    a, b, k = map(float, sys.argv[1:])
    print('%.3f' % (a * k / b) if b else '-')
except ValueError:
    print('-')" "$1" "$2" "${3:-1}"
}

printf 'SEQUENTIAL\n%s;ctiswitch;%s\n' "$EXT" "$PASSWORD" >"$TMP/callers.csv"
read -r P_TARGET P_CARRIER P_CALLER P_CTRL1 P_CTRL2 P_HTTP <<<"$($LIB ports 6)"
log "ports: target $P_TARGET carrier $P_CARRIER caller $P_CALLER http $P_HTTP; pinning: ${pin_target[*]:-none}"

# --- SIPp ---------------------------------------------------------------------------------
trace_args() { [ "$TRACE" = 1 ] && echo "-trace_msg -message_file $TMP/$1.msg" || true; }
CARRIER_PID=""
# start_carrier SCENARIO MAX_CALLS TIMEOUT_S
start_carrier() {
  local calls=$2 limit=$3
  "${pin_load[@]}" timeout -k 5 $((limit + 10)) sipp -sf "$1" -i 127.0.0.1 -p "$P_CARRIER" \
    -mi 127.0.0.1 -mp $((P_CARRIER + 2)) -ci 127.0.0.1 -cp "$P_CTRL1" -m "$calls" \
    -timeout "$limit" -nostdin -max_recv_loops 5000 -max_sched_loops 5000 -buff_size 4194304 \
    -trace_err -error_file "$TMP/carrier_err.log" $(trace_args carrier) </dev/null >"$TMP/carrier.out" 2>&1 &
  CARRIER_PID=$!
  BG_PIDS+=("$CARRIER_PID")
  for _ in $(seq 1 50); do
    ss -Hulpn "sport = :$P_CARRIER" 2>/dev/null | grep -q sipp && return 0
    kill -0 "$CARRIER_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$TMP/carrier.out" >&2 || true
  harness_error "SIPp carrier did not start on 127.0.0.1:$P_CARRIER"
}
sipp_pid_of() { pgrep -P "$1" -x sipp 2>/dev/null | head -1 || true; }

# run_caller TAG SCENARIO RATE CALLS TIMEOUT_S [extra sipp args…]; sets CALLER_RC
run_caller() {
  local tag=$1 sf=$2 rate=$3 calls=$4 limit=$5
  shift 5
  CALLER_RC=0
  rm -f "$TMP/$tag.csv" "$TMP/$tag.err"
  $LIB rusage "$TMP/$tag.cpu" -- "${pin_load[@]}" timeout -k 5 $((limit + 10)) \
    sipp -sf "$sf" -inf "$TMP/callers.csv" -au "$EXT" -ap "$PASSWORD" -s "$DIAL" \
    "127.0.0.1:$P_TARGET" -i 127.0.0.1 -p "$P_CALLER" -mi 127.0.0.1 -mp $((P_CALLER + 2)) \
    -ci 127.0.0.1 -cp "$P_CTRL2" -r "$rate" -m "$calls" -timeout "$limit" -nostdin \
    -max_recv_loops 5000 -max_sched_loops 5000 -buff_size 4194304 -trace_stat -stf "$TMP/$tag.csv" -fd 1 \
    -trace_err -error_file "$TMP/$tag.err" $(trace_args "$tag") "$@" >"$TMP/$tag.out" 2>&1 || CALLER_RC=$?
}

# The first thing the target answered to a failed call, for the report.
first_error() {
  local f=$1
  [ -s "$f" ] || return 0
  local pat
  for pat in "received 'SIP/2.0 [0-9]{3}[^']{0,40}" "received '[A-Z]+ " "Aborting call on [a-zA-Z ]+[a-z]" \
    "[a-z_]+ timed out after '[0-9.]+' seconds"; do
    if grep -q -m1 -E "$pat" "$f"; then
      grep -m1 -oE "$pat" "$f" | head -1 | tr -d "'\r"
      return 0
    fi
  done
}

# --- call set-up rate ---------------------------------------------------------------------
# run_step NAME SCENARIO TARGET_PID RATE TRY: one step of RATE × STEP_S calls; logs a line,
# sets STEP_* and returns 0 when it passed (no failed call, offered rate nearly reached).
run_step() {
  local name=$1 sf=$2 tpid=$3 rate=$4 tag="$1-$4-$5" calls limit c0 c1 s0 s1 sipp_cpu
  local ok failed retrans cps setup_p99_ms
  calls=$((rate * STEP_S))
  limit=$((STEP_S * 3 + 15))
  c0=$($LIB cpu "$tpid")
  s0=$($LIB cpu "${CARRIER_SIPP:-0}")
  run_caller "$tag" "$sf" "$rate" "$calls" "$limit" -d "$HOLD_MS" -timeout_error
  sleep 1.5 # BYE transactions and the carrier's timewait settle
  c1=$($LIB cpu "$tpid")
  s1=$($LIB cpu "${CARRIER_SIPP:-0}")
  eval "$($LIB stat "$TMP/$tag.csv" "$calls")" # ok failed retrans cps setup_p99_ms
  STEP_OK=$ok STEP_FAILED=$failed STEP_CPS=$cps STEP_SETUP=$setup_p99_ms
  STEP_CPU=$(python3 -c "print('%.2f' % ($c1 - $c0))")
  STEP_CPU1K=$(div "$STEP_CPU" "$ok" 1000)
  sipp_cpu=$(python3 -c "print('%.2f' % ($(cat "$TMP/$tag.cpu" 2>/dev/null || echo 0) + $s1 - $s0))")
  log "$name rate=$rate calls=$calls ok=$ok failed=$failed retrans=$retrans achieved_cps=$cps setup_p99_ms=$setup_p99_ms target_cpu_s=$STEP_CPU cpu_s_per_1k=$STEP_CPU1K sipp_cpu_s=$sipp_cpu sipp_rc=$CALLER_RC"
  STEP_ERR=""
  if [ "$failed" -gt 0 ]; then
    STEP_ERR=$(first_error "$TMP/$tag.err")
    log "$name: $failed of $calls failed at $rate/s${STEP_ERR:+ (first: $STEP_ERR)}"
    return 1
  fi
  if [ "$cps" -lt $((rate * 9 / 10)) ]; then
    STEP_ERR="only $cps/s of $rate/s offered"
    log "$name: $STEP_ERR"
    return 1
  fi
  return 0
}

# rate_steps NAME SCENARIO TARGET_PID: steps the rate until a step fails (a step that lost at
# most 1% of its calls is tried again RETRIES times: other work on the machine can drop
# packets), sets BEST_* and
# records "rate cpu_per_1k" of passed steps in $TMP/NAME.steps.
rate_steps() {
  local name=$1 sf=$2 tpid=$3 rate try c0 c1 passed
  BEST_RATE=0 BEST_CPS=0 BEST_CPU1K=- BEST_SETUP=- LAST_ERR=""
  : >"$TMP/$name.steps"
  CARRIER_SIPP=$(sipp_pid_of "$CARRIER_PID")
  # What the target burns doing nothing (timers, polling), so per-call figures can be judged.
  c0=$($LIB cpu "$tpid")
  sleep 2
  c1=$($LIB cpu "$tpid")
  log "$name idle: $(python3 -c "print('%.1f' % (($c1 - $c0) / 2 * 100))")% of a core"
  for rate in $RATES; do
    passed=0
    for try in $(seq 0 "$RETRIES"); do
      if run_step "$name" "$sf" "$tpid" "$rate" "$try"; then
        passed=1
        break
      fi
      kill -0 "$tpid" 2>/dev/null || break
      # A handful of failures can be a hiccup of the machine; a collapse is the limit.
      [ "$STEP_OK" -gt 0 ] && [ $((STEP_FAILED * 100)) -le $((rate * STEP_S)) ] || break
      [ "$try" -lt "$RETRIES" ] && log "$name: trying $rate/s again" && sleep 3
    done
    if [ $passed = 0 ]; then
      LAST_ERR=$STEP_ERR
      [ "$STEP_OK" -eq 0 ] && LAST_ERR="0 of $((rate * STEP_S)) calls carried${STEP_ERR:+; first: $STEP_ERR}"
      break
    fi
    echo "$rate $STEP_CPU1K" >>"$TMP/$name.steps"
    BEST_RATE=$rate BEST_CPS=$STEP_CPS BEST_CPU1K=$STEP_CPU1K BEST_SETUP=$STEP_SETUP
    sleep 1
  done
}
# cpu_at NAME RATE: the CPU s/1k calls NAME measured at RATE, or "-".
cpu_at() {
  [ -s "$TMP/$1.steps" ] || { echo -; return 0; }
  awk -v r="$2" '$1 == r { v = $2 } END { print (v == "" ? "-" : v) }' "$TMP/$1.steps"
}

total_calls=0
# A retried step sends its calls again: the carrier (bounded by -m) must answer those too.
for r in $RATES; do total_calls=$((total_calls + r * STEP_S * (RETRIES + 1))); done
phase_limit=$(((STEP_S * 3 + 20) * $(wc -w <<<"$RATES") * (RETRIES + 1) + 60))

# --- Kamailio -----------------------------------------------------------------------------
KAM_PID=""
start_kamailio() { # $1 = auth|noauth
  local run="$TMP/kamailio-$1" defs=(-A "LISTEN=udp:127.0.0.1:$P_TARGET" -A "CARRIER=\"sip:127.0.0.1:$P_CARRIER\"")
  mkdir -p "$run"
  [ "$1" = auth ] && defs+=(-A WITH_AUTH)
  kamailio -c -f "$ROOT/bench/kamailio.cfg" "${defs[@]}" >"$run/check.log" 2>&1 ||
    { cat "$run/check.log" >&2; harness_error "bench/kamailio.cfg does not load"; }
  # -x fm: the default allocator (qm) costs ~4x the CPU per call (BENCH_KAMAILIO_ALLOC=qm to
  # see it). -m 1024 MB of shm: tm keeps each transaction for its wait timer, 256 MB run out
  # at 2000 calls/s. -b: 4 MB receive buffer. -n 2 UDP workers, no TCP, foreground
  # (-DD) with logs on stderr (-E), runtime dir and pid file in the temp dir.
  "${pin_target[@]}" timeout -k 5 "$phase_limit" kamailio -f "$ROOT/bench/kamailio.cfg" "${defs[@]}" \
    -x "${BENCH_KAMAILIO_ALLOC:-fm}" -m 1024 -M 16 -b 4194304 -n 2 -T -DD -E -Y "$run" -P "$run/kamailio.pid" -w "$run" \
    </dev/null >"$run/kamailio.log" 2>&1 &
  BG_PIDS+=($!)
  KAM_WRAP=$!
  for _ in $(seq 1 50); do
    if [ -s "$run/kamailio.pid" ] && ss -Hulpn "sport = :$P_TARGET" 2>/dev/null | grep -q kamailio; then
      KAM_PID=$(cat "$run/kamailio.pid")
      return 0
    fi
    kill -0 "$KAM_WRAP" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$run/kamailio.log" >&2 || true
  harness_error "kamailio did not start on 127.0.0.1:$P_TARGET"
}

KAM_NOAUTH_RATE=- KAM_AUTH_RATE=- KAM_AUTH_CPU1K=-
if has kamailio; then
  for variant in noauth auth; do
    start_carrier "$ROOT/bench/uas_load.xml" $((total_calls + 1000)) "$phase_limit"
    start_kamailio "$variant"
    sf="$ROOT/bench/uac_load.xml"
    [ "$variant" = noauth ] && sf="$ROOT/bench/uac_load_noauth.xml"
    log "kamailio ($variant) pid $KAM_PID: stepping $RATES calls/s, ${STEP_S}s each"
    rate_steps "kamailio-$variant" "$sf" "$KAM_PID"
    if [ "$BEST_RATE" = 0 ]; then
      echo "BENCH kamailio_call_setup_$variant: no step passed (${LAST_ERR:-no calls carried})"
      harness_error "kamailio ($variant) carried no step of calls: the reference setup is broken"
    fi
    echo "BENCH kamailio_call_setup_${variant}_rate_cps=$BEST_CPS offered_cps=$BEST_RATE failed=0 cpu_s_per_1k_calls=$BEST_CPU1K setup_p99_ms=$BEST_SETUP"
    if [ "$variant" = auth ]; then
      KAM_AUTH_RATE=$BEST_RATE KAM_AUTH_CPU1K=$BEST_CPU1K
    else
      KAM_NOAUTH_RATE=$BEST_RATE
    fi
    stop_bg "$KAM_WRAP"
    stop_bg "$CARRIER_PID"
  done
fi

# --- the switch ---------------------------------------------------------------------------
SWITCH_PID="" SWITCH_WRAP="" EXIT=0
SWITCH_BIN=${BENCH_SWITCH_BIN:-$ROOT/target/release/ctiswitch}
SWITCH_COMM=$(basename "$SWITCH_BIN" | cut -c1-15) # the kernel's comm: 15 characters
switch_build() {
  if [ -n "${BENCH_SWITCH_BIN:-}" ]; then
    log "switch binary: $SWITCH_BIN (not built)"
    [ -x "$SWITCH_BIN" ]
    return
  fi
  log "building the switch (cargo build --release)"
  if ! timeout 1800 cargo build --release --quiet >"$TMP/build.log" 2>&1; then
    tail -30 "$TMP/build.log" >&2
    return 1
  fi
  [ -x target/release/ctiswitch ]
}
start_switch() { # $1 = tag
  local dir="$TMP/switch-$1" rtp
  mkdir -p "$dir/data"
  # 8000 ports = 4000 relay pairs = 2000 calls up at once (2 s of calls at 1000/s).
  rtp=$($LIB range ${BENCH_RTP_PORTS:-8000})
  cat >"$dir/ctiswitch.toml" <<EOF
[sip]
listen = "127.0.0.1:$P_TARGET"
advertise = "127.0.0.1"

[media]
rtp_ports = "$rtp"

[http]
listen = "127.0.0.1:$P_HTTP"

[database]
url = "sqlite://$dir/bench.db?mode=rwc"

[storage]
dir = "$dir/data"

[recording]
enabled = false

[log]
level = "warn"

[[extensions]]
number = "$EXT"
password = "$PASSWORD"

[[trunks]]
name = "carrier"
host = "127.0.0.1:$P_CARRIER"
default = true
EOF
  "${pin_target[@]}" timeout -k 5 "$phase_limit" "$SWITCH_BIN" serve \
    --config "$dir/ctiswitch.toml" </dev/null >"$dir/switch.log" 2>&1 &
  SWITCH_WRAP=$!
  BG_PIDS+=("$SWITCH_WRAP")
  for _ in $(seq 1 300); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$P_HTTP/health")" = 200 ]; then
      SWITCH_PID=$(pgrep -P "$SWITCH_WRAP" -x "$SWITCH_COMM" | head -1)
      [ -n "$SWITCH_PID" ] && return 0
    fi
    kill -0 "$SWITCH_WRAP" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$dir/switch.log" >&2 || true
  return 1
}

SWITCH_ROUTES=0
if has switch || has media; then
  if ! switch_build; then
    echo "BENCH call_setup_rate: switch did not build (see above)"
    EXIT=1
  elif ! has switch; then
    SWITCH_ROUTES=1 # media only: the media phase probes for itself
  else
    start_carrier "$ROOT/bench/uas_load.xml" $((total_calls + 1000)) "$phase_limit"
    if ! start_switch rate; then
      echo "BENCH call_setup_rate: switch did not answer GET /health with 200"
      EXIT=1
    else
      log "switch pid $SWITCH_PID up; probing with 5 calls"
      run_caller switch-probe "$ROOT/bench/uac_load.xml" 5 5 15 -d "$HOLD_MS"
      eval "$($LIB stat "$TMP/switch-probe.csv" 5)"
      if [ "$ok" -eq 0 ]; then
        err=$(first_error "$TMP/switch-probe.err")
        echo "BENCH call_setup_rate: switch carried 0 of 5 calls (routing not available?${err:+ first error: $err}) kamailio_auth_cpu_s_per_1k_calls=$KAM_AUTH_CPU1K"
      else
        SWITCH_ROUTES=1
        sleep 1
        log "switch: stepping $RATES calls/s, ${STEP_S}s each"
        rate_steps switch "$ROOT/bench/uac_load.xml" "$SWITCH_PID"
        if [ "$BEST_RATE" = 0 ]; then
          echo "BENCH call_setup_rate: switch passed no step (${LAST_ERR:-failed calls at the first rate}) kamailio_auth_cpu_s_per_1k_calls=$KAM_AUTH_CPU1K"
        else
          kam=$(cpu_at kamailio-auth "$BEST_RATE")
          ratio=$(div "$BEST_CPU1K" "$kam" 1)
          [ "$kam" = - ] && ratio=-
          echo "BENCH call_setup_rate_cps=$BEST_CPS offered_cps=$BEST_RATE failed=0 switch_cpu_s_per_1k_calls=$BEST_CPU1K kamailio_cpu_s_per_1k_calls=$kam ratio=$ratio setup_p99_ms=$BEST_SETUP kamailio_auth_max_cps=$KAM_AUTH_RATE"
        fi
      fi
      stop_bg "$SWITCH_WRAP"
    fi
    stop_bg "$CARRIER_PID"
  fi
fi

# --- RTP relay ----------------------------------------------------------------------------
if has media && [ $EXIT = 0 ]; then
  if [ "$SWITCH_ROUTES" = 0 ]; then
    echo "BENCH rtp_relay: skipped (the switch carried no calls)"
  else
    media_limit=$((MEDIA_CALL_S + MEDIA_CALLS / MEDIA_RATE + 40))
    start_carrier "$ROOT/bench/uas_media.xml" "$MEDIA_CALLS" $((media_limit + 10))
    if ! start_switch media; then
      echo "BENCH rtp_relay: switch did not answer GET /health with 200"
      EXIT=1
    else
      sleep 1
      rss_idle=$($LIB rss "$SWITCH_PID")
      log "rtp: $MEDIA_CALLS calls at $MEDIA_RATE/s, ${MEDIA_CALL_S}s each, PCMA both ways; idle RSS ${rss_idle} kB"
      run_caller media "$ROOT/bench/uac_media.xml" "$MEDIA_RATE" "$MEDIA_CALLS" "$media_limit" &
      media_job=$!
      BG_PIDS+=("$media_job")
      # All calls are up once the ramp is over (+2 s); measure a window inside the hold time.
      ramp=$(((MEDIA_CALLS + MEDIA_RATE - 1) / MEDIA_RATE))
      window=$MEDIA_WINDOW
      [ $((ramp + 2 + window + 2)) -le $MEDIA_CALL_S ] || window=$((MEDIA_CALL_S - ramp - 4))
      if [ "$window" -lt 3 ]; then
        wait "$media_job" || true
        harness_error "BENCH_MEDIA_CALLS/BENCH_MEDIA_RATE ramp leaves no measuring window in a ${MEDIA_CALL_S}s call"
      fi
      sleep $((ramp + 2))
      c0=$($LIB cpu "$SWITCH_PID")
      read -r u0 _ d0 <<<"$($LIB udp)"
      t0=$(date +%s.%N)
      rss_busy=$($LIB rss "$SWITCH_PID")
      sleep "$window"
      c1=$($LIB cpu "$SWITCH_PID")
      read -r u1 _ d1 <<<"$($LIB udp)"
      t1=$(date +%s.%N)
      rss_busy2=$($LIB rss "$SWITCH_PID")
      [ "$rss_busy2" -gt "$rss_busy" ] && rss_busy=$rss_busy2
      wait "$media_job" || true
      eval "$($LIB stat "$TMP/media.csv" "$MEDIA_CALLS")"
      secs=$(python3 -c "print($t1-$t0)")
      cpu=$(python3 -c "print($c1-$c0)")
      pct=$(python3 -c "print('%.3f' % (($cpu) / ($MEDIA_CALLS * $secs) * 100))")
      core_pct=$(python3 -c "print('%.1f' % (($cpu) / $secs * 100))")
      mem=$(python3 -c "print('%.1f' % (($rss_busy - $rss_idle) / $MEDIA_CALLS))")
      # g711a.pcap: 236 packets in 7.05 s. With the relay working, loopback carries four
      # streams per call (caller→switch→carrier, carrier→switch→caller); without it, two.
      pps=$(python3 -c "print('%.0f' % (($u1 - $u0) / $secs))")
      want=$(python3 -c "print('%.0f' % ($MEDIA_CALLS * 4 * 236 / 7.05))")
      relayed=$(python3 -c "print('%.0f' % (100 * ($u1 - $u0) / $secs / $want))")
      if [ "$ok" -lt "$MEDIA_CALLS" ]; then
        err=$(first_error "$TMP/media.err")
        log "rtp: only $ok of $MEDIA_CALLS calls completed${err:+ (first error: $err)}"
      fi
      echo "BENCH rtp_relay calls=$MEDIA_CALLS ok=$ok switch_cpu_percent_of_one_core_per_relayed_call=$pct switch_cpu_percent_of_one_core=$core_pct memory_kb_per_active_call=$mem idle_rss_kb=$rss_idle loopback_udp_pps=$pps of_expected_percent=$relayed window_s=$(fmt "$secs" 1)"
      [ "$relayed" -lt 90 ] && log "rtp: only $relayed% of the expected RTP packets crossed loopback: is the switch relaying both directions?"
      stop_bg "$SWITCH_WRAP"
    fi
    stop_bg "$CARRIER_PID"
  fi
fi

# --- media engine DSP (issue 4): mixer, playback, recording, per core -----------------------
if [[ " $ONLY " == *" dsp "* ]]; then
  log "dsp: cargo bench -p actors --bench media"
  if ! (cd "$ROOT" && "${pin_target[@]}" cargo bench -q -p actors --bench media 2>"$TMP/dsp.err" | grep '^BENCH'); then
    log "dsp: media bench failed: $(tail -3 "$TMP/dsp.err")"
    EXIT=1
  fi
fi

# --- media engine with real sockets (issue 4): relay, playback, recording, conference ----
if [[ " $ONLY " == *" engine "* ]]; then
  log "engine: cargo bench -p actors --bench engine (loopback sockets, engine-thread CPU)"
  if ! (cd "$ROOT" && "${pin_target[@]}" cargo bench -q -p actors --bench engine 2>"$TMP/engine.err" | grep '^BENCH'); then
    log "engine: bench failed: $(tail -3 "$TMP/engine.err")"
    EXIT=1
  fi
fi

# --- queues (issue 5): calls per second into a queue of 200 agents, see bench/queue.sh ---
if has queue; then
  # shellcheck source=bench/queue.sh
  source "$ROOT/bench/queue.sh"
fi

exit $EXIT
