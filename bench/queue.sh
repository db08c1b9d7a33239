# The `queue` phase of scripts/bench.sh (issue 5): calls per second into a queue served by
# 200 agents, ending with no stuck agent and no lost caller. Sourced by scripts/bench.sh,
# which provides ROOT, TMP, LIB, the pinning arrays, the P_* ports, RETRIES, EXIT and the
# helpers (log, harness_error, stop_bg, switch_build, first_error, div, trace_args).
#
#   switch: BENCH_QUEUE_AGENTS (200) agent extensions 2001… (one password), all members of
#     group 3003 (longest-idle, ring_timeout 5, max_wait 60, wrap_up 0); a trunk whose host is
#     the callers' SIPp address and access number 1000 → group:3003 (no digest round trip for
#     the callers); recording off; music on hold BENCH_QUEUE_MUSIC (default builtin); the
#     position announcement's TTS engine BENCH_QUEUE_TTS (default: the switch's, espeak-ng).
#   agents: ONE SIPp UAS (bench/uas_queue_agent.xml) for all of them; every extension is
#     REGISTERed (bench/queue_register.xml, a per-line-credential CSV) with its Contact at that
#     process's port. An agent answers at once (180, 200), talks BENCH_QUEUE_TALK_MS (400) and
#     hangs up: agent occupancy is bounded by ring + talk, whatever the queue does.
#   callers: SIPp UAC from the trunk address (bench/uac_queue_caller.xml) dialling 1000 at each
#     rate of BENCH_QUEUE_RATES for BENCH_QUEUE_STEP_SECONDS; every call must get the queue's
#     200 and the BYE after the agent's talk. Each call has its own Call-ID (-cid_str), looked
#     up in the call log (SQLite) afterwards: exactly one row, STATE_RECEIVED, callee an agent.
#   at the end: QUEUE_INFO must be [], and a burst of AGENTS long (8 s) calls must be answered
#     by AGENTS distinct agents with queueDuration 0–1 s: nobody stuck.
#
# Lines: BENCH queue_rate_cps=… per step, BENCH queue_max_rate_cps=…, BENCH queue_calllog …,
# BENCH queue_no_stuck_agents=…. Exit status as the other phases: 1 when the switch did not
# build or start, 2 on a harness error; failures of the switch are reported, not fatal.

Q_RATES=${BENCH_QUEUE_RATES:-"100 200 300 400"}
Q_STEP_S=${BENCH_QUEUE_STEP_SECONDS:-10}
Q_TALK_MS=${BENCH_QUEUE_TALK_MS:-400}
Q_AGENTS=${BENCH_QUEUE_AGENTS:-200}
Q_MUSIC=${BENCH_QUEUE_MUSIC:-builtin}
Q_TTS=${BENCH_QUEUE_TTS:-} # empty: the switch's default engine (espeak-ng)
Q_FIRST=2001
Q_PASSWORD=agent-pw
Q_TARGET_CPS=200
Q_LIB="python3 $ROOT/bench/queuelib.py"

for n in $Q_RATES $Q_STEP_S $Q_TALK_MS $Q_AGENTS; do
  [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || harness_error "queue knob value '$n' is not a positive integer"
done
[ "$Q_AGENTS" -le 999 ] || harness_error "BENCH_QUEUE_AGENTS is capped at 999"

q_total=0 q_limit=180
for r in $Q_RATES; do
  q_total=$((q_total + r * Q_STEP_S))
  q_limit=$((q_limit + (Q_STEP_S * 3 + 30) * (RETRIES + 1)))
done
read -r Q_P_REG Q_CTRL3 <<<"$($LIB ports 2)"

# q_queue_info: QUEUE_INFO's body on one line.
q_queue_info() { $Q_LIB queue_info "http://127.0.0.1:$P_HTTP/bridge/callctrl?opt=QUEUE_INFO"; }

# q_wait_empty: waits up to 15 s for QUEUE_INFO to be []; prints the last body.
q_wait_empty() {
  local body
  for _ in $(seq 1 30); do
    body=$(q_queue_info)
    [ "$body" = "[]" ] && break
    sleep 0.5
  done
  echo "$body"
}

q_start_switch() {
  local dir="$TMP/switch-queue"
  mkdir -p "$dir/data"
  $Q_LIB config "$dir/ctiswitch.toml" SIP_PORT="$P_TARGET" HTTP_PORT="$P_HTTP" DB="$dir/bench.db" \
    DATA="$dir/data" RTP="$($LIB range 8000)" MUSIC="$Q_MUSIC" CALLER_PORT="$P_CALLER" \
    FIRST=$Q_FIRST AGENTS="$Q_AGENTS" PASSWORD=$Q_PASSWORD TTS="$Q_TTS" || harness_error "queuelib config failed"
  Q_DB="$dir/bench.db"
  "${pin_target[@]}" timeout -k 5 "$q_limit" "$SWITCH_BIN" serve \
    --config "$dir/ctiswitch.toml" </dev/null >"$dir/switch.log" 2>&1 &
  Q_SWITCH_WRAP=$!
  BG_PIDS+=("$Q_SWITCH_WRAP")
  for _ in $(seq 1 600); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$P_HTTP/health")" = 200 ]; then
      Q_SWITCH_PID=$(pgrep -P "$Q_SWITCH_WRAP" -x "$SWITCH_COMM" | head -1)
      [ -n "$Q_SWITCH_PID" ] && return 0
    fi
    kill -0 "$Q_SWITCH_WRAP" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$dir/switch.log" >&2 || true
  return 1
}

# The agents' UAS: one process, every agent's Contact.
q_start_agents() {
  local calls=$((q_total * (RETRIES + 1) + Q_AGENTS + 1000))
  "${pin_load[@]}" timeout -k 5 $((q_limit + 10)) sipp -sf "$ROOT/bench/uas_queue_agent.xml" \
    -i 127.0.0.1 -p "$P_CARRIER" -mi 127.0.0.1 -mp $((P_CARRIER + 2)) -ci 127.0.0.1 -cp "$P_CTRL1" \
    -m "$calls" -timeout "$q_limit" -d "$Q_TALK_MS" -nostdin -max_recv_loops 5000 \
    -max_sched_loops 5000 -buff_size 4194304 -trace_err -error_file "$TMP/q-agents_err.log" \
    $(trace_args q-agents) </dev/null >"$TMP/q-agents.out" 2>&1 &
  Q_AGENTS_WRAP=$!
  BG_PIDS+=("$Q_AGENTS_WRAP")
  for _ in $(seq 1 50); do
    if ss -Hulpn "sport = :$P_CARRIER" 2>/dev/null | grep -q sipp; then
      Q_AGENTS_SIPP=$(sipp_pid_of "$Q_AGENTS_WRAP")
      return 0
    fi
    kill -0 "$Q_AGENTS_WRAP" 2>/dev/null || break
    sleep 0.1
  done
  cat "$TMP/q-agents.out" >&2 || true
  harness_error "SIPp agents did not start on 127.0.0.1:$P_CARRIER"
}

# q_register: REGISTERs every agent (Contact: the agents' UAS); sets Q_REGISTERED.
q_register() {
  $Q_LIB agents "$TMP/q-agents.csv" "127.0.0.1:$P_CARRIER" FIRST=$Q_FIRST AGENTS="$Q_AGENTS" \
    PASSWORD=$Q_PASSWORD || harness_error "queuelib agents failed"
  local rc try
  # A busy machine can lose a REGISTER: all of them again (same Contact) up to twice more.
  for try in 1 2 3; do
    rc=0
    rm -f "$TMP/q-register.csv"
    "${pin_load[@]}" timeout -k 5 45 sipp -sf "$ROOT/bench/queue_register.xml" -inf "$TMP/q-agents.csv" \
      "127.0.0.1:$P_TARGET" -i 127.0.0.1 -p "$Q_P_REG" -mi 127.0.0.1 -mp $((Q_P_REG + 2)) \
      -ci 127.0.0.1 -cp "$Q_CTRL3" -m "$Q_AGENTS" -r 200 -timeout 30 -timeout_error -nostdin \
      -trace_stat -stf "$TMP/q-register.csv" -fd 1 -trace_err -error_file "$TMP/q-register.err" \
      </dev/null >"$TMP/q-register.out" 2>&1 || rc=$?
    [ -s "$TMP/q-register.csv" ] || { cat "$TMP/q-register.out" >&2; harness_error "SIPp register run produced no statistics (rc $rc)"; }
    eval "$($LIB stat "$TMP/q-register.csv" "$Q_AGENTS")"
    Q_REGISTERED=$ok
    [ "$ok" -lt "$Q_AGENTS" ] || break
    log "queue: $ok of $Q_AGENTS REGISTERs succeeded (try $try)"
    sleep 1
  done
}

# q_caller TAG PREFIX RATE CALLS: CALLS calls at RATE/s from the trunk address, Call-IDs
# "qTAG-<n>@…", caller numbers PREFIX<n>; sets Q_RC. Files: $TMP/q-TAG.{csv,err,out,cpu}.
# -l CALLS: SIPp's default cap on open calls (3 × rate × -d, at least 3 × rate) would throttle
# the callers once they wait in a backed-up queue, hiding what the switch does.
q_caller() {
  local tag=$1 prefix=$2 rate=$3 calls=$4 limit
  limit=$((calls / rate + 90)) # + the caller's 75 s wait for the BYE
  Q_RC=0
  rm -f "$TMP/q-$tag.csv" "$TMP/q-$tag.err"
  $LIB rusage "$TMP/q-$tag.cpu" -- "${pin_load[@]}" timeout -k 5 $((limit + 10)) \
    sipp -sf "$ROOT/bench/uac_queue_caller.xml" -s 1000 "127.0.0.1:$P_TARGET" -i 127.0.0.1 \
    -p "$P_CALLER" -mi 127.0.0.1 -mp $((P_CALLER + 2)) -ci 127.0.0.1 -cp "$P_CTRL2" \
    -key caller_prefix "$prefix" -cid_str "q$tag-%u@%s" -r "$rate" -m "$calls" -l "$calls" -timeout "$limit" \
    -timeout_error -nostdin -max_recv_loops 5000 -max_sched_loops 5000 -buff_size 4194304 \
    -trace_stat -stf "$TMP/q-$tag.csv" -fd 1 -trace_err -error_file "$TMP/q-$tag.err" \
    $(trace_args "q-$tag") </dev/null >"$TMP/q-$tag.out" 2>&1 || Q_RC=$?
  [ -s "$TMP/q-$tag.csv" ] || { tail -20 "$TMP/q-$tag.out" >&2; harness_error "SIPp caller run $tag produced no statistics (rc $Q_RC)"; }
}

# q_step RATE TRY: one step; prints its BENCH line; returns 0 when it passed.
q_step() {
  local rate=$1 tag="$1x$2" calls c0 c1 a0 a1 t0 t1 wall cpu cpu1k sipp_cpu sipp_pct err=""
  calls=$((rate * Q_STEP_S))
  c0=$($LIB cpu "$Q_SWITCH_PID")
  a0=$($LIB cpu "${Q_AGENTS_SIPP:-0}")
  t0=$(date +%s.%N)
  q_caller "$tag" "0611" "$rate" "$calls"
  t1=$(date +%s.%N)
  sleep 1.5 # the last BYEs, the call-log writer's batch
  c1=$($LIB cpu "$Q_SWITCH_PID")
  a1=$($LIB cpu "${Q_AGENTS_SIPP:-0}")
  eval "$($LIB stat "$TMP/q-$tag.csv" "$calls")"                                      # ok failed retrans cps setup_p99_ms
  eval "$($Q_LIB calllog "$Q_DB" "q$tag-" "$calls" "$Q_FIRST" "$Q_AGENTS" 10)" # rows … other
  cpu=$(python3 -c "print('%.2f' % ($c1 - $c0))")
  cpu1k=$(div "$cpu" "$calls" 1000)
  wall=$(python3 -c "print('%.1f' % ($t1 - $t0))")
  sipp_cpu=$(python3 -c "print('%.2f' % ($(cat "$TMP/q-$tag.cpu" 2>/dev/null || echo 0) + $a1 - $a0))")
  sipp_pct=$(python3 -c "print('%.0f' % (100 * $sipp_cpu / max($wall, 0.1)))")
  Q_STEP_OK=$ok Q_STEP_FAILED=$failed Q_STEP_LOST=$lost Q_STEP_CPS=$cps Q_STEP_CPU1K=$cpu1k Q_STEP_WAIT=$max_wait_s
  Q_ROWS=$((Q_ROWS + rows)) Q_CALLS=$((Q_CALLS + calls)) Q_LOST=$((Q_LOST + lost)) Q_DUP=$((Q_DUP + dup)) Q_MISSING=$((Q_MISSING + missing))
  echo "BENCH queue_rate_cps=$cps offered_cps=$rate calls=$calls failed=$failed answered_by_agent=$answered max_queue_wait_s=$max_wait_s switch_cpu_s_per_1k_calls=$cpu1k"
  log "queue rate=$rate try=$2 ok=$ok failed=$failed retrans=$retrans setup_p99_ms=$setup_p99_ms rows=$rows dup=$dup missing=$missing lost=$lost agents_used=$agents mean_queue_wait_s=$mean_wait_s max_queueDuration=$max_qdur${other:+ not_answered_rows=$other} switch_cpu_s=$cpu wall_s=$wall sipp_cpu_s=$sipp_cpu (${sipp_pct}% of a core) sipp_rc=$Q_RC load=$(cut -d' ' -f1 /proc/loadavg)"
  if [ "$failed" -gt 0 ]; then
    err=$(first_error "$TMP/q-$tag.err")
    log "queue: $failed of $calls calls failed at $rate/s${err:+ (first: $err)}"
  fi
  [ "$cps" -lt $((rate * 9 / 10)) ] && log "queue: only $cps/s of $rate/s offered"
  [ "$failed" -eq 0 ] && [ "$lost" -eq 0 ] && [ "$dup" -eq 0 ] && [ "$cps" -ge $((rate * 9 / 10)) ]
}

q_run() {
  if ! switch_build; then
    echo "BENCH queue: switch did not build (see above)"
    EXIT=1
    return
  fi
  if ! q_start_switch; then
    echo "BENCH queue: switch did not answer GET /health with 200"
    EXIT=1
    return
  fi
  q_start_agents
  q_register
  log "queue: switch pid $Q_SWITCH_PID, $Q_REGISTERED of $Q_AGENTS agents registered (UAS 127.0.0.1:$P_CARRIER, talk ${Q_TALK_MS} ms), music_on_hold=$Q_MUSIC"
  if [ "$Q_REGISTERED" -lt "$Q_AGENTS" ]; then
    err=$(first_error "$TMP/q-register.err")
    echo "BENCH queue: only $Q_REGISTERED of $Q_AGENTS agents registered${err:+ (first error: $err)}"
    return
  fi
  Q_ROWS=0 Q_CALLS=0 Q_LOST=0 Q_DUP=0 Q_MISSING=0
  q_caller probe 0610 5 5
  eval "$($Q_LIB calllog "$Q_DB" "qprobe-" 5 "$Q_FIRST" "$Q_AGENTS" 5)"
  if [ "$answered" -eq 0 ]; then
    err=$(first_error "$TMP/q-probe.err")
    echo "BENCH queue: no agent answered any of 5 probe calls (rows: ${other:-none}${err:+; first error: $err})"
    return
  fi
  local c0 c1 rate try passed best=0 best_cps=0 best_cpu=- best_wait=-
  c0=$($LIB cpu "$Q_SWITCH_PID")
  sleep 2
  c1=$($LIB cpu "$Q_SWITCH_PID")
  log "queue idle: $(python3 -c "print('%.1f' % (($c1 - $c0) / 2 * 100))")% of a core; stepping $Q_RATES calls/s, ${Q_STEP_S}s each"
  for rate in $Q_RATES; do
    passed=0
    for try in $(seq 0 "$RETRIES"); do
      if q_step "$rate" "$try"; then
        passed=1
        break
      fi
      kill -0 "$Q_SWITCH_PID" 2>/dev/null || break
      [ "$Q_STEP_OK" -gt 0 ] && [ $(((Q_STEP_FAILED + Q_STEP_LOST) * 100)) -le $((rate * Q_STEP_S)) ] || break
      [ "$try" -lt "$RETRIES" ] && log "queue: trying $rate/s again" && sleep 3
    done
    [ $passed = 1 ] || break
    best=$rate best_cps=$Q_STEP_CPS best_cpu=$Q_STEP_CPU1K best_wait=$Q_STEP_WAIT
    sleep 1
  done
  local met=no
  [ "$best" -ge "$Q_TARGET_CPS" ] && met=yes
  echo "BENCH queue_max_rate_cps=$best_cps offered_cps=$best target_cps=$Q_TARGET_CPS met=$met agents=$Q_AGENTS talk_ms=$Q_TALK_MS music_on_hold=$Q_MUSIC tts=${Q_TTS:-default} max_queue_wait_s=$best_wait switch_cpu_s_per_1k_calls=$best_cpu"
  if ! kill -0 "$Q_SWITCH_PID" 2>/dev/null; then
    echo "BENCH queue_no_stuck_agents=no distinct_agents=0 (the switch died: see $TMP/switch-queue/switch.log)"
    return
  fi

  # Nobody stuck: the queue is empty, and AGENTS concurrent long calls take AGENTS agents at once.
  local info_load info_burst stuck=yes
  info_load=$(q_wait_empty)
  q_caller burst 0699 "$Q_TARGET_CPS" "$Q_AGENTS"
  eval "$($LIB stat "$TMP/q-burst.csv" "$Q_AGENTS")"
  eval "$($Q_LIB calllog "$Q_DB" "qburst-" "$Q_AGENTS" "$Q_FIRST" "$Q_AGENTS" 10)"
  info_burst=$(q_wait_empty)
  Q_ROWS=$((Q_ROWS + rows)) Q_CALLS=$((Q_CALLS + Q_AGENTS)) Q_LOST=$((Q_LOST + lost)) Q_DUP=$((Q_DUP + dup)) Q_MISSING=$((Q_MISSING + missing))
  if [ "$info_load" != "[]" ] || [ "$info_burst" != "[]" ] || [ "$agents" -ne "$Q_AGENTS" ] ||
    [ "$answered" -ne "$Q_AGENTS" ] || [ "$bad_qdur" -ne 0 ] || [ "$failed" -ne 0 ]; then
    stuck=no
  fi
  echo "BENCH queue_no_stuck_agents=$stuck distinct_agents=$agents burst_calls=$Q_AGENTS burst_failed=$failed burst_answered_by_agent=$answered burst_max_queueDuration_s=$max_qdur burst_max_queue_wait_s=$max_wait_s queue_info_after_load=$info_load queue_info_after_burst=$info_burst"
  [ "$stuck" = yes ] || log "queue: burst rows not answered by an agent: ${other:-none}; queueDuration outside 0-1 s: $bad_qdur"
  echo "BENCH queue_calllog calls=$Q_CALLS rows=$Q_ROWS lost_callers=$Q_LOST duplicate_rows=$Q_DUP missing_rows=$Q_MISSING"
}

q_run
if [ -n "${Q_AGENTS_WRAP:-}" ]; then stop_bg "$Q_AGENTS_WRAP"; fi
if [ -n "${Q_SWITCH_WRAP:-}" ]; then stop_bg "$Q_SWITCH_WRAP"; fi
