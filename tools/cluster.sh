#!/usr/bin/env bash
# tools/cluster.sh -- server hosts for one-box cluster runs (issue 15): N
# network namespaces, one hb-server node each, beside the client hosts of
# tools/hosts.sh on the same bridge, and the one redis-server the cluster
# keeps its membership and its messages in.  Redis is started by this script
# (no system service), listens on the bridge address only, wants a password
# from a 0600 file, and keeps an append-only file (the cross-node messages
# rely on it).  Everything is named after the prefix and recorded in a state
# file, so `down` removes exactly that.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/sysctl/lib.sh"

usage() {
  cat <<EOF
Usage: tools/cluster.sh [--prefix P] [--net A.B] COMMAND [ARGS]

Commands:
  up N [--redis-dir D] [--redis-port P]
                    make server hosts 0..N-1 and start the cluster's
                    redis-server (its files in D: default the state dir;
                    port P or the first free one from 6400)
  down              stop redis-server and remove every server host and veth
                    made under the prefix (killing what still runs inside);
                    idempotent; the client hosts and the bridge stay
  run I CMD...      run CMD inside server host I (ip netns exec)
  addr I            server host I's address (hb-server --listen)
  redis             the URL and the password file, one a line
  redis kill        SIGKILL the redis-server (a crash, for tests)
  redis start       start it again on its files (after kill), same port
  list              the server hosts, their TCP sockets, and redis

Layout (NET = A.B, that of tools/hosts.sh):
  requires the client hosts of the same prefix (tools/hosts.sh up first):
  their bridge P-br (NET.0.1/16) carries the servers too
  server host I: namespace P-sI, veth P-wI (root side, on the bridge) / eth0,
          address NET.0.(10+I)/16 (the client hosts use NET.1-250.x, the
          bridge NET.0.1: no overlap), lo up, no default route
  per host: the net.* keys of sysctl/server.conf that a namespace owns
          (somaxconn, SYN backlog, socket buffers, fin timeout); every
          hb-server SET has its own descriptor table as on one box
  redis-server: root namespace, bind NET.0.1 only, requirepass from
          STATE/redis.pw (0600), appendonly yes, daemonized, pid file
Tear down in reverse: tools/cluster.sh down, then tools/hosts.sh down (which
removes the bridge; a cluster left behind is cut off, and its down still
works).

Options:
  --prefix P  as for tools/hosts.sh (default \$HB_HOSTS_PREFIX or hb)
  --net A.B   must match the client hosts' (default: theirs)
State: $HB_STATE_DIR/cluster-P.env and $HB_STATE_DIR/cluster-P/
EOF
}

prefix=${HB_HOSTS_PREFIX:-hb}
net=''
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) prefix=${2:?--prefix needs a name}; shift ;;
    --net) net=${2:?--net needs A.B}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) break ;;
  esac
  shift
done
[ $# -gt 0 ] || { usage >&2; exit 2; }
cmd=$1
shift
die() { echo "cluster.sh: $*" >&2; exit 1; }
[[ $prefix =~ ^[a-z0-9]{1,8}$ ]] || die "--prefix must be 1-8 characters of a-z0-9"
STATE=$HB_STATE_DIR/cluster-$prefix.env
SDIR=$HB_STATE_DIR/cluster-$prefix
HOSTS_STATE=$HB_STATE_DIR/hosts-$prefix.env
BR=$prefix-br
SERVER_EHASH=1048576 # TCP hash buckets of each server host (up, below)

N=0 NET='' RPORT='' RDIR=''
if [ -r "$STATE" ]; then
  # shellcheck source=/dev/null # written by 'up'
  . "$STATE"
fi
if [ -z "$NET" ] && [ -r "$HOSTS_STATE" ]; then
  NET=$(sed -n 's/^NET=//p' "$HOSTS_STATE")
fi
[ -z "$net" ] || [ -z "$NET" ] || [ "$net" = "$NET" ] || die "the hosts '$prefix' use $NET, not $net"
NET=${NET:-${net:-10.77}}
[[ $NET =~ ^[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "--net must look like 10.77"

ns_name() { echo "$prefix-s$1"; }
addr_of() { echo "$NET.0.$((10 + $1))"; }
check_host() {
  [ "$N" -gt 0 ] || die "no cluster '$prefix' (tools/cluster.sh up N first)"
  { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -lt "$N" ]; } || die "no server host '$1' (cluster '$prefix' has 0..$((N - 1)))"
}

# The pid in the pid file, if it is a redis-server started on our config.
redis_pid() {
  local p
  p=$(cat "$SDIR/redis.pid" 2>/dev/null) || return 1
  [[ $p =~ ^[0-9]+$ ]] || return 1
  { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -q "^redis-server $NET.0.1:$RPORT" || return 1
  echo "$p"
}
redis_kill() { # redis_kill SIG WAIT_S: signal it and wait for it to go
  local p
  p=$(redis_pid) || return 0
  kill "-$1" "$p" 2>/dev/null || true
  for _ in $(seq $(($2 * 10))); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
}
redis_listening() { ss -Htln "src $NET.0.1 and sport = :$RPORT" 2>/dev/null | grep -q .; }
redis_start() {
  redis_pid >/dev/null && die "redis-server is running already (pid $(redis_pid))"
  rm -f "$SDIR/redis.pid"
  # Its own config, with the password, readable by root only.  At nice -10,
  # as the nodes' cluster threads (hb-server --urgent-nice): it is the
  # membership's clock, and on a box saturated by the nodes and their clients
  # a starved Redis lets every node's refresh miss the TTL at once (members
  # drop out while alive and their users move, and back).
  nice -n -10 redis-server "$SDIR/redis.conf" || die "redis-server did not start (see $SDIR/redis.log)"
  for _ in $(seq 100); do redis_listening && [ -s "$SDIR/redis.pid" ] && return 0; sleep 0.1; done
  die "redis-server does not listen on $NET.0.1:$RPORT (see $SDIR/redis.log)"
}

down() {
  if [ -n "$RPORT" ]; then redis_kill TERM 10; fi
  netns_down "^$prefix-s[0-9]+$"
  links_down "^$prefix-w[0-9]+$"
  rm -rf "$SDIR"
  rm -f "$STATE"
}

apply_server_sysctls() { # apply_server_sysctls NS
  local key val p
  while IFS=$'\t' read -r key val; do
    case $key in net.*) ;; *) continue ;; esac # fs.*, vm.* are global: sysctl/apply.sh
    p=$(sysctl_path "$key")
    ip netns exec "$1" sh -c "test -w '$p' && printf '%s\n' '$val' > '$p'" 2>/dev/null || true
  done < <(conf_entries "$SYSCTL_DIR/server.conf")
}

up() {
  local n=${1:-} i ns pw port=''
  shift || true
  while [ $# -gt 0 ]; do
    case $1 in
      --redis-dir) RDIR=${2:?--redis-dir needs a directory}; shift ;;
      --redis-port) port=${2:?--redis-port needs a port}; shift ;;
      *) die "up: unknown argument '$1'" ;;
    esac
    shift
  done
  { [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 200 ]; } || die "up: N must be 1..200"
  [ "$(id -u)" = 0 ] || die "must run as root (ip netns, ip link)"
  command -v ip >/dev/null || die "'ip' (iproute2) is missing"
  command -v redis-server >/dev/null || die "redis-server is missing (tools/dev/setup.sh installs it)"
  [ ! -e "$STATE" ] || die "cluster '$prefix' exists: tools/cluster.sh --prefix $prefix down first"
  { [ -r "$HOSTS_STATE" ] && ip link show "$BR" >/dev/null 2>&1; } ||
    die "no client hosts '$prefix' (their bridge $BR carries the servers): tools/hosts.sh --prefix $prefix up H first"
  ip -4 addr show dev "$BR" | grep -q "inet $NET.0.1/" || die "$BR does not have $NET.0.1"
  if [ -n "$port" ]; then
    [[ $port =~ ^[0-9]+$ ]] || die "--redis-port must be a number"
    ss -Htln "sport = :$port" | grep -q . && die "port $port is in use"
  else
    port=6400
    while ss -Htln "sport = :$port" | grep -q .; do port=$((port + 1)); done
  fi
  N=$n RPORT=$port
  mkdir -p "$SDIR"
  chmod 700 "$SDIR"
  RDIR=${RDIR:-$SDIR/redis}
  mkdir -p "$RDIR"
  RDIR=$(cd "$RDIR" && pwd)
  printf 'NET=%s\nN=%s\nRPORT=%s\nRDIR=%s\n' "$NET" "$N" "$RPORT" "$RDIR" >"$STATE"
  # Each server host gets its own TCP hash table of SERVER_EHASH buckets
  # (the kernel sizes a new namespace's table from the creating one's
  # tcp_child_ehash_entries): a node holds its share of the users twice
  # with standbys, 500,000 sockets at 4 x 250,000, and with the clients'
  # 131,072 buckets every packet's socket lookup walked chains of about 4
  # (6% of the box in the 1M kill runs' recovery).  8 MB a host.
  local ehash_key=/proc/sys/net/ipv4/tcp_child_ehash_entries ehash_was=''
  if [ -w "$ehash_key" ]; then
    ehash_was=$(cat "$ehash_key")
    echo "$SERVER_EHASH" >"$ehash_key"
  fi
  trap 'echo "cluster.sh: up failed, removing what was made" >&2; [ -z "$ehash_was" ] || echo "$ehash_was" >"$ehash_key"; down' ERR

  for ((i = 0; i < N; i++)); do
    ns=$(ns_name $i)
    ip netns add "$ns"
    ip link add "$prefix-w$i" type veth peer name eth0 netns "$ns"
    ip link set "$prefix-w$i" master "$BR" up
    ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6' 2>/dev/null || true
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip -n "$ns" addr add "$(addr_of $i)/16" dev eth0
    apply_server_sysctls "$ns"
  done
  [ -z "$ehash_was" ] || echo "$ehash_was" >"$ehash_key"

  (umask 077
   head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$SDIR/redis.pw"
   pw=$(cat "$SDIR/redis.pw")
   # protected-mode stays on (the default): with a bind address and a
   # password it changes nothing, and it is one more guard.
   printf '%s\n' "bind $NET.0.1" "port $RPORT" "requirepass $pw" "dir $RDIR" "appendonly yes" \
     "appendfsync everysec" 'save ""' "daemonize yes" "pidfile $SDIR/redis.pid" "logfile $SDIR/redis.log" \
     "dbfilename dump.rdb" >"$SDIR/redis.conf")
  redis_start
  trap - ERR
  echo "cluster.sh: $N server host(s) $(ns_name 0)..$(ns_name $((N - 1))) at $(addr_of 0)..$(addr_of $((N - 1))) on $BR;" \
    "redis://$NET.0.1:$RPORT (password in $SDIR/redis.pw)"
}

list() {
  local i ns tcp
  [ "$N" -gt 0 ] || { echo "cluster.sh: no cluster '$prefix'"; return; }
  printf '%-10s %-16s %s\n' host address "tcp sockets"
  for ((i = 0; i < N; i++)); do
    ns=$(ns_name $i)
    # shellcheck disable=SC2016 # an awk program
    tcp=$(ip netns exec "$ns" awk '/^TCP:/ { print $3 }' /proc/net/sockstat 2>/dev/null || echo "(missing)")
    printf '%-10s %-16s %s\n' "$ns" "$(addr_of $i)" "$tcp"
  done
  if p=$(redis_pid); then
    echo "redis: redis://$NET.0.1:$RPORT pid $p, files in $RDIR"
  else
    echo "redis: redis://$NET.0.1:$RPORT NOT RUNNING (tools/cluster.sh redis start)"
  fi
}

case $cmd in
  up) up "$@" ;;
  down) [ "$(id -u)" = 0 ] || die "must run as root"; down; echo "cluster.sh: cluster '$prefix' removed" ;;
  run)
    [ $# -ge 2 ] || die "run needs I and a command"
    check_host "$1"
    ns=$(ns_name "$1")
    shift
    exec ip netns exec "$ns" "$@"
    ;;
  addr) [ $# -eq 1 ] || die "addr needs I"; check_host "$1"; addr_of "$1" ;;
  redis)
    [ "$N" -gt 0 ] || die "no cluster '$prefix'"
    case ${1:-} in
      "") echo "redis://$NET.0.1:$RPORT"; echo "$SDIR/redis.pw" ;;
      kill) redis_kill KILL 0 ;;
      start) redis_start ;;
      *) die "redis: unknown subcommand '$1' (kill, start)" ;;
    esac
    ;;
  list) list ;;
  *) die "unknown command '$cmd' (see --help)" ;;
esac
