#!/usr/bin/env bash
# tools/hosts.sh -- client hosts for one-box C1000K runs: N network namespaces
# playing the seed's 17 client machines.  Each host has its own veth on a
# bridge in the root namespace (where hb-server listens on the bridge
# address), its own private addresses, its own ephemeral port range and the
# per-namespace sysctls of sysctl/client.conf.  Everything it makes is named
# after a prefix and recorded in a state file, so `down` removes exactly that.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/sysctl/lib.sh"

usage() {
  cat <<EOF
Usage: tools/hosts.sh [--prefix P] [--net A.B] COMMAND [ARGS]

Commands:
  up N [--addrs K]  make hosts 1..N, each with K addresses (default 1)
  down              remove every host, veth and the bridge made under the
                    prefix (killing what still runs inside); idempotent
  run I CMD...      run CMD inside host I (ip netns exec)
  addr I            host I's addresses, comma-separated (hb-client --source)
  server            the server's address: the bridge, in the root namespace
  list              the hosts, their addresses and TCP sockets in use

Layout (NET = A.B, default 10.77):
  bridge P-br in the root namespace, address NET.0.1/16: hb-server listens here
  host I: namespace P-hI, veth P-vI (root side, on the bridge) / eth0 (inside),
          addresses NET.I.1 .. NET.I.K /16, lo up, no default route: nothing
          a host sends can leave the machine
  per host: net.* keys of sysctl/client.conf that a namespace owns
          (ip_local_port_range 1024-65535, tcp_tw_reuse, ...)
Apply sysctl/apply.sh server first: its tcp_child_ehash_entries gives each
host made afterwards a TCP hash table of its own.

Options:
  --prefix P  names (1-8 of a-z0-9; default \$HB_HOSTS_PREFIX or hb); lets
              two runs (a test and a benchmark) coexist
  --net A.B   the /16 to use (default \$HB_HOSTS_NET or 10.77); up refuses
              one that is routed or addressed already
State: $HB_STATE_DIR/hosts-P.env
EOF
}

prefix=${HB_HOSTS_PREFIX:-hb}
net=${HB_HOSTS_NET:-}
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
die() { echo "hosts.sh: $*" >&2; exit 1; }
[[ $prefix =~ ^[a-z0-9]{1,8}$ ]] || die "--prefix must be 1-8 characters of a-z0-9"
STATE=$HB_STATE_DIR/hosts-$prefix.env
BR=$prefix-br

# The state of an existing set of hosts (NET, N, ADDRS) overrides defaults.
N=0 ADDRS=1
if [ -r "$STATE" ]; then
  # shellcheck source=/dev/null # written by 'up'
  . "$STATE"
  [ -z "$net" ] || [ "$net" = "$NET" ] || die "hosts '$prefix' use $NET, not $net"
fi
NET=${NET:-${net:-10.77}}
[[ $NET =~ ^[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "--net must look like 10.77"

ns_name() { echo "$prefix-h$1"; }
host_addrs() { # host_addrs I SEP
  local j out=""
  for ((j = 1; j <= ADDRS; j++)); do out+="${out:+$2}$NET.$1.$j"; done
  echo "$out"
}
check_host() {
  [ "$N" -gt 0 ] || die "no hosts '$prefix' (tools/hosts.sh up N first)"
  { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$N" ]; } || die "no host '$1' (hosts '$prefix' are 1..$N; is it up?)"
}

down() {
  # Whatever still runs in a host was started in it through `run`.
  netns_down "^$prefix-h[0-9]+$"
  # A veth whose namespace went away is gone with it; a half-made one is not.
  links_down "^$prefix-v[0-9]+$"
  ip link del "$BR" 2>/dev/null || true
  rm -f "$STATE"
}

apply_host_sysctls() { # apply_host_sysctls NS
  local key val p
  while IFS=$'\t' read -r key val; do
    case $key in net.*) ;; *) continue ;; esac # fs.*, vm.* are global: sysctl/apply.sh
    p=$(sysctl_path "$key")
    # Only keys the namespace owns are there and writable in it.
    ip netns exec "$1" sh -c "test -w '$p' && printf '%s\n' '$val' > '$p'" 2>/dev/null || true
  done < <(conf_entries "$SYSCTL_DIR/client.conf")
}

up() {
  local n=${1:-} i j ns
  shift || true
  while [ $# -gt 0 ]; do
    case $1 in
      --addrs) ADDRS=${2:?--addrs needs K}; shift ;;
      *) die "up: unknown argument '$1'" ;;
    esac
    shift
  done
  { [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 250 ]; } || die "up: N must be 1..250"
  { [[ $ADDRS =~ ^[0-9]+$ ]] && [ "$ADDRS" -ge 1 ] && [ "$ADDRS" -le 250 ]; } || die "up: --addrs must be 1..250"
  [ "$(id -u)" = 0 ] || die "must run as root (ip netns, ip link)"
  command -v ip >/dev/null || die "'ip' (iproute2) is missing"
  { [ ! -e "$STATE" ] && ! ip link show "$BR" >/dev/null 2>&1; } || die "hosts '$prefix' exist: tools/hosts.sh --prefix $prefix down first"
  if [ -n "$(ip -4 route show root "$NET.0.0/16" 2>/dev/null)$(ip -4 addr show to "$NET.0.0/16" 2>/dev/null)" ]; then
    die "$NET.0.0/16 is already in use on this machine: choose another with --net"
  fi
  N=$n
  mkdir -p "$HB_STATE_DIR"
  printf 'NET=%s\nN=%s\nADDRS=%s\n' "$NET" "$N" "$ADDRS" >"$STATE"
  trap 'echo "hosts.sh: up failed, removing what was made" >&2; down' ERR

  ip link add "$BR" type bridge
  ip link set "$BR" up
  ip addr add "$NET.0.1/16" dev "$BR"
  # IPv4 only: no IPv6 link-local chatter (router/neighbour solicitations) on the test wire
  echo 1 >"/proc/sys/net/ipv6/conf/$BR/disable_ipv6" 2>/dev/null || true
  for ((i = 1; i <= N; i++)); do
    ns=$(ns_name $i)
    ip netns add "$ns"
    ip link add "$prefix-v$i" type veth peer name eth0 netns "$ns"
    ip link set "$prefix-v$i" master "$BR" up
    ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6' 2>/dev/null || true
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    for ((j = 1; j <= ADDRS; j++)); do ip -n "$ns" addr add "$NET.$i.$j/16" dev eth0; done
    apply_host_sysctls "$ns"
  done
  trap - ERR
  echo "hosts.sh: $N host(s) $prefix-h1..$prefix-h$N, $ADDRS address(es) each, on $BR; server address $NET.0.1"
}

list() {
  local i ns tcp
  [ "$N" -gt 0 ] || { echo "hosts.sh: no hosts '$prefix'"; return; }
  printf '%-10s %-40s %s\n' host addresses "tcp sockets"
  for ((i = 1; i <= N; i++)); do
    ns=$(ns_name $i)
    # shellcheck disable=SC2016 # an awk program
    tcp=$(ip netns exec "$ns" awk '/^TCP:/ { print $3 }' /proc/net/sockstat 2>/dev/null || echo "(missing)")
    printf '%-10s %-40s %s\n' "$ns" "$(host_addrs $i ,)" "$tcp"
  done
  echo "server: $NET.0.1 on $BR (root namespace)"
}

case $cmd in
  up) up "$@" ;;
  down) [ "$(id -u)" = 0 ] || die "must run as root"; down; echo "hosts.sh: hosts '$prefix' removed" ;;
  run)
    [ $# -ge 2 ] || die "run needs I and a command"
    check_host "$1"
    ns=$(ns_name "$1")
    shift
    exec ip netns exec "$ns" "$@"
    ;;
  addr) [ $# -eq 1 ] || die "addr needs I"; check_host "$1"; host_addrs "$1" , ;;
  server) [ "$N" -gt 0 ] || die "no hosts '$prefix'"; echo "$NET.0.1" ;;
  list) list ;;
  *) die "unknown command '$cmd' (see --help)" ;;
esac
