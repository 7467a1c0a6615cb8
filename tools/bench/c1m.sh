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
Side by side (issue 14), instead of the stages:
  --compare ROUNDS   hb-server and hb-echo-floor run at once (ports
                     7000.. and the next free range), each with its own
                     fleet holding --users connections (c and e: 2 x --users
                     in all, ~6.7 KB of memory each, so 1M needs ~14 GB
                     free); then ROUNDS rounds of two fixed-rate windows,
                     one per target, in the order S F, F S, S F, ... (a
                     drift of the box cancels over rounds; one fleet shakes
                     at a time); the report gives each window's cost and
                     the rounds' median and spread.  Then the two rate
                     searches interleaved, one step of each per round in
                     the same alternating order (--no-steps: not)
  --compare-qps Q    the windows' rate (--qps1, at most 90% of --users)
  --compare-seconds S  seconds per window, the first 2 not counted (15)
  Quick: tools/bench/c1m.sh --users 19800 --hosts 2 --compare 3
What it costs (tools/bench/sample.py, in every mode): OUT/cost.tsv, once a
second: CPU, context switches, run-queue wait and syscalls (perf) of each
role (server, floor, each fleet, the rest), in a cgroup v2 per role, and
the box's /proc/stat; report.md's cost table has them per window and shake.
  --no-cost          no sampler;  --no-perf  no perf stat (syscalls)
  --server-args A    more hb-server flags (word-split), e.g. "--journal-delay 1000"
                     (the single server only; the report's facts name them)
  --pin              pin the server's SETs to CPUs (hb-server --pin-sets;
                     the floor's threads alike, --pin)
  --no-pin-clients   leave the client workers to the scheduler; by default
                     they are pinned (host i's --pin-workers (i-1) x threads,
                     so all 17 fleets spread evenly over the CPUs): they
                     stand for phones on other machines, and 68 busy client
                     threads migrating beside the server's cost stage 2 its
                     p99 (README, "The clients pinned, the server free");
                     the server and the floor stay unpinned unless --pin
  --pin-clients      the default (kept for older command lines)
  --fastopen         TCP Fast Open: the clients send their Login in the SYN
                     (hb-client --fastopen, hb-server --fastopen 65535; the
                     floor's clients write nothing at connect, so not there);
                     sysctl/server.conf allows it (net.ipv4.tcp_fastopen = 3);
                     the single server only
Cluster (issue 15; tools/cluster.sh):
  --servers N        N hb-server nodes, one per server host (tools/cluster.sh
                     up N: namespaces beside the client hosts, one
                     redis-server of the cluster's own); each node makes its
                     share of --rate/--packets/--send-packets (--node-index of
                     --nodes), has its own journal and stats (OUT/sI.journal,
                     OUT/sI.stats), reports as instance sI; --sets is per
                     node (default: what N-1 nodes need for all the users).
                     The clients enter at node s0 and follow redirects.
                     The report adds per-node figures, Redis commands per
                     shake / notice / open, and checks the ledger over all
                     journals.  No echo floor.  (1 = one server, as before)
  --kill-node SEC    SIGKILL node s1 SEC seconds into stage 2, restart it on
                     its journal --kill-down S (5) seconds later; the report
                     says how long until its users were logged in elsewhere,
                     and how it took them back (OUT/plots/relogin.png)
  --standby          every user also holds a logged-in standby connection to
                     its runner-up node (hb-client --standby): a killed
                     node's users are promoted there, not reconnected;
                     twice the connections (per host, per node: --threads
                     and the nodes' SETs are checked and sized for it; the
                     connect budget doubles); stage 1 waits for the
                     standbys too (fact standby_s)
  --kill-redis SEC   SIGKILL the cluster's redis-server SEC seconds into
                     stage 2, start it again on its AOF --redis-down S (5)
                     seconds later; the report compares shakes/s and the
                     cross-node message counters before, during and after
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
EXTRA_SERVER='' FASTOPEN=0 PIN=0 PIN_CLIENTS=1 PACKETS='' SEND='' BUDGET='' STEP_FROM='' STEP_MAX='' STEP_S=10 MAX_P99=10 STEPS=1 FLOOR=1
OUT='' BUILD=build PREFIX=hb NET=10.77 BASE_PORT=7000 UPGRADE=0
COMPARE=0 CMP_QPS='' CMP_S=15 COST=1 PERF=1 CTL_PORT=980
SERVERS=1 KILL_NODE=0 KILL_DOWN=5 KILL_REDIS=0 REDIS_DOWN=5 STANDBY=0
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
    --server-args) EXTRA_SERVER=$2; shift ;;
    --fastopen) FASTOPEN=1 ;;
    --standby) STANDBY=1 ;;
    --pin) PIN=1 ;;
    --pin-clients) PIN_CLIENTS=1 ;;
    --no-pin-clients) PIN_CLIENTS=0 ;;
    --no-cost) COST=0 ;;
    --no-perf) PERF=0 ;;
    --servers) SERVERS=$2; shift ;;
    --kill-node) KILL_NODE=$2; shift ;;
    --kill-down) KILL_DOWN=$2; shift ;;
    --kill-redis) KILL_REDIS=$2; shift ;;
    --redis-down) REDIS_DOWN=$2; shift ;;
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
for v in SERVERS KILL_NODE KILL_DOWN KILL_REDIS REDIS_DOWN; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "--$(tr _ - <<<"${v,,}") must be a whole number"
done
{ [ "$SERVERS" -ge 1 ] && [ "$SERVERS" -le 99 ]; } || die "--servers must be 1..99"
[ "$KILL_NODE" = 0 ] || [ "$SERVERS" -ge 2 ] || die "--kill-node needs --servers 2 or more (node s1 is killed)"
[ "$KILL_REDIS" = 0 ] || [ "$SERVERS" -ge 2 ] || die "--kill-redis needs --servers 2 or more"
[ "$STANDBY" = 0 ] || [ "$SERVERS" -ge 2 ] || die "--standby needs --servers 2 or more (a standby is held on another node)"
[ "$UPGRADE" = 0 ] || [ "$SERVERS" = 1 ] || die "--upgrade is for one server (a node's hot upgrade: tools/upgrade.sh by hand)"
[ "$COMPARE" = 0 ] || [ "$SERVERS" = 1 ] || die "--compare is for one server against the echo floor"
# A cluster's node must hold what N-1 nodes hold when one is down.
# a node's share once one node is gone, twice over with --standby (a standby is a connection too)
[ "$SERVERS" = 1 ] || SETS=${SETS:-$(((USERS * (1 + STANDBY) / (SERVERS > 2 ? SERVERS - 1 : 1) + 15624) / 15625))}
SETS=${SETS:-$(((USERS + 15624) / 15625))}
[ "$SETS" -ge 4 ] || SETS=4
PACKETS=${PACKETS:-$((40000 * USERS / 1000000))}
SEND=${SEND:-$((20000 * USERS / 1000000))}
BUDGET=${BUDGET:-$((USERS * (1 + STANDBY) / 12500 + 20))}
[ "$USERS" -ge 200000 ] && def_step=10000 || def_step=5000
STEP_FROM=${STEP_FROM:-$def_step}
STEP_MAX=${STEP_MAX:-$((USERS * 9 / 10))}
PER=$(((USERS + HOSTS - 1) / HOSTS)) # the most one host plays (1,000,000 / 17 does not divide)
[ "$HOSTS" -le "$USERS" ] || die "--hosts above --users"
PERC=$((PER * (1 + STANDBY))) # connections per host
[ $(((PERC + THREADS - 1) / THREADS)) -le 19900 ] || die "$PERC connections per host need --threads >= $(((PERC + 19899) / 19900)) (20,000 descriptors per table)"
[ "$COMPARE" != 0 ] || [ "$QPS2" -le "$USERS" ] || die "--qps2 above --users: a user shakes at most once a second"
if [ "$COMPARE" != 0 ]; then # side by side: no stages (no packets), no searches
  { [[ $COMPARE =~ ^[0-9]+$ ]] && [[ $CMP_S =~ ^[0-9]+$ ]] && [ "$CMP_S" -ge 5 ]; } || die "--compare needs ROUNDS, --compare-seconds at least 5"
  # Both ends of 2 x USERS connections live in this kernel: ~6.7 KB of
  # MemAvailable per connection at 1M (report.py's "MemAvailable -"), taken
  # as 8 KB, and 2 GB for everything else; short of it the box would swap
  # or kill, not measure.
  need=$((2 * USERS * 8 + 2000000)) have=$(awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo)
  [ "$have" -ge "$need" ] || die "--compare holds 2 x $USERS connections: needs ~$((need / 1000000)) GB free, $((have / 1000000)) GB are"
  cq=$((USERS * 9 / 10))
  CMP_QPS=${CMP_QPS:-$((QPS1 < cq ? QPS1 : cq))}
  [ "$CMP_QPS" -le "$USERS" ] || die "--compare-qps above --users: a user shakes at most once a second"
  PACKETS=0 SEND=0
fi
OUT=${OUT:-$ROOT/out/bench-c1m-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/bench.log") 2>&1

T0=$(date +%s)
say() { echo "[$(($(date +%s) - T0))s] $*"; }
fact() { echo "$1=$2" >>"$OUT/facts.txt"; }
# since START END: END - START in seconds (both `date +%s.%N`), one decimal: how
# long a connect phase took (connect_s, echo_connect_s and the lines saying them)
since() { echo "$2 - $1" | bc -l | xargs printf %.1f; }
# stat FILE KEY: a counter, 0 until the file and the counter are there (hb-stats)
stat() {
  if [ "$SERVERS" -gt 1 ] && [ "$1" = "$OUT/server.stats" ]; then # a cluster: every node's
    case $2 in # a node restarted on its journal counts the packets made before it died again
      made_*) "$B/hb-stats" --default 0 --sum "$2" $(seq -f "$OUT/s%g.stats" 0 $((SERVERS - 1))) ;;
      *) "$B/hb-stats" --default 0 --sum "$2" "$OUT"/s[0-9]*.stats ;;
    esac
  else
    "$B/hb-stats" --default 0 "$1" "$2"
  fi
}
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
cluster() { tools/cluster.sh --prefix "$PREFIX" "$@"; }

# ---- cleanup: whatever happens, nothing of ours stays ------------------------------------
PIDS=()
cleanup() {
  local rc=$?
  set +e
  [ -n "$NAP" ] && kill "$NAP" 2>/dev/null
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  [ "$SERVERS" = 1 ] || cluster down >/dev/null 2>&1 # the server hosts first: they hang on the hosts' bridge
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
[ -z "$EXTRA_SERVER" ] || fact server_args "$EXTRA_SERVER"
[ "$FASTOPEN" = 0 ] || fact fastopen 1
[ "$STANDBY" = 0 ] || fact standby 1
[ "$PIN" = 0 ] || fact pin 1
fact pin_clients "$PIN_CLIENTS"
FLOOR_PIN=(); [ "$PIN" = 0 ] || FLOOR_PIN=(--pin)
# The box is shared: what else was running shows in the load before we start.
fact loadavg_before "$(cut -d' ' -f1-3 /proc/loadavg)"
say "sysctls (sysctl/apply.sh server; reverted at the end)"
sysctl/apply.sh server --holder $$ >"$OUT/apply.log" || die "sysctl/apply.sh failed (see $OUT/apply.log)"
sysctl/check.sh server --conns "$((COMPARE > 0 ? 2 * USERS : USERS))" --one-box >"$OUT/check.log" 2>&1 || { cat "$OUT/check.log"; die "sysctl/check.sh: not ready"; }
say "client hosts: $HOSTS x $ADDRS address(es), server on $NET.0.1"
hosts up "$HOSTS" --addrs "$ADDRS" >"$OUT/hosts.log" || die "tools/hosts.sh up failed (see $OUT/hosts.log)"
SERVER=$(hosts server)
ENTRY=$SERVER # where the clients connect; a cluster: node s0
if [ "$SERVERS" -gt 1 ]; then
  say "server hosts: $SERVERS (tools/cluster.sh), the cluster's redis-server on $SERVER"
  cluster up "$SERVERS" --redis-dir "$OUT/cluster-redis" >"$OUT/cluster.log" || die "tools/cluster.sh up failed (see $OUT/cluster.log)"
  ENTRY=$(cluster addr 0)
fi
# NPORTS consecutive ports nobody listens on (a demo may hold 7000-7003)
port_busy() { ss -Htln "sport >= :$1 and sport <= :$(($1 + NPORTS - 1))" | grep -q .; }
while port_busy $BASE_PORT; do BASE_PORT=$((BASE_PORT + NPORTS)); done
PORTS="$BASE_PORT-$((BASE_PORT + NPORTS - 1))"
W=$((COMPARE > 0 ? 2 : 1)) # side by side: twice the connections over twice the ports
hosts run 1 sysctl/check.sh client --conns $((W * PERC)) --tuples $((W * NPORTS * ADDRS)) >>"$OUT/check.log" 2>&1 ||
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
# password of its own in a file only root reads.  It and the agents'
# lease renewals (--agent-nice) run at nice -10: on a box saturated by the
# runs themselves, a lease not renewed within 1.5 s stops an agent's run
# (two 1M runs lost their fleets so); the runs stay at the script's level.
RP=6390
while ss -Htln "sport = :$RP" | grep -q .; do RP=$((RP + 1)); done
(umask 077; head -c 18 /dev/urandom | base64 >"$OUT/redis.pw"
 printf 'bind %s\nport %s\ndir %s\nsave ""\nappendonly no\nrequirepass %s\n' "$SERVER" "$RP" "$OUT" "$(cat "$OUT/redis.pw")" >"$OUT/redis.conf")
bg redis nice -n -10 redis-server "$OUT/redis.conf"
for _ in $(seq 50); do ss -Htln "sport = :$RP" | grep -q . && break; sleep 0.1; done
ss -Htln "sport = :$RP" | grep -q . || die "redis-server did not listen on $SERVER:$RP (see $OUT/redis.log)"
FLEET=(tools/fleet --redis "redis://$SERVER:$RP" --redis-password-file "$OUT/redis.pw")
say "fleet: redis-server on $SERVER:$RP"

# ---- the cluster (--servers N): nodes, snapshots, a node or Redis killed ----------------------
# Node I runs in server host I (tools/cluster.sh) as instance sI, with its
# own journal and stats; NODE_PID[I] and NODE_NAME[I] (its bg name) follow
# a restart.
JOURNALS=(--journal "$OUT/server.journal" --server-stats "$OUT/server.stats")
NODE_PID=() NODE_NAME=()
node_start() { # node_start I START_DELAY BGNAME
  local i=$1 a
  a=$(cluster addr "$i")
  bg "$3" tools/cluster.sh --prefix "$PREFIX" run "$i" "$B/hb-server" --listen "$a" --insecure --port "$PORTS" \
    --sets "$SETS" --users "$USERS" --rate "$RATE" --total "$PACKETS" --send-rate "$RATE" --send-total "$SEND" \
    --send-split 3 --start-delay "$2" --journal "$OUT/s$i.journal" --stats-file "$OUT/s$i.stats" --stats-every 250 \
    --monitor "$MON" --instance "s$i" --progress --cluster "$CLUSTER_URL" --redis-password-file "$CLUSTER_PW" \
    --node "s$i" --node-index "$i" --nodes "$SERVERS" --advertise "$a:$BASE_PORT"
  NODE_PID[i]=$(pid_of "$3")
  NODE_NAME[i]=$3
}
node_listening() { cluster run "$1" ss -Htln "sport = :$BASE_PORT" | grep -q .; }
start_nodes() { # start_nodes START_DELAY: every node, until each sees them all
  local i
  { read -r CLUSTER_URL; read -r CLUSTER_PW; } < <(cluster redis)
  fact servers "$SERVERS"; fact cluster_redis "$CLUSTER_URL"
  say "hb-server x $SERVERS: nodes s0..s$((SERVERS - 1)) at $(cluster addr 0).., $SETS SETs each on ports $PORTS; clients enter at s0"
  JOURNALS=()
  for ((i = 0; i < SERVERS; i++)); do
    node_start $i "$1" "s$i"
    JOURNALS+=(--journal "$OUT/s$i.journal" --server-stats "$OUT/s$i.stats")
  done
  for ((i = 0; i < SERVERS; i++)); do
    for _ in $(seq 100); do node_listening $i && break; sleep 0.1; done
    node_listening $i || die "node s$i did not listen (see $OUT/s$i.log)"
  done
  for _ in $(seq 100); do
    [ "$(stat "$OUT/server.stats" cluster_members)" = $((SERVERS * SERVERS)) ] && break
    sleep 0.1
  done
  [ "$(stat "$OUT/server.stats" cluster_members)" = $((SERVERS * SERVERS)) ] ||
    die "the nodes do not all see $SERVERS members (see $OUT/s*.log)"
  SPID=${NODE_PID[0]}
}
stop_nodes() {
  local i
  for ((i = 0; i < SERVERS; i++)); do kill -TERM "${NODE_PID[i]}" 2>/dev/null || true; done
  for ((i = 0; i < SERVERS; i++)); do wait_gone "${NODE_NAME[i]}" 60; done
}
# server_rss: kB, every node together
server_rss() {
  local p t=0
  for p in "${NODE_PID[@]}"; do t=$((t + $(awk '/^VmRSS:/ { print $2 }' /proc/"$p"/status 2>/dev/null || echo 0))); done
  echo $t
}
# snap NAME: every node's stats and Redis's command counters, now, in OUT/snap/
snap() {
  local i pw
  mkdir -p "$OUT/snap"
  for ((i = 0; i < SERVERS; i++)); do cp "$OUT/s$i.stats" "$OUT/snap/$1.s$i.stats" 2>/dev/null || true; done
  pw=$(cat "$CLUSTER_PW")
  local hp=${CLUSTER_URL#redis://}
  REDISCLI_AUTH=$pw timeout 3 redis-cli -h "${hp%:*}" -p "${hp##*:}" info commandstats >"$OUT/snap/$1.redis" 2>/dev/null ||
    rm -f "$OUT/snap/$1.redis"
  printf '%s\t%s\n' "$1" "$(date +%s.%N)" >>"$OUT/snap/times.tsv"
}
survivors_active() { # active sessions on every node but s1 (one process)
  local i f=()
  for ((i = 0; i < SERVERS; i++)); do [ $i = 1 ] || f+=("$OUT/s$i.stats"); done
  "$B/hb-stats" --default 0 --sum active "${f[@]}"
}
# kill_node AT: SIGKILL node s1 at unix second AT, watch its users log in
# elsewhere (OUT/relogin.tsv, 4 samples a second), restart it on its
# journal KILL_DOWN s later (not before the killed process is gone: it holds
# the journal's lock until the kernel has closed its sockets), watch it take them back.
kill_node() {
  local at=$1 t0 t0us nowus held rel surv back=0 last=-1 same=0 upto stop_by gone='' dead relogged=0
  sleep_until "$at"
  snap prekill
  held=$(stat "$OUT/s1.stats" active)
  t0=$EPOCHREALTIME t0us=${EPOCHREALTIME/./}
  dead=${NODE_PID[1]} # NODE_PID[1] becomes the restarted node's
  kill -KILL "$dead"
  # How the killed process's threads die (the liveness port closes only
  # when its shared descriptor table does, server/liveness.h): the threads
  # left, their state and where they wait, a few times in the first 3 s.
  (for d in 0.2 0.3 0.5 1 1; do
    sleep "$d"
    echo "# +$(((${EPOCHREALTIME/./} - t0us) / 1000)) ms"
    for t in /proc/"$dead"/task/*; do
      printf '%s %s %s\n' "$(cat "$t/comm" 2>/dev/null)" "$(cut -d' ' -f3 "$t/stat" 2>/dev/null)" "$(cat "$t/wchan" 2>/dev/null)"
    done | sort | uniq -c
  done >"$OUT/killed-threads.txt" 2>&1) &
  # Not waited for here: the kernel takes many seconds to close a killed
  # process's 250,000 sockets (its users see their connections end over that
  # time), and the curve starts at the kill.  Reaped below; when it was gone
  # is a fact of its own.
  fact kill_node_at "$t0"; fact kill_node_held "$held"
  say "kill-node: SIGKILL s1 holding $held users at +$((at - AT2)) s into stage 2; back in $KILL_DOWN s"
  printf 't_s\tsurvivors\ts1\tclients\tphase\n0.00\t%s\t%s\t%s\tbefore\n' $((USERS - held)) "$held" "$USERS" >"$OUT/relogin.tsv"
  stop_by=$((AT3 - 20)) # what follows the loop (reap, counters, a snapshot: 8 s on a busy box) must end before stage 3's switch
  upto=$((t0us + KILL_DOWN * 1000000))
  # A sample is as cheap as the shell can make it (the box is saturated
  # here: at 9 processes a sample, samples came 2.6-4.4 s apart right when
  # the last users came back): one hb-stats for the survivors, one for the
  # clients, the clock from bash itself, stamped after the read.
  while :; do
    surv=$(survivors_active)
    nowus=${EPOCHREALTIME/./}
    printf -v rel '%d.%02d' $(((nowus - t0us) / 1000000)) $(((nowus - t0us) % 1000000 / 10000))
    if [ -z "$gone" ] && ! kill -0 "$dead" 2>/dev/null; then
      gone=$rel
      fact kill_node_exit_s "$gone"
      say "kill-node: the killed s1 was gone (its sockets closed) $gone s after the kill"
    fi
    if [ "$back" = 0 ]; then
      printf '%s\t%s\t0\t%s\tdown\n' "$rel" "$surv" "$(sum_clients active)" >>"$OUT/relogin.tsv"
      if [ "$surv" -ge "$USERS" ] && [ $relogged = 0 ]; then
        relogged=1
        fact kill_node_relogin_s "$rel"
        # The sample is late by its gap and the stats files' once-a-second
        # lag; the survivors stamp each login (loop time): the latest is
        # when the last of s1's users was back (or a later login: a bound).
        local i lu last_us=0
        for ((i = 0; i < SERVERS; i++)); do
          [ $i = 1 ] && continue
          lu=$("$B/hb-stats" --default 0 "$OUT/s$i.stats" login_last_us)
          [ "$lu" -le "$last_us" ] || last_us=$lu
        done
        if [ "$last_us" -gt "$t0us" ]; then
          printf -v lu '%d.%02d' $(((last_us - t0us) / 1000000)) $(((last_us - t0us) % 1000000 / 10000))
          fact kill_node_last_login_s "$lu"
        fi
        say "kill-node: all $USERS users logged in on the survivors $rel s after the kill (the last login: ${lu:--} s)"
      fi
      if [ -n "$gone" ] && [ "$nowus" -ge "$upto" ]; then
        # the killed process's last counters, kept apart: the new one writes s1.stats from its start
        mv "$OUT/s1.stats" "$OUT/s1.killed.stats"
        node_start 1 0 s1_2
        fact kill_node_restart_at "$(date +%s.%N)"
        say "kill-node: s1 restarted on its journal"
        back=1
      fi
    else
      local s1; s1=$(stat "$OUT/s1.stats" active)
      printf '%s\t%s\t%s\t%s\tback\n' "$rel" "$surv" "$s1" "$(sum_clients active)" >>"$OUT/relogin.tsv"
      # done once s1's count has not moved for 5 s (20 samples)
      if [ "$s1" = "$last" ] && [ "$s1" -gt 0 ]; then same=$((same + 1)); else same=0; fi
      last=$s1
      if [ $same -ge 20 ]; then
        fact kill_node_back_held "$s1"
        break
      fi
    fi
    [ "$(date +%s)" -lt "$stop_by" ] || { note "kill-node: stage 2 ended before s1 had settled"; break; }
    sleep 0.25
  done
  wait "$dead" 2>/dev/null || true
  grep -q '^kill_node_relogin_s=' "$OUT/facts.txt" || note "kill-node: the survivors never held all $USERS users"
  if [ "$STANDBY" = 1 ]; then # the survivors' promotions (s1 restarted counts from 0)
    local pr=0 i; for ((i = 0; i < SERVERS; i++)); do [ $i = 1 ] || pr=$((pr + $(stat "$OUT/s$i.stats" promoted))); done
    fact kill_node_promoted "$pr"
    say "kill-node: the survivors promoted $pr standbys of s1's $held users"
  fi
  snap postkill
}
# kill_redis AT: SIGKILL the cluster's redis-server at AT, start it again
# REDIS_DOWN s later on its AOF; snapshots before, at the restart, 10 s after
kill_redis() {
  sleep_until "$1"
  snap preredis
  cluster redis kill
  fact redis_kill_at "$(date +%s.%N)"
  say "kill-redis: SIGKILL the cluster's redis-server at +$(($1 - AT2)) s into stage 2; back in $REDIS_DOWN s"
  nap "$REDIS_DOWN"
  snap redisdown
  cluster redis start >>"$OUT/cluster.log" 2>&1 || note "kill-redis: redis-server did not start again (see $OUT/cluster.log)"
  fact redis_back_at "$(date +%s.%N)"
  say "kill-redis: redis-server back"
  nap 10
  snap redisback10
}
# cluster_stage2: runs from just before stage 2; snapshots at its start, at
# the end of the shake flow, after its end; the kills in time order.
cluster_stage2() {
  local shake_end=$((AT2 + (PACKETS + RATE - 1) / RATE)) ev
  sleep_until "$AT2"
  snap stage2_begin
  for ev in $( { [ "$KILL_NODE" = 0 ] || echo "$((AT2 + KILL_NODE)):node"
                 [ "$KILL_REDIS" = 0 ] || echo "$((AT2 + KILL_REDIS)):redis"
                 echo "$shake_end:shake_end"; } | sort -n); do
    if [ "${ev%%:*}" -ge $((AT3 - 3)) ]; then
      note "--kill-${ev#*:} is beyond stage 2 ($((AT3 - AT2)) s here): not done"
      continue
    fi
    case ${ev#*:} in
      node) kill_node "${ev%%:*}" ;;
      redis) kill_redis "${ev%%:*}" ;;
      shake_end) sleep_until "$shake_end"; snap shake_end ;;
    esac
  done
  sleep_until $((AT3 - 6))
  snap stage2_end
}
# cluster_plots: the relogin curve (--kill-node) in OUT/plots/relogin.png
cluster_plots() {
  [ -s "$OUT/relogin.tsv" ] || return 0
  command -v gnuplot >/dev/null || { note "gnuplot missing: no relogin chart"; return 0; }
  mkdir -p "$OUT/plots"
  gnuplot -e "f='$OUT/relogin.tsv'; out='$OUT/plots/relogin.png'; users=$USERS; down=$KILL_DOWN" tools/bench/relogin.gp \
    >"$OUT/relogin-plot.log" 2>&1 || note "the relogin chart failed (see relogin-plot.log)"
}

# ---- the server; the event (stage 2) starts at a planned unix second --------------------------
launch=$(date +%s.%N)
AT2=$(( ${launch%.*} + BUDGET + IDLE + 1 ))
# 0.2 s early: the first shakes of stage 2 must find the event started (not NOT_YET)
delay=$(echo "$AT2 - $launch - 0.2" | bc -l)
[ "$COMPARE" = 0 ] || delay=0 # side by side: the event is on from the start
if [ "$SERVERS" -gt 1 ]; then
  start_nodes "$delay"
else
say "hb-server: $SETS SETs on ports $PORTS"
SERVER_ARGS=(--listen "$SERVER" --insecure --port "$PORTS" --sets "$SETS" --users "$USERS" --rate "$RATE"
  --total "$PACKETS" --send-rate "$RATE" --send-total "$SEND" --send-split 3 --start-delay "$delay"
  --journal "$OUT/server.journal" --stats-file "$OUT/server.stats" --monitor "$MON" --instance server --progress
  --upgrade-socket "$OUT/upgrade.sock")
# shellcheck disable=SC2206  # --server-args is meant to be word-split
[ -z "$EXTRA_SERVER" ] || SERVER_ARGS+=($EXTRA_SERVER)
[ "$FASTOPEN" = 0 ] || SERVER_ARGS+=(--fastopen 65535)
[ "$PIN" = 0 ] || SERVER_ARGS+=(--pin-sets)
bg server "$B/hb-server" "${SERVER_ARGS[@]}"
for _ in $(seq 100); do ss -Htln "sport = :$BASE_PORT" | grep -q . && break; sleep 0.1; done
ss -Htln "sport = :$BASE_PORT" | grep -q . || die "hb-server did not listen (see $OUT/server.log)"
SPID=$(pid_of server)
NODE_PID=("$SPID")
fi
sleep 1
fact rss_base_kb "$(server_rss)"
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
  [ "$mode" = shake ] && [ "$FASTOPEN" = 1 ] && extra=(--fastopen)
  [ "$mode" = shake ] && [ "$STANDBY" = 1 ] && extra+=(--standby)
  for ((i = 1; i <= HOSTS; i++)); do
    local pin=()
    [ "$PIN_CLIENTS" = 0 ] || pin=(--pin-workers $(((i - 1) * THREADS)))
    bg "$pre$i" tools/hosts.sh --prefix "$PREFIX" run $i "$B/hb-client" --agent "redis://$SERVER:$RP" \
      --redis-password-file "$OUT/redis.pw" --agent-name "$pre$i" --agent-dir "$OUT/$pre$i" --agent-nice -10 \
      --source "$(hosts addr $i)" --threads "$THREADS" --drain 30 --control "$(ctl_addr $i):$CTL_PORT" \
      --monitor "$MON" "${extra[@]}" "${pin[@]}"
  done
  for _ in $(seq 100); do
    [ "$("${FLEET[@]}" task status 2>/dev/null | grep -c "^agent ${pre}[0-9]* .*idle$")" = "$HOSTS" ] && break
    sleep 0.2
  done
  "${FLEET[@]}" task start --server "$ENTRY" --port "$PORTS" --users "$USERS" --qps 0 \
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
  local try
  for try in 1 2 3; do
    if [ -n "${2:-}" ] && [ $try = 1 ]; then QAT=$2; else QAT=$(($(date +%s) + 2 * try)); fi
    [ "$QAT" -gt "$LAST_AT" ] || QAT=$((LAST_AT + 1))
    LAST_AT=$QAT
    if "${FLEET[@]}" task qps "$1" --at "$QAT" >>"$OUT/fleet.log" 2>&1; then
      [ -z "${2:-}" ] || [ "$QAT" = "$2" ] || note "tools/fleet task qps $1: second $2 was missed (the box was busy); from $QAT instead"
      return 0
    fi
    # A change can miss its second on an overloaded box (the fleet tool
    # refuses a second that has begun): try again further ahead, or stage
    # 3's 60,000/s would run on through the search (or never start: once
    # the clients stayed at stage 2's rate).  The caller reads QAT.
  done
  note "tools/fleet task qps $1 --at $QAT failed (see fleet.log)"
}
wait_conns() { # wait_conns FILE KEY DEADLINE: until FILE's KEY reaches USERS; prints when
  while [ "$(stat "$1" "$2")" -lt "$USERS" ] && [ "$(date +%s)" -lt "$3" ]; do sleep 0.2; done
  date +%s.%N
}

# ---- the rate search ---------------------------------------------------------------------------
# step_once TARGET PREFIX QPS: all clients at QPS from a common second for
# STEP_S seconds; judge.py decides on all but the first 2; sets VERDICT.
# With STEP_STOP=1 the fleet stops at the step's end.
STEP_STOP=0
step_once() {
  local first last out rc=0
  fleet_qps "$3"
  first=$((QAT + 2)) last=$((QAT + STEP_S - 1))
  if [ "$STEP_STOP" = 1 ]; then # side by side: the other fleet steps next
    sleep_until $((last - 1))
    fleet_qps 0 $((last + 1))
  fi
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
# drained [MAX_S [ALLOW]]: wait (up to MAX_S, 60) until the clients have at
# most ALLOW (USERS / 10,000) shakes and opens unanswered, so an overloaded
# step's backlog does not count against the next one (wall time however
# slowly the clients answer: a poll of 17 overloaded clients can take 2 s
# each).  A client that does not answer the poll is not drained: counting
# it as 0 once ended the wait with 60,601 requests in flight, and the ledger
# check found the grants among them paid but never read.
drained() {
  local max=${1:-60} allow=${2:-$((USERS / 10000))} end i n v mute
  end=$(($(date +%s) + max))
  while :; do
    n=0 mute=0
    for ((i = 1; i <= HOSTS; i++)); do
      v=$(curl -sf -m 2 "http://$(ctl_addr $i):$CTL_PORT/stats" | grep -o '"outstanding":[0-9]*' | cut -d: -f2) || true
      if [ -n "$v" ]; then n=$((n + v)); else mute=$((mute + 1)); fi
    done
    [ $mute = 0 ] && [ $n -le "$allow" ] && { sleep 2; return; }
    [ "$(date +%s)" -lt $end ] || break
    sleep 0.5
  done
  note "the clients still had $n requests unanswered ($mute of $HOSTS did not answer the poll) after $max s of waiting (overload)"
}
# step TARGET PREFIX QPS: step_once, and once more if it failed: on a
# shared 2-core box one stray second (another build, a teardown) must not
# end the search.
step() {
  step_once "$@"
  [ "$VERDICT" = pass ] || step_once "$@"
}
# search_next LO HI: the search's next rate, nothing when it is done.  LO
# is the highest rate passed (0: none yet), HI the lowest failed (0: none
# yet).  Until a step fails the rate doubles from STEP_FROM (at most
# STEP_MAX, done once that passed); then the interval is halved, rounded
# down to a multiple of 500, until it is within 5% or 1,000/s.
search_next() {
  local lo=$1 hi=$2
  if [ "$hi" = 0 ]; then
    if [ "$lo" = 0 ]; then echo "$STEP_FROM"; elif [ "$lo" -lt "$STEP_MAX" ]; then
      echo $((2 * lo > STEP_MAX ? STEP_MAX : 2 * lo))
    fi
    return
  fi
  [ $((hi - lo)) -gt $((hi / 20)) ] && [ $((hi - lo)) -gt 1000 ] || return 0
  # shellcheck disable=SC2017 # rounded down to a multiple of 500 on purpose
  local q=$(((lo + hi) / 1000 * 500))
  [ $q -le "$lo" ] || echo $q
}
# search TARGET PREFIX: step at search_next's rates until it is done; sets BEST.
search() {
  local lo=0 hi=0 q
  while q=$(search_next "$lo" "$hi") && [ -n "$q" ]; do
    step "$1" "$2" "$q"
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
# compare_search: the two rate searches side by side and interleaved, each
# round one step of each (as step(): tried twice before it fails) in the
# windows' order S F, F S, ..., so a drift of the box between the searches
# cancels as it does there -- two searches run minutes apart once put the
# floor anywhere from 36,500 to over 60,000/s in four identical runs.  A
# search that is done leaves the rounds to the other.
compare_search() {
  local r=1 t q
  local -A lo=([c]=0 [e]=0) hi=([c]=0 [e]=0) name=([c]=server [e]=echo)
  say "rate search side by side: from $STEP_FROM/s, $STEP_S s steps, one step of each target per round"
  STEP_STOP=1
  while :; do
    local order=(c e) more=0
    [ $((r % 2)) = 1 ] || order=(e c)
    for t in "${order[@]}"; do
      q=$(search_next "${lo[$t]}" "${hi[$t]}")
      [ -n "$q" ] || continue
      more=1
      use_fleet "$t"
      step "${name[$t]}" "$t" "$q"
      if [ "$VERDICT" = pass ]; then lo[$t]=$q; else hi[$t]=$q; fi
    done
    [ $more = 1 ] || break
    r=$((r + 1))
  done
  STEP_STOP=0
  fact search_order interleaved
  fact max_qps_server "${lo[c]}"
  fact max_qps_echo "${lo[e]}"
}
compare_run() {
  local fb r c0 tc e0 te es
  fb=$((BASE_PORT + NPORTS))
  while port_busy $fb; do fb=$((fb + NPORTS)); done
  PORTS_C=$PORTS PORTS_E="$fb-$((fb + NPORTS - 1))" RP_C=$RP RP_E=$((RP + 1))
  while ss -Htln "sport = :$RP_E" | grep -q .; do RP_E=$((RP_E + 1)); done
  (umask 077; sed "s/^port .*/port $RP_E/" "$OUT/redis.conf" >"$OUT/redis-e.conf")
  bg redis_e nice -n -10 redis-server "$OUT/redis-e.conf"
  bg echo "$B/hb-echo-floor" --listen "$SERVER" --port "$PORTS_E" --threads "$SETS" "${FLOOR_PIN[@]}" --stats-file "$OUT/echo.stats"
  for _ in $(seq 100); do ss -Htln "sport = :$fb" | grep -q . && ss -Htln "sport = :$RP_E" | grep -q . && break; sleep 0.1; done
  ss -Htln "sport = :$fb" | grep -q . || die "hb-echo-floor did not listen (see $OUT/echo.log)"
  ss -Htln "sport = :$RP_E" | grep -q . || die "the second redis-server did not listen (see $OUT/redis_e.log)"
  say "compare: hb-server on $PORTS_C, hb-echo-floor on $PORTS_E, $USERS connections each; $COMPARE rounds of $CMP_S s at $CMP_QPS/s"
  use_fleet c
  c0=$(date +%s.%N)
  start_clients c shake
  tc=$(wait_conns "$OUT/server.stats" logins $(($(date +%s) + BUDGET)))
  fact connected "$(stat "$OUT/server.stats" logins)"
  fact connect_s "$(since "$c0" "$tc")"
  fact ramp_login_timeouts "$(stat "$OUT/server.stats" err_login_timeout)"
  use_fleet e
  e0=$(date +%s.%N)
  start_clients e echo
  te=$(wait_conns "$OUT/echo.stats" conns $(($(date +%s) + BUDGET)))
  fact echo_connected "$(stat "$OUT/echo.stats" conns)"
  es=$(since "$e0" "$te")
  fact echo_connect_s "$es"
  say "compare: hb-server $(stat "$OUT/server.stats" logins) connected in $(grep '^connect_s=' "$OUT/facts.txt" | cut -d= -f2) s, floor $(stat "$OUT/echo.stats" conns) in $es s"
  sleep 3
  # both sets held and idle: what 2 x USERS connections cost (the report
  # divides by both counts)
  fact slab_idle_kb "$(meminfo Slab)"; fact memavail_idle_kb "$(meminfo MemAvailable)"
  for ((r = 1; r <= COMPARE; r++)); do
    if [ $((r % 2)) = 1 ]; then
      compare_window server c $r; compare_window echo e $r
    else
      compare_window echo e $r; compare_window server c $r
    fi
  done
  [ "$STEPS" = 0 ] || compare_search
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
cs=$(since "$c0" "$tc")
fact connect_s "$cs"
fact ramp_login_timeouts "$(stat "$OUT/server.stats" err_login_timeout)"
[ "$connected" -ge "$USERS" ] || note "only $connected of $USERS connected within the connect budget ($BUDGET s)"
say "stage 1: $connected connected after $cs s; idle"
if [ "$STANDBY" = 1 ]; then # the standbys follow the ramp (hb-client connects them once its users are in)
  ts=$(wait_conns "$OUT/server.stats" standby $((AT2 - 3)))
  fact standby_held "$(stat "$OUT/server.stats" standby)"
  fact standby_s "$(since "$c0" "$ts")"
  say "stage 1: $(stat "$OUT/server.stats" standby) standbys held after $(since "$c0" "$ts") s"
fi
# Memory once the connections settle (5 s), still inside the idle stage.
m=$(( ${tc%.*} + 6 < AT2 - 3 ? ${tc%.*} + 6 : AT2 - 3 ))
sleep_until $m
fact rss_idle_kb "$(server_rss)"
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
if [ "$SERVERS" -gt 1 ]; then cluster_stage2; fi
sleep_until $((AT3 - 6))
# The rate switch is in Redis for AT3, 6 s ahead (the agents pass it on
# within 0.1 s; on a saturated box one tools/fleet call took over 2 s);
# the cycle must start at AT3 too.
fleet_qps "$QPS2" $AT3
if [ "$QAT" != "$AT3" ]; then AT3=$QAT END3=$((QAT + CYCLE_S + 3)); fi
sleep_until "$AT3"
if [ "$SERVERS" = 1 ]; then kill -USR1 "$SPID"; else kill -USR1 "${NODE_PID[@]}"; fi
late=$(echo "($(date +%s.%N) - $AT3) * 1000" | bc -l | xargs printf %.0f)
fact usr1_late_ms "$late"
[ "$late" -lt 2000 ] || note "stage 3's producer cycle (SIGUSR1) started $late ms after the stage: its packets/s are off"
say "stage 3: $QPS2 shakes/s from $(date -d @"$AT3" +%T) (tools/fleet), cycle 2 (SIGUSR1): $PACKETS packets then $SEND send-flow packets"
sleep_until $END3
for _ in $(seq 60); do
  [ "$(stat "$OUT/server.stats" made_shake)" -ge $((2 * PACKETS)) ] && [ "$(stat "$OUT/server.stats" made_send)" -ge $((2 * SEND)) ] && break
  sleep 1
done
printf 'stage\tstage2\t%s\t%s\t%s\nstage\tstage3\t%s\t%s\t%s\n' $AT2 $((AT3 - 1)) "$QPS1" "$AT3" $((END3 - 1)) "$QPS2" >>"$OUT/phases.tsv"
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
# An overloaded stage 3 (with --no-steps), or a cluster run's cross-node
# opens, leave replies in flight: every one must be read before the clients
# stop, or the ledger check finds grants paid whose replies nobody read.
drained 240 0
stop_clients c
if [ "$SERVERS" -gt 1 ]; then stop_nodes; else stop_wait server 60; fi
lr=0
"$B/hb-reconcile" "${JOURNALS[@]}" --expect-all-won --made-per-second "$OUT/made.tsv" \
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

if [ $STEPS = 1 ] && [ $FLOOR = 1 ] && [ "$SERVERS" = 1 ] && [ "$COMPARE" = 0 ]; then
  settle
  say "echo floor: hb-echo-floor with $SETS threads, $USERS connections again"
  bg echo "$B/hb-echo-floor" --listen "$SERVER" --port "$PORTS" --threads "$SETS" "${FLOOR_PIN[@]}" --stats-file "$OUT/echo.stats"
  for _ in $(seq 100); do ss -Htln "sport = :$BASE_PORT" | grep -q . && break; sleep 0.1; done
  e0=$(date +%s.%N)
  start_clients e echo
  te=$(wait_conns "$OUT/echo.stats" conns $(($(date +%s) + BUDGET)))
  es=$(since "$e0" "$te")
  say "echo floor: $(stat "$OUT/echo.stats" conns) connected after $es s"
  fact echo_connect_s "$es"
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
[ "$SERVERS" = 1 ] || cluster down >/dev/null
hosts down >/dev/null
sysctl/revert.sh --holder $$ >"$OUT/revert.log" 2>&1 || note "sysctl/revert.sh failed: see revert.log"
sleep 2
fact slab_end_kb "$(meminfo Slab)"
fact loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
fact notes "$(printf '%s | ' "${NOTES[@]}")"
say "report"
echo
[ "$SERVERS" = 1 ] || cluster_plots
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
