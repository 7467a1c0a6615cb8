#!/usr/bin/env bash
# cluster.sh -- tools/cluster.sh (issue 15): `up 2` beside one client host
# makes two server hosts and a redis-server that listens on the bridge
# address only, wants the password of its 0600 file and keeps an
# append-only file; two hb-server nodes, one per server host, find each
# other through it; `redis kill` / `redis start` keeps what was written; and
# `down` leaves no namespace, no veth, no redis-server and no state, and can
# run again.  Exits 77 (skipped) when not root or without network namespaces.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

[ "$(id -u)" = 0 ] || { echo "skip: needs root (network namespaces)"; exit 77; }
probe=hbp$$
if ! { ip netns add "$probe" && ip netns del "$probe"; } 2>/dev/null; then
  echo "skip: no network namespace support here (ip netns add failed)"
  exit 77
fi
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "FAIL: redis-server / redis-cli missing (tools/dev/setup.sh installs them)" >&2
  exit 1
fi

. "$REPO/tests/e2e/lib.sh"

PREFIX=hbc$(($$ % 100000))
hosts() { "$REPO/tools/hosts.sh" --prefix "$PREFIX" "$@"; }
cluster() { "$REPO/tools/cluster.sh" --prefix "$PREFIX" "$@"; }
netns_cleanup() {
  local rc=$?
  cluster down >/dev/null 2>&1 || true
  hosts down >/dev/null 2>&1 || true
  (exit $rc)
  cleanup
}
trap netns_cleanup EXIT

# Without client hosts there is no bridge to join: a clear refusal.
if cluster up 2 >"$WORK/nohosts.log" 2>&1; then fail "cluster.sh up without client hosts succeeded"; fi
grep -q "tools/hosts.sh --prefix $PREFIX up" "$WORK/nohosts.log" || fail "no hint to make the hosts first: $(cat "$WORK/nohosts.log")"
ok "up without client hosts refused: $(cat "$WORK/nohosts.log")"

NET=
for x in $(seq 78 99); do
  if hosts --net "10.$x" up 1 >"$WORK/hosts.log" 2>&1; then NET=10.$x; break; fi
done
[ -n "$NET" ] || { cat "$WORK/hosts.log"; fail "tools/hosts.sh up: no free 10.78-99.0.0/16"; }
CHILD_EHASH=$(cat /proc/sys/net/ipv4/tcp_child_ehash_entries 2>/dev/null || echo -)
cluster up 2 --redis-dir "$WORK/redis" >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; fail "cluster.sh up 2"; }
log "$(cat "$WORK/up.log")"
if cluster up 2 >/dev/null 2>&1; then fail "a second up over a running cluster succeeded"; fi

expect_eq "server host 0" "$(cluster addr 0)" "$NET.0.10"
expect_eq "server host 1" "$(cluster addr 1)" "$NET.0.11"
if cluster addr 2 >/dev/null 2>&1; then fail "addr 2 of a 2-host cluster answered"; fi
expect_eq "namespaces" "$(ip netns list | awk '{ print $1 }' | grep -cE "^$PREFIX-s[0-9]+$")" 2
expect_eq "somaxconn in server host 1 (sysctl/server.conf)" "$(cluster run 1 cat /proc/sys/net/core/somaxconn)" 65535
if [ -r /proc/sys/net/ipv4/tcp_ehash_entries ]; then # Linux 6.1+: the table a namespace uses
  expect_eq "TCP hash buckets of server host 1 (its own)" "$(cluster run 1 cat /proc/sys/net/ipv4/tcp_ehash_entries)" 1048576
  expect_eq "tcp_child_ehash_entries put back after up" "$(cat /proc/sys/net/ipv4/tcp_child_ehash_entries)" "$CHILD_EHASH"
fi

mapfile -t R < <(cluster redis)
URL=${R[0]} PWF=${R[1]}
RPORT=${URL##*:}
expect_eq "redis URL" "$URL" "redis://$NET.0.1:$RPORT"
expect_eq "password file mode" "$(command stat -c %a "$PWF")" 600
PW=$(cat "$PWF")
[ ${#PW} -ge 20 ] || fail "password of ${#PW} characters"
# Bound to the bridge address and nothing else.
listen=$(ss -Htln "sport = :$RPORT" | awk '{ print $4 }' | sort -u | tr '\n' ' ')
expect_eq "redis listens on" "$listen" "$NET.0.1:$RPORT "
if redis-cli -h 127.0.0.1 -p "$RPORT" ping >/dev/null 2>&1; then fail "redis answers on 127.0.0.1"; fi
ok "nothing on 127.0.0.1:$RPORT"
rc() { cluster run "$1" redis-cli -h "$NET.0.1" -p "$RPORT" "${@:2}"; }
expect_eq "without the password" "$(rc 0 ping 2>&1 | head -1)" "NOAUTH Authentication required."
expect_eq "with a wrong password" "$(rc 0 --no-auth-warning -a wrong ping 2>&1 | grep -c WRONGPASS)" 1
expect_eq "with the password, from server host 1" "$(rc 1 --no-auth-warning -a "$PW" ping)" PONG
expect_eq "from a client host" "$(hosts run 1 redis-cli -h "$NET.0.1" -p "$RPORT" --no-auth-warning -a "$PW" ping)" PONG
expect_eq "appendonly" "$(rc 0 --no-auth-warning -a "$PW" config get appendonly | tail -1)" yes

# Two nodes, one per server host, see each other through this Redis.
for i in 0 1; do
  start "node$i" "$REPO/tools/cluster.sh" --prefix "$PREFIX" run $i "$BIN/hb-server" --listen "$(cluster addr $i)" \
    --insecure --port 7000 --sets 1 --users 100 --total 0 --send-total 0 --journal "$WORK/s$i.journal" \
    --stats-file "$WORK/s$i.stats" --cluster "$URL" --redis-password-file "$PWF" --node "s$i" --node-index $i --nodes 2
done
members() { [ "$(hb_stat_or 0 "$WORK/s0.stats" cluster_members)" = 2 ] && [ "$(hb_stat_or 0 "$WORK/s1.stats" cluster_members)" = 2 ]; }
wait_until 15 members || fail "the two nodes do not see each other (s0: $(hb_stat_or 0 "$WORK/s0.stats" cluster_members))"
ok "nodes s0 and s1 on $NET.0.10 and $NET.0.11 see 2 members"
stop node0
stop node1

# A crash of Redis keeps what was acknowledged (append-only file, fsync every second).
rc 0 --no-auth-warning -a "$PW" set hb:test kept >/dev/null
sleep 1.5
cluster redis kill
if rc 0 --no-auth-warning -a "$PW" ping >/dev/null 2>&1; then fail "redis still answers after redis kill"; fi
cluster redis start
expect_eq "a key written before the SIGKILL" "$(rc 0 --no-auth-warning -a "$PW" get hb:test)" kept

STATE_DIR=${HB_STATE_DIR:-/run/hongbao}
rpid=$(cat "$STATE_DIR/cluster-$PREFIX/redis.pid")
cluster down >"$WORK/down.log"
expect_eq "namespaces after down" "$(ip netns list | awk '{ print $1 }' | grep -cE "^$PREFIX-s[0-9]+$" || true)" 0
expect_eq "veths after down" "$(ip -o link show | grep -cE ": $PREFIX-w[0-9]+@" || true)" 0
if kill -0 "$rpid" 2>/dev/null; then fail "redis-server (pid $rpid) still runs after down"; fi
ok "redis-server $rpid gone"
if ss -Htln "sport = :$RPORT" | grep -q .; then fail "something still listens on $RPORT"; fi
[ ! -e "$STATE_DIR/cluster-$PREFIX.env" ] || fail "state file left behind"
ip link show "$PREFIX-br" >/dev/null 2>&1 || fail "cluster down removed the client hosts' bridge"
cluster down >/dev/null || fail "a second down failed"
ok "down is idempotent; the client hosts stay"
hosts down >/dev/null
