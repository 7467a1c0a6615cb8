# shellcheck shell=bash
# sysctl/lib.sh -- shared by apply.sh, check.sh, revert.sh, tools/hosts.sh and
# tools/cluster.sh
# (sourced): reading the .conf files, reading and writing /proc/sys, and the
# state kept outside the repository so a revert can restore what was there.
#
# State (HB_STATE_DIR, default /run/hongbao: tmpfs, so a reboot, which resets
# the kernel values anyway, also forgets it):
#   sysctl.saved      "key<TAB>value" as found before the first apply
#   sysctl.persisted  files `apply.sh --persist` installed
#   holders/NAME      one file per run that still needs the values; a run
#                     holds by pid, so a crashed run does not hold forever
#   lock              flock, so two runs never interleave their writes
SYSCTL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HB_STATE_DIR=${HB_STATE_DIR:-/run/hongbao}
# shellcheck disable=SC2034 # for the scripts that source this
{
  SAVED=$HB_STATE_DIR/sysctl.saved
  PERSISTED=$HB_STATE_DIR/sysctl.persisted
}
HOLDERS=$HB_STATE_DIR/holders

# conf_files ROLE: the .conf files a role uses
conf_files() {
  case $1 in
    server) echo "$SYSCTL_DIR/server.conf" ;;
    client) echo "$SYSCTL_DIR/client.conf" ;;
    all) echo "$SYSCTL_DIR/server.conf $SYSCTL_DIR/client.conf" ;;
    *) echo "unknown role '$1' (server, client or all)" >&2; return 2 ;;
  esac
}

# conf_entries FILE...: "key<TAB>value" per setting, whitespace in values
# collapsed to one space; a key that appears twice keeps its first value.
conf_entries() {
  awk '/^[ \t]*(#|;|$)/ { next }
       { line = $0; sub(/[ \t]*#.*/, "", line)
         k = line; sub(/[ \t]*=.*/, "", k); gsub(/[ \t]/, "", k)
         v = line; sub(/^[^=]*=[ \t]*/, "", v); gsub(/[ \t]+/, " ", v); sub(/ $/, "", v)
         if (k != "" && !(k in seen)) { seen[k] = 1; printf "%s\t%s\n", k, v } }' "$@"
}

sysctl_path() { echo "/proc/sys/${1//.//}"; }

# sysctl_get KEY: the value in force, tabs as single spaces; fails if absent
sysctl_get() {
  local p; p=$(sysctl_path "$1")
  [ -r "$p" ] || return 1
  tr -s '\t ' '  ' <"$p" | sed 's/ *$//'
}

# sysctl_set KEY VALUE
sysctl_set() { printf '%s\n' "$2" >"$(sysctl_path "$1")"; }

# per_netns KEY: true for keys that a network namespace has its own copy of
# (only net.* can be; the test is whether the file is writable in a fresh
# namespace, done once and cached).
per_netns() {
  case $1 in net.*) ;; *) return 1 ;; esac
  if [ -z "${_HB_NETNS_KEYS+x}" ]; then
    local probe="hbprobe$$"
    _HB_NETNS_KEYS=$(ip netns add "$probe" 2>/dev/null &&
      ip netns exec "$probe" sh -c 'cd /proc/sys && find net -type f -writable 2>/dev/null' | tr / .;
      ip netns del "$probe" 2>/dev/null)
  fi
  grep -qxF "$1" <<<"$_HB_NETNS_KEYS"
}

need_root() {
  [ "$(id -u)" = 0 ] || { echo "${0##*/}: must run as root (writes /proc/sys)" >&2; exit 1; }
}

# with_lock: take the state lock for the rest of the script
with_lock() {
  mkdir -p "$HB_STATE_DIR" "$HOLDERS"
  exec 9>"$HB_STATE_DIR/lock"
  flock -w 60 9 || { echo "${0##*/}: $HB_STATE_DIR/lock is held by another run for 60 s" >&2; exit 1; }
}

# live_holders: names of holders whose process still exists ("manual"
# holders, from runs without --holder, are always live); prunes the others.
live_holders() {
  local f name pid
  for f in "$HOLDERS"/*; do
    [ -e "$f" ] || continue
    name=${f##*/}
    pid=$(cat "$f" 2>/dev/null || true)
    if [ "$pid" = manual ] || { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }; then
      echo "$name"
    else
      rm -f "$f"
    fi
  done
}

# netns_down REGEX: in every network namespace whose name matches, end what
# still runs (TERM, up to 3 s, then KILL), then delete the namespace
netns_down() {
  local ns pids
  for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep -E "$1" || true); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086 # a list of pids
      kill -TERM $pids 2>/dev/null || true
      for _ in $(seq 30); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -z "$pids" ] && break
        sleep 0.1
      done
      # shellcheck disable=SC2086 # a list of pids
      if [ -n "$pids" ]; then kill -KILL $pids 2>/dev/null || true; fi
    fi
    ip netns del "$ns" 2>/dev/null || true
  done
}

# links_down REGEX: delete every network link whose name matches
links_down() {
  local l
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{ print $2 }' | sed 's/@.*//' | grep -E "$1" || true); do
    ip link del "$l" 2>/dev/null || true
  done
}
