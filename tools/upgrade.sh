#!/usr/bin/env bash
# tools/upgrade.sh --socket PATH [--log FILE] [--timeout SEC] -- BINARY FLAGS...
# Hot upgrade of a running hb-server (started with --upgrade-socket PATH):
# starts BINARY FLAGS --takeover PATH in the background (detached, its
# output in FILE, default ./hb-server.<pid>.log), waits until it has taken
# over every connection, the listeners and the journal, and prints what it
# took and the pause it caused.  The old process exits by itself.
# FLAGS are the new server's: the money settings, --sets, --listen and
# --port must equal the running server's (else it refuses and nothing
# changes); --upgrade-socket PATH is added when missing, so the next upgrade
# works the same way.  If the new process refuses, dies or stalls, the
# running server thaws and keeps serving everything; this script then says
# why and exits 1.
# Example:
#   tools/upgrade.sh --socket /run/hb.sock -- build/bin/hb-server --config /etc/hb/server.conf
set -euo pipefail
case "${1:-}" in -h|--help|"") sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
sock='' log='' timeout=180
while [ $# -gt 0 ]; do
  case $1 in
    --socket) sock=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "upgrade.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$sock" ] || { echo "upgrade.sh: --socket PATH is required" >&2; exit 2; }
[ $# -ge 1 ] || { echo "upgrade.sh: the new server's command is missing after --" >&2; exit 2; }
[ -S "$sock" ] || { echo "upgrade.sh: no running server listens on $sock (start it with --upgrade-socket)" >&2; exit 1; }
[ -x "$1" ] || { echo "upgrade.sh: $1 is not an executable" >&2; exit 2; }
args=("$@")
case " ${args[*]} " in *" --upgrade-socket "*) ;; *) args+=(--upgrade-socket "$sock") ;; esac
args+=(--takeover "$sock")

start=$(date +%s%N)
log=${log:-./hb-server.$$.log}
setsid "${args[@]}" >"$log" 2>&1 </dev/null &
pid=$!
echo "upgrade.sh: new server pid $pid, log $log"
deadline=$(($(date +%s) + timeout))
while :; do
  if grep -q "taken over from pid" "$log"; then
    line=$(grep -m1 "taken over from pid" "$log")
    conns=$(sed -n 's/.*takeover: \([0-9]*\) connections.*/\1/p' <<<"$line")
    old=$(sed -n 's/.*from pid \([0-9]*\).*/\1/p' <<<"$line")
    pause=$(sed -n 's/.*a pause of \([0-9.]*\) ms.*/\1/p' <<<"$line")
    # The old process exits once it has let go.
    for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$old" 2>/dev/null && echo "upgrade.sh: warning: the old server (pid $old) has not exited yet" >&2
    echo "upgrade.sh: pid $pid took over $conns connections from pid $old; clients paused ${pause} ms; $(( ($(date +%s%N) - start) / 1000000 )) ms in all"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    rc=0
    wait "$pid" || rc=$?
    echo "upgrade.sh: the new server exited ($rc) without taking over; the running server keeps serving:" >&2
    tail -n 3 "$log" >&2
    exit 1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "upgrade.sh: no takeover within ${timeout} s; stopping the new server (the running one thaws)" >&2
    kill -KILL "$pid" 2>/dev/null || true
    exit 1
  fi
  sleep 0.1
done
