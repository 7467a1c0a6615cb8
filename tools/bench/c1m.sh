#!/usr/bin/env bash
# tools/bench/c1m.sh -- the seed's experiment on one box, measured: hb-server
# and 17 client hosts (network namespaces) holding 1,000,000 connections, the
# three stages (idle; 30,000 shakes/s; 60,000 shakes/s, packets dispensed at
# 200/s), then the highest sustained shake rate of hb-server and of the echo
# floor (hb-echo-floor driven by the same clients in --echo mode), the ledger
# check, and a report.  Not part of tools/test.sh: it takes ~10 GB of kernel
# memory and most of the machine for ~25 minutes at full scale.
# The client hosts are driven as the real fleet would be (issue 16): one
# agent per host (hb-client --agent) takes its tasks from a redis-server on
# the bridge, and every rate change is one tools/fleet --redis command.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

usage() {
  cat <<'EOF'
Usage: tools/bench/c1m.sh [OPTIONS]

Scale (defaults: the seed's):
  --users N          connections / users in all (1000000)
  --hosts H          client hosts, one hb-client each (17)
  --threads T        worker threads per hb-client (4; each holds at most
                     ~19,900 connections: its own descriptor table)
  --addrs K          source addresses per host (2)
  --ports N          server ports, 7000.. (16); connections are spread over
                     (source, port) pairs so none is over half full
  --sets S           hb-server SETs (users/15,625, at least 4)
The stages:
  --idle SEC         stage 1, all connected and idle (30)
  --qps1 Q --qps2 Q  aggregate shakes/s of stages 2 and 3 (30000, 60000)
  --rate R           packets dispensed per second (200)
  --packets P        shake-flow packets per stage (40000 x users/1M)
  --send-packets S   send-flow packets, 3 recipients each (20000 x users/1M)
  --connect-budget SEC  time allowed to connect everyone (users/12,500 + 20)
The rate search (hb-server, then the echo floor with the same clients):
  --step-from Q      first rate tried (10000; 5000 below 200,000 users)
  --step-max Q       highest rate tried (90% of users: one shake per user
                     and second is hb-server's default --shake-limit)
  --step-seconds S   seconds per step, the first 2 not judged (10)
  --max-p99-ms MS    a step fails when p99 passes this (10) or when replies
                     fall behind (mean < 97% of the rate)
  --no-steps         skip the search;  --no-floor  skip the echo floor
Hot upgrade (issue 17):
  --upgrade SEC      SEC seconds into stage 2, replace hb-server by a new
                     process with tools/upgrade.sh (same binary, same flags)
                     and report the pause: seconds with p99 over 100 ms and
                     the worst p99 (pause.py), connections lost and shakes
                     retried by the clients, memory before and after
Side by side (issue 14), instead of the stages and the searches:
  --compare ROUNDS   hb-server and hb-echo-floor run at once (ports
                     7000.. and the next free range), each with its own
                     fleet holding --users connections (c and e; at most
                     200,000 users); then ROUNDS rounds of two fixed-rate
                     windows, one per target, in the order S F, F S, S F, ...
                     (a drift of the box cancels over rounds; one fleet
                     shakes at a time); the report gives each window's cost
                     and the rounds' median and spread
  --compare-qps Q    the windows' rate (90% of users, as --step-max)
  --compare-seconds S  seconds per window, the first 2 not counted (15)
  Quick: tools/bench/c1m.sh --users 19800 --hosts 2 --compare 3
What it costs (tools/bench/sample.py, in every mode): OUT/cost.tsv, once a
second: CPU, context switches, run-queue wait and syscalls (perf) of each
role (server, floor, each fleet, the rest), in a cgroup v2 per role, and
the box's /proc/stat; report.md's cost table has them per window and shake.
  --no-cost          no sampler;  --no-perf  no perf stat (syscalls)
Other:
  --out DIR          results (out/bench-c1m-DATE)
  --build DIR        build directory (build); built if needed
  --prefix P --net A.B   client host names and /16 (hb, 10.77)
  -h, --help

Reduced scale, a few minutes:  tools/bench/c1m.sh --users 100000 --hosts 4
Files in DIR: report.md (printed at the end), result.txt (key=value),
reports.tsv (every per-second report: hb-monitor --reports), monitor.tsv
(hb-monitor's merged seconds; dashboard live during the run), phases.tsv,
facts.txt, logs, server.journal/.stats, fleet-c.txt / fleet-e.txt (the
merged results of the agents: tools/fleet task results), each agent's
directory (c1..cH, e1..eH: its runs' ledger, stats and histogram), and the
charts of tools/plot.sh in DIR/plots/.
EOF
}

USERS=1000000 HOSTS=17 THREADS=4 ADDRS=2 NPORTS=16 SETS='' IDLE=30 QPS1=30000 QPS2=60000 RATE=200
PACKETS='' SEND='' BUDGET='' STEP_FROM='' STEP_MAX='' STEP_S=10 MAX_P99=10 STEPS=1 FLOOR=1
OUT='' BUILD=build PREFIX=hb NET=10.77 BASE_PORT=7000 UPGRADE=0
COMPARE=0 CMP_QPS='' CMP_S=15 COST=1 PERF=1 CTL_PORT=980
while [ $# -gt 0 ]; do
  case $1 in
    --users) USERS=$2; shift ;;
    --hosts) HOSTS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --addrs) ADDRS=$2; shift ;;
    --ports) NPORTS=$2; shift ;;
    --sets) SETS=$2; shift ;;
    --idle) IDLE=$2; shift ;;
    --qps1) QPS1=$2; shift ;;
    --qps2) QPS2=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --packets) PACKETS=$2; shift ;;
    --send-packets) SEND=$2; shift ;;
    --connect-budget) BUDGET=$2; shift ;;
    --step-from) STEP_FROM=$2; shift ;;
    --step-max) STEP_MAX=$2; shift ;;
    --step-seconds) STEP_S=$2; shift ;;
    --max-p99-ms) MAX_P99=$2; shift ;;
    --no-steps) STEPS=0 ;;
    --no-floor) FLOOR=0 ;;
    --upgrade) UPGRADE=$2; shift ;;
    --compare) COMPARE=$2; shift ;;
    --compare-qps) CMP_QPS=$2; shift ;;
    --compare-seconds) CMP_S=$2; shift ;;
    --no-cost) COST=0 ;;
    --no-perf) PERF=0 ;;
    --out) OUT=$2; shift ;;
    --build) BUILD=$2; shift ;;
    --prefix) PREFIX=$2; shift ;;
    --net) NET=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench-c1m.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
die() { echo "bench-c1m.sh: $*" >&2; exit 1; }
for v in USERS HOSTS THREADS ADDRS NPORTS IDLE QPS1 QPS2 RATE STEP_S; do
  { [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ]; } || die "--${v,,} must be a positive whole number"
done
[ "$(id -u)" = 0 ] || die "must run as root (sysctls, network namespaces)"
SETS=${SETS:-$(((USERS + 15624) / 15625))}
[ "$SETS" -ge 4 ] || SETS=4
PACKETS=${PACKETS:-$((40000 * USERS / 1000000))}
SEND=${SEND:-$((20000 * USERS / 1000000))}
BUDGET=${BUDGET:-$((USERS / 12500 + 20))}
[ "$USERS" -ge 200000 ] && def_step=10000 || def_step=5000
STEP_FROM=${STEP_FROM:-$def_step}
STEP_MAX=${STEP_MAX:-$((USERS * 9 / 10))}
PER=$(((USERS + HOSTS - 1) / HOSTS)) # the most one host plays (1,000,000 / 17 does not divide)
[ "$HOSTS" -le "$USERS" ] || die "--hosts above --users"
[ $(((PER + THREADS - 1) / THREADS)) -le 19900 ] || die "$PER connections per host need --threads >= $(((PER + 19899) / 19900)) (20,000 descriptors per table)"
[ "$COMPARE" != 0 ] || [ "$QPS2" -le "$USERS" ] || die "--qps2 above --users: a user shakes at most once a second"
if [ "$COMPARE" != 0 ]; then # side by side: no stages (no packets), no searches
  { [[ $COMPARE =~ ^[0-9]+$ ]] && [[ $CMP_S =~ ^[0-9]+$ ]] && [ "$CMP_S" -ge 5 ]; } || die "--compare needs ROUNDS, --compare-seconds at least 5"
  [ "$USERS" -le 200000 ] || die "--compare holds 2 x --users connections: at most 200,000 users"
  CMP_QPS=${CMP_QPS:-$((USERS * 9 / 10))}
  [ "$CMP_QPS" -le "$USERS" ] || die "--compare-qps above --users: a user shakes at most once a second"
  PACKETS=0 SEND=0 STEPS=0
fi
OUT=${OUT:-$ROOT/out/bench-c1m-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/bench.log") 2>&1

T0=$(date +%s)
say() { echo "[$(($(date +%s) - T0))s] $*"; }
fact() { echo "$1=$2" >>"$OUT/facts.txt"; }
# stat FILE KEY: a counter, 0 until the file and the counter are there (hb-stats)
stat() { "$B/hb-stats" --default 0 "$1" "$2"; }
meminfo() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
NOTES=()
note() { NOTES+=("$*"); say "note: $*"; }
: >"$OUT/facts.txt"
: >"$OUT/phases.tsv"

tools/dev/setup.sh
command -v python3 >/dev/null || die "python3 is needed for the report (apt-get install python3)"
command -v redis-server >/dev/null || die "redis-server is needed for the fleet's tasks (tools/dev/setup.sh)"
tools/dev/build.sh "$BUILD" >/dev/null
B=$ROOT/$BUILD/bin
[ -x "$B/hb-echo-floor" ] || die "$B/hb-echo-floor is missing"
[ -x "$B/hb-monitor" ] || die "$B/hb-monitor is missing"
[ -x "$B/hb-fleet" ] || die "$B/hb-fleet is missing"
export HB_BIN=$B # tools/fleet runs this build's hb-fleet
hosts() { tools/hosts.sh --prefix "$PREFIX" --net "$NET" "$@"; }

# ---- cleanup: whatever happens, nothing of ours stays ------------------------------------
PIDS=()
cleanup() {
  local rc=$?
  set +e
  [ -n "$NAP" ] && kill "$NAP" 2>/dev/null
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  hosts down >/dev/null 2>&1 # also ends what still runs inside the hosts
  sleep 1
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  # only our processes: a bare `wait` would also wait for the tee of our own
  # output, which ends only when we do
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  cost_stop
  sysctl/revert.sh --holder $$ >"$OUT/revert.log" 2>&1 || echo "bench-c1m.sh: sysctl/revert.sh failed, see $OUT/revert.log" >&2
  [ $rc = 0 ] || echo "bench-c1m.sh: failed (exit $rc); everything it made was removed; files in $OUT" >&2
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# This script steers the run on the same 2 cores as the load it makes.  In an
# overloaded stage 3 (~150 busy threads) a plain shell got so little CPU that
# one tools/fleet call (a few dozen curl and jq processes) took 40 s and the
# stage's SIGUSR1 came 40 s late.  So the script runs 5 nice levels above
# what it starts (bg puts every child back at the level the script had).
renice -n -5 -p $$ >/dev/null 2>&1 && NICE_BACK=(nice -n 5) || NICE_BACK=()
bg() { # bg NAME CMD...: run in the background, log to OUT/NAME.log, PID_NAME
  local name=$1; shift
  "${NICE_BACK[@]}" "$@" >"$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  printf -v "PID_$name" %s $!
}
pid_of() { local v="PID_$1"; echo "${!v:-}"; }
stop_wait() { # stop_wait NAME SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL
  kill -TERM "$(pid_of "$1")" 2>/dev/null || return 0
  wait_gone "$@"
}
wait_gone() { # wait_gone NAME SECONDS: wait up to SECONDS for it to end, then SIGKILL
  local p; p=$(pid_of "$1")
  for _ in $(seq $(($2 * 5))); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$p" 2>/dev/null && note "$1 did not stop within $2 s: killed"
  wait "$p" 2>/dev/null || true
}
ctl_addr() { hosts addr "$1" | cut -d, -f1; }
# The cost sampler (tools/bench/sample.py) runs from here to the end at the
# script's priority, so its seconds come on time; it puts this script, and
# so everything the script starts, in cgroups of its own (one per role).
COST_PID='' COST_CG=hb-c1m-$$
cost_start() {
  [ "$COST" = 1 ] || return 0
  local o=()
  [ "$PERF" = 1 ] || o=(--no-perf)
  python3 tools/bench/sample.py --out "$OUT/cost.tsv" --adopt $$ --cgroup "$COST_CG" --stats "$OUT/server.stats" \
    --hb-stats "$B/hb-stats" "${o[@]}" >"$OUT/sample.log" 2>&1 &
  COST_PID=$!
  fact cost_sampler "on"
}
cost_stop() { # at the end: the sampler moves what is left in its cgroups back and removes them
  [ -n "$COST_PID" ] || return 0
  kill -TERM "$COST_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$COST_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$COST_PID" 2>/dev/null && echo "bench-c1m.sh: the cost sampler did not stop: killed" >&2
  wait "$COST_PID" 2>/dev/null || true
  COST_PID=
  local d
  for d in /sys/fs/cgroup/unified/$COST_CG /sys/fs/cgroup/$COST_CG; do # if it was killed
    [ -d "$d" ] || continue
    { cat "$d"/*/cgroup.procs | while read -r p; do echo "$p" >"${d%/*}/cgroup.procs"; done; } 2>/dev/null || true
    rmdir "$d"/*/ "$d" 2>/dev/null || true
  done
  return 0
}
cost_start
# Long sleeps run in the background and are waited for, so a signal runs the
# cleanup at once (bash runs traps only between foreground commands).
NAP=
nap() { sleep "$1" & NAP=$!; wait $NAP; NAP=; }
sleep_until() { local d; d=$(echo "$1 - $(date +%s.%N)" | bc -l); [ "${d:0:1}" = - ] || nap "$d"; }

# ---- kernel settings, hosts, collector ------------------------------------------------------
fact users "$USERS"; fact hosts "$HOSTS"; fact sets "$SETS"; fact client_threads "$THREADS"
fact ports "$NPORTS"; fact addrs "$ADDRS"; fact date "$(date -u +%Y-%m-%dT%H:%MZ)"
fact machine "$(nproc) cores, $(($(meminfo MemTotal) / 1048576)) GiB, Linux $(uname -r)"
fact max_p99_ms "$MAX_P99"; fact step_max "$STEP_MAX"
# The box is shared: what else was running shows in the load before we start.
fact loadavg_before "$(cut -d' ' -f1-3 /proc/loadavg)"
say "sysctls (sysctl/apply.sh server; reverted at the end)"
sysctl/apply.sh server --holder $$ >"$OUT/apply.log" || die "sysctl/apply.sh failed (see $OUT/apply.log)"
sysctl/check.sh server --conns "$USERS" --one-box >"$OUT/check.log" 2>&1 || { cat "$OUT/check.log"; die "sysctl/check.sh: not ready"; }
say "client hosts: $HOSTS x $ADDRS address(es), server on $NET.0.1"
hosts up "$HOSTS" --addrs "$ADDRS" >"$OUT/hosts.log" || die "tools/hosts.sh up failed (see $OUT/hosts.log)"
SERVER=$(hosts server)
# NPORTS consecutive ports nobody listens on (a demo may hold 7000-7003)
port_busy() { ss -Htln "sport >= :$1 and sport <= :$(($1 + NPORTS - 1))" | grep -q .; }
while port_busy $BASE_PORT; do BASE_PORT=$((BASE_PORT + NPORTS)); done
PORTS="$BASE_PORT-$((BASE_PORT + NPORTS - 1))"
hosts run 1 sysctl/check.sh client --conns $PER --tuples $((NPORTS * ADDRS)) >>"$OUT/check.log" 2>&1 ||
  { tail -20 "$OUT/check.log"; die "client host 1 is not ready (sysctl/check.sh client)"; }

# hb-monitor receives every report: reports.tsv (each raw report, what
# judge.py and report.py read) and monitor.tsv (merged seconds), dashboard live
MON=$SERVER:9100
mp=18080
while ss -Htan "sport = :$mp" | grep -q .; do mp=$((mp + 1)); done
bg monitor "$B/hb-monitor" --udp "$MON" --http 127.0.0.1:$mp --log "$OUT/monitor.tsv" --reports "$OUT/reports.tsv"
for _ in $(seq 50); do ss -Hlun "sport = :9100" | grep -q . && break; sleep 0.1; done
ss -Hlun "sport = :9100" | grep -q . || die "hb-monitor did not bind $MON (see $OUT/monitor.log)"
say "hb-monitor: dashboard on http://127.0.0.1:$mp/"

# The fleet's Redis, on the bridge (the hosts reach nothing else), with a
# password of its own in a file only root reads.
RP=6390
while ss -Htln "sport = :$RP" | grep -q .; do RP=$((RP + 1)); done
(umask 077; head -c 18 /dev/urandom | base64 >"$OUT/redis.pw"
 printf 'bind %s\nport %s\ndir %s\nsave ""\nappendonly no\nrequirepass %s\n' "$SERVER" "$RP" "$OUT" "$(cat "$OUT/redis.pw")" >"$OUT/redis.conf")
bg redis redis-server "$OUT/redis.conf"
for _ in $(seq 50); do ss -Htln "sport = :$RP" | grep -q . && break; sleep 0.1; done
ss -Htln "sport = :$RP" | grep -q . || die "redis-server did not listen on $SERVER:$RP (see $OUT/redis.log)"
FLEET=(tools/fleet --redis "redis://$SERVER:$RP" --redis-password-file "$OUT/redis.pw")
say "fleet: redis-server on $SERVER:$RP"

# ---- the server; the event (stage 2) starts at a planned unix second --------------------------
launch=$(date +%s.%N)
AT2=$(( ${launch%.*} + BUDGET + IDLE + 1 ))
# 0.2 s early: the first shakes of stage 2 must find the event started (not NOT_YET)
delay=$(echo "$AT2 - $launch - 0.2" | bc -l)
[ "$COMPARE" = 0 ] || delay=0 # side by side: the event is on from the start
say "hb-server: $SETS SETs on ports $PORTS"
SERVER_ARGS=(--listen "$SERVER" --insecure --port "$PORTS" --sets "$SETS" --users "$USERS" --rate "$RATE"
  --total "$PACKETS" --send-rate "$RATE" --send-total "$SEND" --send-split 3 --start-delay "$delay"
  --journal "$OUT/server.journal" --stats-file "$OUT/server.stats" --monitor "$MON" --instance server --progress
  --upgrade-socket "$OUT/upgrade.sock")
bg server "$B/hb-server" "${SERVER_ARGS[@]}"
for _ in $(seq 100); do ss -Htln "sport = :$BASE_PORT" | grep -q . && break; sleep 0.1; done
ss -Htln "sport = :$BASE_PORT" | grep -q . || die "hb-server did not listen (see $OUT/server.log)"
SPID=$(pid_of server)
sleep 1
fact rss_base_kb "$(awk '/^VmRSS:/ { print $2 }' /proc/"$SPID"/status)"
fact slab_before_kb "$(meminfo Slab)"; fact memavail_before_kb "$(meminfo MemAvailable)"


# ---- clients: one agent per host, one task per kind of run ------------------------------------
# start_clients PREFIX MODE: an agent per host (agent and instance PREFIX<I>,
# its files in OUT/PREFIX<I>/), then a task: every uid, one slice per host,
# at --qps 0 until told, --groups as for stage 2's rate (the seed's rule).
# MODE shake: each run keeps a ledger; echo: --echo (no login, for
# hb-echo-floor).
start_clients() {
  local pre=$1 mode=$2 i extra=()
  [ "$mode" = echo ] && extra=(--echo)
  for ((i = 1; i <= HOSTS; i++)); do
    bg "$pre$i" tools/hosts.sh --prefix "$PREFIX" run $i "$B/hb-client" --agent "redis://$SERVER:$RP" \
      --redis-password-file "$OUT/redis.pw" --agent-name "$pre$i" --agent-dir "$OUT/$pre$i" \
      --source "$(hosts addr $i)" --threads "$THREADS" --drain 30 --control "$(ctl_addr $i):$CTL_PORT" \
      --monitor "$MON" "${extra[@]}"
  done
  for _ in $(seq 100); do
    [ "$("${FLEET[@]}" task status 2>/dev/null | grep -c "^agent ${pre}[0-9]* .*idle$")" = "$HOSTS" ] && break
    sleep 0.2
  done
  "${FLEET[@]}" task start --server "$SERVER" --port "$PORTS" --users "$USERS" --qps 0 \
    --groups $(((USERS + QPS1 - 1) / QPS1)) --slices "$HOSTS" --in 2 >>"$OUT/fleet.log" 2>&1 ||
    die "tools/fleet task start failed (see $OUT/fleet.log)"
  LAST_AT=0
}
# stop_clients PREFIX: stop the task (every run drains, then reports), the
# merged results to OUT/fleet-PREFIX.txt, then the agents
stop_clients() {
  local i
  "${FLEET[@]}" task stop >>"$OUT/fleet.log" 2>&1 || note "tools/fleet task stop failed (see fleet.log)"
  "${FLEET[@]}" task results --wait 90 >"$OUT/fleet-$1.txt" 2>&1 ||
    note "fleet results of the $1 agents: $(grep 'did not report' "$OUT/fleet-$1.txt" || echo "see fleet-$1.txt")"
  for ((i = 1; i <= HOSTS; i++)); do stop_wait "$1$i" 30; done
}
# fleet_qps Q [AT]: every run at aggregate Q from second AT (default 2 s
# from now; always after the change before, as tools/fleet requires); the
# second it takes effect in QAT
fleet_qps() {
  QAT=${2:-$(($(date +%s) + 2))}
  [ "$QAT" -gt "$LAST_AT" ] || QAT=$((LAST_AT + 1))
  LAST_AT=$QAT
  "${FLEET[@]}" task qps "$1" --at "$QAT" >>"$OUT/fleet.log" 2>&1 || note "tools/fleet task qps $1 --at $QAT failed (see fleet.log)"
}
wait_conns() { # wait_conns FILE KEY DEADLINE: until FILE's KEY reaches USERS; prints when
  while [ "$(stat "$1" "$2")" -lt "$USERS" ] && [ "$(date +%s)" -lt "$3" ]; do sleep 0.2; done
  date +%s.%N
}

# ---- the rate search ---------------------------------------------------------------------------
# step_once TARGET PREFIX QPS: all clients at QPS from a common second for
# STEP_S seconds; judge.py decides on all but the first 2; sets VERDICT.
step_once() {
  local first last out rc=0
  fleet_qps "$3"
  first=$((QAT + 2)) last=$((QAT + STEP_S - 1))
  sleep_until "$((last + 1)).8" # the reports stamped last+1 leave just after that second begins
  out=$(python3 tools/bench/judge.py --tsv "$OUT/reports.tsv" --prefix "$2" --first $first --last $last \
    --qps "$3" --max-p99-ms "$MAX_P99") || rc=$?
  [ $rc = 0 ] && VERDICT=pass || VERDICT=fail
  say "  $1: $out"
  printf 'step\t%s\t%s\t%s\t%s\t%s\n' "$1" $first $last "$3" "$VERDICT" >>"$OUT/phases.tsv"
  if [ "$VERDICT" = fail ]; then # let the backlog drain before the next, lower step
    fleet_qps 0
    drained
  fi
}
# drained: wait (up to 60 s) until the clients have no shake left unanswered,
# so an overloaded step's backlog does not count against the next one
drained() {
  local t i n
  for t in $(seq 120); do
    n=0
    for ((i = 1; i <= HOSTS; i++)); do
      n=$((n + $(curl -sf -m 2 "http://$(ctl_addr $i):$CTL_PORT/stats" | grep -o '"outstanding":[0-9]*' | cut -d: -f2 || echo 0)))
    done
    [ $n -le $((USERS / 10000)) ] && { sleep 2; return; }
    sleep 0.5
  done
  note "the clients still had $n requests unanswered after 60 s of waiting (overload)"
}
# step TARGET PREFIX QPS: step_once, and once more if it failed: on a
# shared 2-core box one stray second (another build, a teardown) must not
# end the search.
step() {
  step_once "$@"
  [ "$VERDICT" = pass ] || step_once "$@"
}
# search TARGET PREFIX: double from STEP_FROM until a step fails (or
# STEP_MAX), then halve the interval down to 5%; sets BEST.
search() {
  local lo=0 hi=0 q=$STEP_FROM
  while :; do
    step "$1" "$2" "$q"
    if [ "$VERDICT" = pass ]; then
      lo=$q
      [ "$q" -ge "$STEP_MAX" ] && break
      q=$((2 * q > STEP_MAX ? STEP_MAX : 2 * q))
    else
      hi=$q
      break
    fi
  done
  while [ "$hi" -gt 0 ] && [ $((hi - lo)) -gt $((hi / 20)) ] && [ $((hi - lo)) -gt 1000 ]; do
    # shellcheck disable=SC2017 # rounded down to a multiple of 500 on purpose
    q=$(((lo + hi) / 1000 * 500))
    [ $q -gt "$lo" ] || break
    step "$1" "$2" $q
    if [ "$VERDICT" = pass ]; then lo=$q; else hi=$q; fi
  done
  fleet_qps 0
  BEST=$lo
}

# ---- hot upgrade (--upgrade) ---------------------------------------------------------------
sum_clients() { "$B/hb-stats" --sum "$1" "$OUT"/c[0-9]*/v*.stats 2>/dev/null || echo 0; }
hot_upgrade() { # hot_upgrade AT: tools/upgrade.sh at unix second AT, then the figures
  local at=$1 closes0 retries0 out rc=0 newpid
  sleep_until "$at"
  closes0=$(sum_clients closes) retries0=$(sum_clients retries)
  fact upgrade_rss_old_kb "$(awk '/^VmRSS:/ { print $2 }' /proc/"$SPID"/status)"
  fact upgrade_slab_before_kb "$(meminfo Slab)"
  say "hot upgrade: tools/upgrade.sh at +$((at - AT2)) s into stage 2"
  out=$(tools/upgrade.sh --socket "$OUT/upgrade.sock" --log "$OUT/server2.log" -- "$B/hb-server" "${SERVER_ARGS[@]}" 2>&1) || rc=$?
  echo "$out" >"$OUT/upgrade.log"
  say "hot upgrade: $(tail -n 1 <<<"$out")"
  fact upgrade_rc "$rc"
  [ "$rc" = 0 ] || { note "the hot upgrade failed: $(tail -n 1 <<<"$out")"; return; }
  newpid=$(sed -n 's/.*new server pid \([0-9]*\).*/\1/p' <<<"$out")
  fact upgrade_pause_ms "$(sed -n 's/.*clients paused \([0-9.]*\) ms.*/\1/p' <<<"$out")"
  fact upgrade_conns "$(sed -n 's/.*took over \([0-9]*\) connections.*/\1/p' <<<"$out")"
  wait "$(pid_of server)" 2>/dev/null || true # the old one exits by itself
  PIDS+=("$newpid")
  # shellcheck disable=SC2034 # read through pid_of
  printf -v PID_server %s "$newpid"
  SPID=$newpid
  sleep_until $((at + 10))
  fact upgrade_rss_new_kb "$(awk '/^VmRSS:/ { print $2 }' /proc/"$SPID"/status)"
  fact upgrade_slab_after_kb "$(meminfo Slab)"
  fact upgrade_closes "$(($(sum_clients closes) - closes0))"
  fact upgrade_retries "$(($(sum_clients retries) - retries0))"
  fact upgrade_latency "$(python3 tools/bench/pause.py --tsv "$OUT/reports.tsv" --prefix c --first $((at - 2)) --last $((at + 8)) --over-ms 100)"
  say "hot upgrade: $(grep '^upgrade_' "$OUT/facts.txt" | tr '\n' ' ')"
}

# ---- side by side (--compare) ------------------------------------------------------------------
# hb-server and hb-echo-floor at once, each holding USERS connections from a
# fleet of its own (c and e: each with its own Redis, ports and control
# port); then COMPARE rounds of one CMP_S-second window per target at
# CMP_QPS, in the order S F, F S, S F, ... (ABBA: a drift of the box over the
# run cancels in the rounds); one fleet shakes at a time.  Each window is a
# "window TARGET FIRST LAST QPS ROUND VERDICT" line of phases.tsv.
use_fleet() { # use_fleet c|e: the fleet the functions above steer
  case $1 in
    c) RP=$RP_C PORTS=$PORTS_C CTL_PORT=980 ;;
    e) RP=$RP_E PORTS=$PORTS_E CTL_PORT=981 ;;
  esac
  FLEET=(tools/fleet --redis "redis://$SERVER:$RP" --redis-password-file "$OUT/redis.pw")
}
compare_window() { # compare_window TARGET PREFIX ROUND
  local first last out rc=0
  use_fleet "$2"
  fleet_qps "$CMP_QPS"
  first=$((QAT + 2)) last=$((QAT + CMP_S - 1))
  sleep_until $((last - 1))
  fleet_qps 0 $((last + 1))
  sleep_until "$((last + 1)).8"
  out=$(python3 tools/bench/judge.py --tsv "$OUT/reports.tsv" --prefix "$2" --first $first --last $last \
    --qps "$CMP_QPS" --max-p99-ms "$MAX_P99") || rc=$?
  say "  round $3, $1: $out"
  printf 'window\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" $first $last "$CMP_QPS" "$3" "$([ $rc = 0 ] && echo pass || echo fail)" \
    >>"$OUT/phases.tsv"
}
compare_run() {
  local fb r c0 tc e0 te
  fb=$((BASE_PORT + NPORTS))
  while port_busy $fb; do fb=$((fb + NPORTS)); done
  PORTS_C=$PORTS PORTS_E="$fb-$((fb + NPORTS - 1))" RP_C=$RP RP_E=$((RP + 1))
  while ss -Htln "sport = :$RP_E" | grep -q .; do RP_E=$((RP_E + 1)); done
  (umask 077; sed "s/^port .*/port $RP_E/" "$OUT/redis.conf" >"$OUT/redis-e.conf")
  bg redis_e redis-server "$OUT/redis-e.conf"
  bg echo "$B/hb-echo-floor" --listen "$SERVER" --port "$PORTS_E" --threads "$SETS" --stats-file "$OUT/echo.stats"
  for _ in $(seq 100); do ss -Htln "sport = :$fb" | grep -q . && ss -Htln "sport = :$RP_E" | grep -q . && break; sleep 0.1; done
  ss -Htln "sport = :$fb" | grep -q . || die "hb-echo-floor did not listen (see $OUT/echo.log)"
  ss -Htln "sport = :$RP_E" | grep -q . || die "the second redis-server did not listen (see $OUT/redis_e.log)"
  say "compare: hb-server on $PORTS_C, hb-echo-floor on $PORTS_E, $USERS connections each; $COMPARE rounds of $CMP_S s at $CMP_QPS/s"
  use_fleet c
  c0=$(date +%s.%N)
  start_clients c shake
  tc=$(wait_conns "$OUT/server.stats" logins $(($(date +%s) + BUDGET)))
  fact connected "$(stat "$OUT/server.stats" logins)"
  fact connect_s "$(echo "$tc - $c0" | bc -l | xargs printf %.1f)"
  fact ramp_login_timeouts "$(stat "$OUT/server.stats" err_login_timeout)"
  use_fleet e
  e0=$(date +%s.%N)
  start_clients e echo
  te=$(wait_conns "$OUT/echo.stats" conns $(($(date +%s) + BUDGET)))
  fact echo_connected "$(stat "$OUT/echo.stats" conns)"
  fact echo_connect_s "$(echo "$te - $e0" | bc -l | xargs printf %.1f)"
  say "compare: hb-server $(stat "$OUT/server.stats" logins) connected in $(grep '^connect_s=' "$OUT/facts.txt" | cut -d= -f2) s, floor $(stat "$OUT/echo.stats" conns) in $(echo "$te - $e0" | bc -l | xargs printf %.1f) s"
  sleep 3
  for ((r = 1; r <= COMPARE; r++)); do
    if [ $((r % 2)) = 1 ]; then
      compare_window server c $r; compare_window echo e $r
    else
      compare_window echo e $r; compare_window server c $r
    fi
  done
  use_fleet e
  stop_clients e
  stop_wait echo 30
  use_fleet c # the default run's end stops the c fleet and hb-server
}
if [ "$COMPARE" -gt 0 ]; then
  compare_run
else # the default run: stages 1-3 and the rate search (up to the matching fi; not indented)

# ---- stage 1: connect everyone, then idle -------------------------------------------------------
say "stage 1: $USERS connections from $HOSTS hosts; stage 2 starts at +$((AT2 - T0)) s"
c0=$(date +%s.%N)
start_clients c shake
tc=$(wait_conns "$OUT/server.stats" logins $((AT2 - 3)))
connected=$(stat "$OUT/server.stats" logins)
fact connected "$connected"
fact connect_s "$(echo "$tc - $c0" | bc -l | xargs printf %.1f)"
fact ramp_login_timeouts "$(stat "$OUT/server.stats" err_login_timeout)"
[ "$connected" -ge "$USERS" ] || note "only $connected of $USERS connected within the connect budget ($BUDGET s)"
say "stage 1: $connected connected after $(echo "$tc - $c0" | bc -l | xargs printf %.1f) s; idle"
# Memory once the connections settle (5 s), still inside the idle stage.
m=$(( ${tc%.*} + 6 < AT2 - 3 ? ${tc%.*} + 6 : AT2 - 3 ))
sleep_until $m
fact rss_idle_kb "$(awk '/^VmRSS:/ { print $2 }' /proc/"$SPID"/status)"
fact slab_idle_kb "$(meminfo Slab)"; fact memavail_idle_kb "$(meminfo MemAvailable)"
printf 'stage\tidle\t%s\t%s\t0\n' $(( ${tc%.*} + 1 )) $((AT2 - 1)) >>"$OUT/phases.tsv"

# ---- stages 2 and 3 -------------------------------------------------------------------------
# Each stage is one producer cycle, as in the seed: P shake-flow packets at
# RATE/s, then S send-flow packets (3 recipients each).  Stage 2 is the
# server's first cycle; stage 3 starts the second with SIGUSR1.  The rate
# changes go to all 17 client hosts with one tools/fleet --redis command each.
CYCLE_S=$(( (PACKETS + SEND + RATE - 1) / RATE ))
AT3=$((AT2 + CYCLE_S + 3))
END3=$((AT3 + CYCLE_S + 3))
sleep_until $((AT2 - 2))
fleet_qps "$QPS1" $AT2
say "stage 2: $QPS1 shakes/s from $(date -d @$AT2 +%T) (tools/fleet), cycle 1: $PACKETS packets then $SEND send-flow packets at $RATE/s"
if [ "$UPGRADE" -gt 0 ]; then hot_upgrade $((AT2 + UPGRADE)); fi
sleep_until $((AT3 - 2))
# The rate switch is in Redis for AT3 (the agents pass it on within 0.1 s);
# the cycle must start at AT3 too.
fleet_qps "$QPS2" $AT3
sleep_until $AT3
kill -USR1 "$SPID"
late=$(echo "($(date +%s.%N) - $AT3) * 1000" | bc -l | xargs printf %.0f)
fact usr1_late_ms "$late"
[ "$late" -lt 2000 ] || note "stage 3's producer cycle (SIGUSR1) started $late ms after the stage: its packets/s are off"
say "stage 3: $QPS2 shakes/s from $(date -d @$AT3 +%T) (tools/fleet), cycle 2 (SIGUSR1): $PACKETS packets then $SEND send-flow packets"
sleep_until $END3
for _ in $(seq 60); do
  [ "$(stat "$OUT/server.stats" made_shake)" -ge $((2 * PACKETS)) ] && [ "$(stat "$OUT/server.stats" made_send)" -ge $((2 * SEND)) ] && break
  sleep 1
done
printf 'stage\tstage2\t%s\t%s\t%s\nstage\tstage3\t%s\t%s\t%s\n' $AT2 $((AT3 - 1)) "$QPS1" $AT3 $((END3 - 1)) "$QPS2" >>"$OUT/phases.tsv"
say "stages done: made $(stat "$OUT/server.stats" made_shake) shake + $(stat "$OUT/server.stats" made_send) send packets, $(stat "$OUT/server.stats" wins) won"

if [ $STEPS = 1 ]; then
  say "rate search against hb-server: from $STEP_FROM/s, $STEP_S s steps"
  fleet_qps 0
  drained # an overloaded stage 3 leaves a backlog that would fail the first step
  search server c
  fact max_qps_server "$BEST"
fi
fi # the default run
say "stopping the clients and hb-server"
fleet_qps 0
drained # an overloaded stage 3 (with --no-steps) leaves replies in flight
stop_clients c
stop_wait server 60
lr=0
"$B/hb-reconcile" --journal "$OUT/server.journal" --server-stats "$OUT/server.stats" --expect-all-won \
  --expect-all-opened "$OUT"/c[0-9]*/v*.ledger >"$OUT/ledger.txt" 2>&1 || lr=$?
fact ledger_rc $lr
fact ledger_summary "$(tail -n 1 "$OUT/ledger.txt")"
fact fleet_results "$(grep '^fleet: task' "$OUT/fleet-c.txt" | tr '\n' ' ')"

# ---- the echo floor: the same clients, the same connections, a server that does nothing ---------
# settle: until the kernel has let go of the closed connections, in the
# server's namespace and in every client host (the clients close first, so
# their side holds 1M TIME_WAIT sockets for 60 s).  Once, the floor's first
# steps ran while they expired: p99 21 ms at 10,000/s, and a floor of 9,000/s
# against the 38,500/s of a run that had waited.
tcp_left() { # sockets in use + orphaned + TIME_WAIT in namespace $1 ("" = ours)
  local ns=()
  [ -n "$1" ] && ns=(ip netns exec "$1")
  # shellcheck disable=SC2016 # an awk program
  "${ns[@]}" awk '/^TCP:/ { print $3 + $5 + $7 }' /proc/net/sockstat
}
settle() {
  local t i n
  for t in $(seq 150); do
    n=$(tcp_left "")
    for ((i = 1; i <= HOSTS; i++)); do n=$((n + $(tcp_left "$PREFIX-h$i"))); done
    [ "$n" -lt 5000 ] && { fact settle_s "$t"; return; }
    sleep 1
  done
  note "$n closed connections still being torn down after 150 s"
}

if [ $STEPS = 1 ] && [ $FLOOR = 1 ]; then
  settle
  say "echo floor: hb-echo-floor with $SETS threads, $USERS connections again"
  bg echo "$B/hb-echo-floor" --listen "$SERVER" --port "$PORTS" --threads "$SETS" --stats-file "$OUT/echo.stats"
  for _ in $(seq 100); do ss -Htln "sport = :$BASE_PORT" | grep -q . && break; sleep 0.1; done
  e0=$(date +%s.%N)
  start_clients e echo
  te=$(wait_conns "$OUT/echo.stats" conns $(($(date +%s) + BUDGET)))
  say "echo floor: $(stat "$OUT/echo.stats" conns) connected after $(echo "$te - $e0" | bc -l | xargs printf %.1f) s"
  fact echo_connect_s "$(echo "$te - $e0" | bc -l | xargs printf %.1f)"
  fact echo_connected "$(stat "$OUT/echo.stats" conns)"
  sleep 3
  search echo e
  fact max_qps_echo "$BEST"
  stop_clients e
  stop_wait echo 30
fi

# ---- put the machine back, then the report ------------------------------------------------------
stop_wait monitor 10
cost_stop
hosts down >/dev/null
sysctl/revert.sh --holder $$ >"$OUT/revert.log" 2>&1 || note "sysctl/revert.sh failed: see revert.log"
sleep 2
fact slab_end_kb "$(meminfo Slab)"
fact loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
fact notes "$(printf '%s | ' "${NOTES[@]}")"
say "report"
echo
python3 tools/bench/report.py --dir "$OUT"
echo
if [ -s "$OUT/monitor.tsv" ]; then
  if tools/plot.sh "$OUT/monitor.tsv" "$OUT/plots" >/dev/null 2>&1; then
    say "charts (client/server QPS, packets, connections, latency) in $OUT/plots/"
  else
    note "tools/plot.sh failed on monitor.tsv"
  fi
fi
say "files in $OUT"
[ "$lr" = 0 ] || die "ledger check failed (see $OUT/ledger.txt)"
