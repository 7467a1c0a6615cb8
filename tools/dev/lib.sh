# shellcheck shell=bash
# tools/dev/lib.sh -- the shell helpers shared by the tests (tests/e2e/lib.sh,
# tests/monitor/lib.sh), tools/demo.sh and the benchmarks.  Sourced, bash.
# Every name starts with hb_ (tests/e2e/lib.sh keeps its short names on top).
#
#   Stats files (always through hb-stats: a missing value is an error unless
#   a default is given explicitly; needs HB_BIN = the build's bin/):
#     hb_stat FILE KEY...            the values, space-separated; exit 1 missing
#     hb_stat_or DEFAULT FILE KEY... DEFAULT for a missing key or file
#     hb_stat_sum KEY FILE...        the sum of a counter over files
#     hb_stat_test FILE KEY OP VALUE [ "$(hb_stat FILE KEY)" OP VALUE ], false
#                                    while the value is missing
#   Ports:  hb_free_ports N (prints "A-B"), hb_first_port RANGE,
#           hb_port_free PORT (nothing bound), hb_listening PORT
#   Waiting (status 1 on timeout; SECONDS may be a fraction of a second):
#     hb_wait_until SECONDS CMD...   poll CMD every 0.1 s
#     hb_wait_file SECONDS FILE, hb_wait_listening SECONDS PORT,
#     hb_wait_stat SECONDS FILE KEY OP VALUE
#   Processes (logs in HB_LOGDIR; PID_<NAME> holds the newest one's pid, with
#   any character of NAME other than A-Za-z0-9_ as _; hb_pid NAME prints it):
#     hb_start NAME CMD...           in the background, output to
#                                    HB_LOGDIR/NAME.log; an earlier instance's
#                                    log is kept as NAME.log.1, .2, ...
#     hb_stop NAME [SIGNAL [STATUS]] signal (TERM), wait (HB_STOP_WAIT s at
#                                    most) and check the exit status: STATUS,
#                                    default 0 (137 for SIGKILL)
#     hb_wait_exit NAME SECONDS [STATUS]  wait for it to end by itself
#     hb_stop_all                    for an EXIT trap: SIGTERM to everything
#                                    still running, HB_STOP_WAIT s to finish
#                                    (a sanitizer's leak report takes time),
#                                    then SIGKILL; status 1 when a process
#                                    hb_start started ended with a status
#                                    other than 0 that nobody checked
#     hb_track PID                   have hb_stop_all end PID too
#     hb_sanitizer_logs DIR          the logs in DIR (NAME.log and NAME.log.N)
#                                    with a sanitizer report; status 0 if any
#   hb_fail MESSAGE                  "$HB_FAIL_PREFIX: MESSAGE" on stderr, exit 1
[ -z "${HB_LIB_SH:-}" ] || return 0
HB_LIB_SH=1

HB_PIDS=()             # every process started or tracked here
declare -A HB_NAMES=() # pid -> NAME, for those hb_start started
HB_STOP_WAIT=${HB_STOP_WAIT:-60}
HB_START_WRAP=()       # a command prefix for hb_start, e.g. (nice -n 5)
HB_FAIL_PREFIX=${HB_FAIL_PREFIX:-FAIL}

hb_fail() { echo "$HB_FAIL_PREFIX: $*" >&2; exit 1; }

# ---- stats files ---------------------------------------------------------------
hb_stats_bin() { echo "${HB_BIN:?HB_BIN must point at the build bin directory (hb-stats)}/hb-stats"; }
hb_stat() { "$(hb_stats_bin)" "$@"; }
hb_stat_or() { local d=$1; shift; "$(hb_stats_bin)" --default "$d" "$@"; }
hb_stat_sum() { "$(hb_stats_bin)" --sum "$@"; }
hb_stat_test() {
  local v
  v=$("$(hb_stats_bin)" "$1" "$2" 2>/dev/null) || return 1
  test "$v" "$3" "$4"
}

# ---- ports ---------------------------------------------------------------------
hb_port_free() { ! ss -Htan "sport = :$1" | grep -q .; }
hb_listening() { ss -Htln "sport = :$1" | grep -q .; }
hb_first_port() { echo "${1%%-*}"; }
# hb_free_ports N: N consecutive free ports, below the kernel's ephemeral
# range when there is room (10000..its start): a free port inside that
# range can become some connection's local port before the test binds it
# (seen: monitor.restart's HTTP port taken by a client's connect).
hb_free_ports() {
  local n=$1 base i busy lo span from
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
  if [ "$lo" -gt $((10000 + 1000 + n)) ]; then from=10000 span=$((lo - 10000 - n)); else from=20000 span=30000; fi
  for _ in $(seq 50); do
    base=$((from + RANDOM % span))
    busy=0
    for ((i = 0; i < n; i++)); do
      hb_port_free $((base + i)) || { busy=1; break; }
    done
    [ $busy = 0 ] && { echo "$base-$((base + n - 1))"; return 0; }
  done
  echo "hb_free_ports: no $n free ports found" >&2
  return 1
}

# ---- waiting -------------------------------------------------------------------
hb_now_ms() { echo $(($(date +%s%N) / 1000000)); }
hb_wait_until() {
  local end
  end=$(($(hb_now_ms) + $(awk -v s="$1" 'BEGIN { printf "%d", s * 1000 }')))
  shift
  until "$@" 2>/dev/null; do
    [ "$(hb_now_ms)" -lt "$end" ] || return 1
    sleep 0.1
  done
}
hb_wait_file() { hb_wait_until "$1" test -f "$2"; }
hb_wait_listening() { hb_wait_until "$1" hb_listening "$2"; }
hb_wait_stat() { local t=$1; shift; hb_wait_until "$t" hb_stat_test "$@"; }

# ---- processes -----------------------------------------------------------------
hb_track() { HB_PIDS+=("$1"); }
hb_pid() { local v="PID_${1//[^A-Za-z0-9_]/_}"; echo "${!v:?no process named $1 was started}"; }

hb_start() {
  local name=$1 log n=1
  shift
  log=${HB_LOGDIR:?HB_LOGDIR must name the log directory}/$name.log
  if [ -e "$log" ]; then # an earlier instance: keep its log (its sanitizer report)
    while [ -e "$log.$n" ]; do n=$((n + 1)); done
    mv "$log" "$log.$n"
  fi
  "${HB_START_WRAP[@]}" "$@" >"$log" 2>&1 &
  HB_PIDS+=($!)
  HB_NAMES[$!]=$name
  printf -v "PID_${name//[^A-Za-z0-9_]/_}" %s $!
}

# hb_status_text STATUS: " (killed by SIGX)" for a status above 128
hb_status_text() { [ "$1" -gt 128 ] && [ "$1" -lt 160 ] && echo " (killed by SIG$(kill -l $(($1 - 128))))"; true; }

# hb_alive PID: running (a zombie not yet reaped by bash counts as ended)
hb_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local st
  st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1 # (a process name with spaces: rare here)
  [ "$st" != Z ]
}

# hb_reap PID SECONDS: wait up to SECONDS for PID to end, then SIGKILL it;
# sets HB_RC to its exit status, returns 1 if it had to be killed
hb_reap() {
  local pid=$1 end killed=0
  end=$(($(date +%s) + $2))
  while hb_alive "$pid" && [ "$(date +%s)" -lt "$end" ]; do sleep 0.1; done
  if hb_alive "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    killed=1
  fi
  HB_RC=0
  wait "$pid" 2>/dev/null || HB_RC=$?
  unset "HB_NAMES[$pid]"
  local p keep=()
  for p in "${HB_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  HB_PIDS=("${keep[@]}")
  return $killed
}

hb_check_status() { # NAME GOT WANT
  [ "$2" = "$3" ] || hb_fail "$1 exited with status $2$(hb_status_text "$2"), want $3"
}

hb_stop() {
  local name=$1 sig=${2:-TERM} want=${3:-} pid
  pid=$(hb_pid "$name")
  if [ -z "$want" ]; then
    case $sig in KILL | 9) want=137 ;; *) want=0 ;; esac
  fi
  kill -"$sig" "$pid" 2>/dev/null || true # ended already: its status still counts
  hb_reap "$pid" "$HB_STOP_WAIT" || hb_fail "$name did not end within $HB_STOP_WAIT s of SIG$sig (killed)"
  hb_check_status "$name" "$HB_RC" "$want"
}

hb_wait_exit() {
  local name=$1 secs=$2 want=${3:-0} pid
  pid=$(hb_pid "$name")
  hb_reap "$pid" "$secs" || hb_fail "$name did not finish within $secs s (killed)"
  hb_check_status "$name" "$HB_RC" "$want"
}

hb_stop_all() {
  local p bad=0 name pids=("${HB_PIDS[@]}")
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    name=${HB_NAMES[$p]:-}
    if ! hb_reap "$p" "$HB_STOP_WAIT"; then
      echo "${name:-process $p} did not end within $HB_STOP_WAIT s of SIGTERM: killed" >&2
      [ -z "$name" ] || bad=1
    elif [ -n "$name" ] && [ "$HB_RC" != 0 ] && [ "$HB_RC" != 127 ]; then
      # (127: the script waited for it itself, its status was seen there)
      echo "$name exited with status $HB_RC$(hb_status_text "$HB_RC") (at the end, or before unnoticed)" >&2
      bad=1
    fi
  done
  HB_PIDS=()
  return $bad
}

HB_SANITIZER_RE='ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer'
hb_sanitizer_logs() {
  find "$1" -maxdepth 1 -type f \( -name '*.log' -o -name '*.log.[0-9]*' \) -print0 2>/dev/null |
    xargs -0 -r grep -lE "$HB_SANITIZER_RE"
}
