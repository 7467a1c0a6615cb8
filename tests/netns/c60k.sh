#!/usr/bin/env bash
# c60k.sh -- the C1000K path scaled down to fit CI: sysctls applied, 4 client
# hosts in network namespaces (tools/hosts.sh), 60,000 connections to one
# hb-server with 6 SETs (each well under the 20,000-descriptor table limit),
# both flows, 20 s of shaking at 3,000/s started on all hosts at the same
# second through the clients' HTTP control (as tools/bench/c1m.sh does).
# Asserts every connection established, every shake answered, the ledger
# check, and that it leaves no namespace, link or kernel setting behind.
# Exits 77 (skipped) when not root or without network namespace support.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
HOSTS_SH=$REPO/tools/hosts.sh
SYSCTL=$REPO/sysctl

[ "$(id -u)" = 0 ] || { echo "skip: needs root (network namespaces, sysctls)"; exit 77; }
probe=hbp$$
if ! { ip netns add "$probe" && ip netns del "$probe"; } 2>/dev/null; then
  echo "skip: no network namespace support here (ip netns add failed)"
  exit 77
fi
command -v curl >/dev/null || { echo "FAIL: curl is missing (tools/dev/setup.sh installs it)" >&2; exit 1; }

. "$REPO/tests/e2e/lib.sh"

HOSTS=4 USERS=60000 QPS=3000 SHAKE_S=20
PER=$((USERS / HOSTS))
PREFIX=hbt$(($$ % 100000))
hosts() { "$HOSTS_SH" --prefix "$PREFIX" "$@"; }

# The kernel settings this test found, to prove it puts them back.
# shellcheck source=../../sysctl/lib.sh
KEYS=$( { . "$SYSCTL/lib.sh"; conf_entries "$SYSCTL/server.conf" | cut -f1; } )
snapshot() { for k in $KEYS; do printf '%s=%s\n' "$k" "$(sysctl -n "$k" 2>/dev/null | tr -s '\t ' ' ')"; done; }
snapshot >"$WORK/sysctl.before"

# Our own cleanup first (namespaces, then kernel settings), then lib.sh's
# (processes, files), keeping the exit status.
netns_cleanup() {
  local rc=$?
  hosts down >/dev/null 2>&1 || true
  "$SYSCTL/revert.sh" --holder $$ >/dev/null 2>&1 || true
  (exit $rc)
  cleanup
}
trap netns_cleanup EXIT

log "applying sysctls"
"$SYSCTL/apply.sh" server --holder $$ >"$WORK/apply.log" || fail "sysctl/apply.sh (see $WORK/apply.log)"
"$SYSCTL/check.sh" server --conns $USERS --one-box --quiet >"$WORK/check.log" 2>&1 ||
  { cat "$WORK/check.log"; fail "sysctl/check.sh after apply"; }

# A /16 nobody uses; retried because another run may take one at the same time.
NET=
for x in $(seq 78 99); do
  if hosts --net "10.$x" up $HOSTS >"$WORK/hosts.log" 2>&1; then NET=10.$x; break; fi
done
[ -n "$NET" ] || { cat "$WORK/hosts.log"; fail "tools/hosts.sh up: no free 10.78-99.0.0/16"; }
SERVER=$(hosts server)
log "hosts $PREFIX-h1..$HOSTS up, server address $SERVER"

PORTS=$(free_ports 4)
# --insecure: the bridge address is not loopback, and this test measures the
# connection path, not logins (e2e.auth covers tokens); the namespaces are
# its own, reachable from nowhere else.
start server "$BIN/hb-server" --listen "$SERVER" --insecure --port "$PORTS" --sets 6 --users $USERS --rate 200 \
  --total 3000 --send-rate 200 --send-total 600 --journal "$WORK/j" --stats-file "$WORK/server.stats"
wait_until 10 listening "$(first_port "$PORTS")" || fail "server did not listen"

for ((i = 1; i <= HOSTS; i++)); do
  from=$(((i - 1) * PER))
  # --qps 0 until the common start; --groups as for 3,000/s (the seed's rule)
  start "client$i" "$HOSTS_SH" --prefix "$PREFIX" run $i "$BIN/hb-client" --server "$SERVER" --port "$PORTS" \
    --source "$(hosts addr $i)" --uid-from $from --uid-to $((from + PER)) --users $USERS --qps 0 \
    --groups $((USERS / QPS)) --threads 2 --drain 10 --control "$(hosts addr $i | cut -d, -f1):980" \
    --ledger "$WORK/h$i.ledger" --stats-file "$WORK/h$i.stats"
done

logins_all() { [ "$(stat "$WORK/server.stats" logins)" = "$USERS" ]; }
wait_until 90 logins_all || fail "only $(stat "$WORK/server.stats" logins) of $USERS logged in after 90 s"
log "all $USERS connections logged in"

at=$(($(date +%s) + 2))
for ((i = 1; i <= HOSTS; i++)); do
  curl -sf -X POST "http://$(hosts addr $i | cut -d, -f1):980/qps?qps=$QPS&at=$at" >/dev/null ||
    fail "POST /qps to host $i"
done
sleep $((at + SHAKE_S - $(date +%s)))
log "shaking done; draining"
# SIGTERM: stop shaking, wait for the outstanding replies (--drain), exit 0
for ((i = 1; i <= HOSTS; i++)); do eval "kill -TERM \$PID_client$i"; done
for ((i = 1; i <= HOSTS; i++)); do wait_exit "client$i" 30; done
stop server
log "run finished"

S=$WORK/server.stats
expect_eq "server: connections accepted" "$(stat "$S" accepted)" $USERS
expect_eq "server: logins" "$(stat "$S" logins)" $USERS
expect_eq "server: errors" "$(stat "$S" errors)" 0
total=0
for ((i = 1; i <= HOSTS; i++)); do
  s=$WORK/h$i.stats
  expect_eq "host $i: logins (no reconnects)" "$(stat "$s" logins)" $PER
  shakes=$(stat "$s" shakes)
  expect_ge "host $i: shakes" "$shakes" $((QPS * SHAKE_S * 9 / (HOSTS * 10)))
  expect_eq "host $i: replies = shakes" "$(stat "$s" replies)" "$shakes"
  expect_eq "host $i: outstanding" "$(stat "$s" outstanding)" 0
  total=$((total + $(stat "$s" replies)))
done
expect_eq "server replies = client replies" "$(stat "$S" replies)" $total
"$BIN/hb-reconcile" --journal "$WORK/j" --server-stats "$S" --expect-all-won --expect-all-opened \
  "$WORK"/h*.ledger || fail "ledger check"
ok "ledger check"

# Leave nothing behind: the namespaces and links go, the kernel settings return.
hosts down >/dev/null
[ -z "$(ip netns list | grep "^$PREFIX-" || true)" ] || fail "namespaces left: $(ip netns list | grep "^$PREFIX-")"
! ip link show "$PREFIX-br" >/dev/null 2>&1 || fail "bridge $PREFIX-br left"
ok "namespaces and links removed"
"$SYSCTL/revert.sh" --holder $$ >"$WORK/revert.log"
if grep -q "still needed" "$WORK/revert.log"; then
  ok "sysctls kept for another live run: $(cat "$WORK/revert.log")"
else
  snapshot | diff "$WORK/sysctl.before" - || fail "sysctls differ from before the test"
  ok "sysctls restored"
fi
