#!/usr/bin/env bash
# orphans_killed.sh PIDFILE -- the victim of tests/e2e/orphans.c case 2 (not
# a test by itself): a shell test on lib.sh that starts a redis-server and an
# hb-server cluster node with `start`, writes "REDIS_PID REDIS_PORT
# SERVER_PID SERVER_PORT WORK" to PIDFILE, then SIGKILLs itself, so its EXIT
# trap (lib.sh's cleanup) never runs.  Run under hb-reap, nothing may be left.
. "$(dirname "$0")/lib.sh"
RP=$(first_port "$(free_ports 1)")
start redis redis-server --bind 127.0.0.1 --port "$RP" --dir "$WORK" --save '' --appendonly no
wait_until 10 listening "$RP" || fail "redis-server did not listen"
SP=$(first_port "$(free_ports 1)")
start server "$BIN/hb-server" --listen 127.0.0.1 --port "$SP" --users 40 --journal "$WORK/j" \
  --cluster "redis://127.0.0.1:$RP" --node orphan --node-index 0 --nodes 1
wait_until 10 listening "$SP" || fail "hb-server did not listen"
echo "$(hb_pid redis) $RP $(hb_pid server) $SP $WORK" >"$1"
kill -KILL $$
