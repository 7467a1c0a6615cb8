#!/usr/bin/env bash
# sysctl/check.sh -- is this machine (or network namespace) ready for a run of
# N connections?  Prints every setting of the role's .conf file with what the
# scale needs, what is in force and ok/low, plus the open-files limit and the
# kernel memory the sockets will take; exits 1 if something the scale needs
# is off.  Changes nothing, so it needs no root.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<EOF
Usage: sysctl/check.sh [server|client|all] [--conns N] [--one-box] [--tuples T] [--quiet]

  server|client|all  which .conf to check (default server; all = both, and
                     implies --one-box)
  --conns N          connections of the run (default 1000000)
  --one-box          both ends of every connection live in this kernel (the
                     client hosts are network namespaces): global resources
                     (files, TCP memory, kernel memory) count 2N sockets
  --tuples T         client: (source address, server port) pairs the
                     connections are spread over (default 1); each needs twice
                     its share in ephemeral ports, as connect() slows ~50x once
                     one such space is over half full
  --quiet            print only what is off

Status: ok; low (below what this scale needs: exit 1); advice (differs from
the .conf but this scale does not need it); skip (not in this kernel).
Per-netns keys are read in the namespace check.sh runs in: check a client
host with  tools/hosts.sh run I sysctl/check.sh client --conns N --tuples T
EOF
}

role=server conns=1000000 onebox=0 tuples=1 quiet=0
while [ $# -gt 0 ]; do
  case $1 in
    server | client) role=$1 ;;
    all) role=all onebox=1 ;;
    --conns) conns=${2:?--conns needs N}; shift ;;
    --one-box) onebox=1 ;;
    --tuples) tuples=${2:?--tuples needs T}; shift ;;
    --quiet) quiet=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $conns =~ ^[0-9]+$ && $tuples =~ ^[1-9][0-9]*$ ]] || { echo "check.sh: --conns and --tuples take whole numbers" >&2; exit 2; }
files=$(conf_files "$role")
sockets=$conns
[ $onebox = 1 ] && sockets=$((2 * conns))
max() { [ "$1" -ge "$2" ] && echo "$1" || echo "$2"; }
min() { [ "$1" -le "$2" ] && echo "$1" || echo "$2"; }

bad=()
row() { # row KEY WANTED ACTUAL STATUS
  [ "$4" = ok ] && [ $quiet = 1 ] && return
  printf '%-36s %-24s %-24s %s\n' "$1" "$2" "$3" "$4"
}

[ $quiet = 1 ] || printf '%s: %s connections (%s sockets in this kernel), role %s\n\n%-36s %-24s %-24s %s\n' \
  "check.sh" "$conns" "$sockets" "$role" setting wanted actual status
# shellcheck disable=SC2086 # $files: a list of file names (ours, no spaces)
while IFS=$'\t' read -r key conf; do
  if ! have=$(sysctl_get "$key"); then
    row "$key" "$conf" "-" "skip (not in this kernel / module not loaded)"
    continue
  fi
  # Each key: how to compare, the value this scale needs, and whether the
  # run fails without it (required) or merely runs worse (advice).
  required=0 cmp=ge want=$conf
  case $key in
    fs.file-max) required=1 want=$(max "$((sockets + 65536))" 0) ;;
    net.core.somaxconn) required=1 want=$(min 65535 "$(max 4096 $((conns / 16)))") ;;
    net.ipv4.tcp_mem) required=1 cmp=high want=$((sockets / 2)) ;; # pages: 2 KiB queued per socket before "high"
    net.netfilter.nf_conntrack_max | net.nf_conntrack_max) required=1 want=$((conns + conns / 10 + 1000)) ;;
    net.ipv4.ip_local_port_range)
      cmp=width
      read -ra f <<<"$conf"
      want=$((f[1] - f[0] + 1))
      if [ "$role" = client ]; then # the clients of a one-box run are checked in their hosts
        required=1
        per=$(((conns + tuples - 1) / tuples))
        want=$((2 * per))
      fi
      ;;
    net.ipv4.tcp_fin_timeout) cmp=le ;;
    net.ipv4.tcp_fastopen) cmp=bits ;; # flags: these bits set, others as they are
    net.ipv4.tcp_rmem | net.ipv4.tcp_wmem | net.ipv4.tcp_tw_reuse) cmp=eq ;;
    net.bridge.*) cmp=eq ;; # one-box runs only: advice
  esac
  ok=1
  case $cmp in
    ge) for v in $have; do [ "$v" -ge "$want" ] || ok=0; break; done ;;
    le) [ "$have" -le "$want" ] || ok=0 ;;
    eq) [ "$have" = "$want" ] || ok=0 ;;
    bits) [ $((have & want)) = $((want)) ] || ok=0; want="bits $want set" ;;
    high) read -ra f <<<"$have"; [ "${f[2]}" -ge "$want" ] || ok=0; want="high >= $want" ;;
    width)
      read -ra f <<<"$have"
      [ $((f[1] - f[0] + 1)) -ge "$want" ] || ok=0
      if [ $required = 1 ] && [ "$want" -gt 64512 ]; then # wider than 1024-65535: the spread must change
        ok=0 want="$per per (source, port): raise --tuples"
      else
        want="$want ports"
      fi
      ;;
  esac
  case $cmp in ge) want=">= $want" ;; le) want="<= $want" ;; eq) want="= $want" ;; esac
  if [ $ok = 1 ]; then
    row "$key" "$want" "$have" ok
  elif [ $required = 1 ]; then
    row "$key" "$want" "$have" "LOW: this scale needs it"
    bad+=("$key")
  else
    row "$key" "$want" "$have" "advice (this scale runs without it)"
  fi
done < <(conf_entries $files)

# Kernel memory: measured ~8.2 KB per loopback connection pair, i.e. ~4.1 KB
# per socket (TCP slab, sock_inode_cache, dentries), never swapped.
if [ "$role" != client ] || [ $onebox = 1 ]; then
  need_kb=$((sockets * 41 / 10 + 1048576))
  avail_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
  st=ok
  [ "$avail_kb" -ge "$need_kb" ] || { st="LOW: not enough memory"; bad+=(memory); }
  row "kernel memory (MemAvailable)" ">= $((need_kb / 1024)) MiB" "$((avail_kb / 1024)) MiB" "$st"
fi

# Kernel preemption: with PREEMPT_NONE (many distribution and VM kernels,
# PREEMPT_DYNAMIC's default here) a woken thread, even the real-time
# producer, waits until the running thread's system call returns.  In
# twelve 1M runs, 24 of the 31 seconds of stage 2 in which the producer made
# a packet more than 5 ms late had a shake p99 over 30 ms, against 40 of all
# 1,332 (README, C1000K).  Not a sysctl: it is chosen at boot
# (preempt=full on the kernel command line) or, without lockdown, in
# debugfs; so it is advice, never a failure.
if [ "$role" != client ]; then
  model=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^preempt=//p' | tail -1)
  if [ -z "$model" ] && [ -r /sys/kernel/debug/sched/preempt ]; then # "none (voluntary) full": the one in use
    model=$(grep -o '([a-z]*)' /sys/kernel/debug/sched/preempt 2>/dev/null | tr -d '()' || true)
  fi
  if [ -z "$model" ]; then # the build's default model
    cfg=$({ zcat /proc/config.gz 2>/dev/null || cat "/boot/config-$(uname -r)" 2>/dev/null || true; } |
      grep -E '^CONFIG_PREEMPT(_NONE|_VOLUNTARY|_LAZY|_RT)?=y' || true)
    case $cfg in
      *CONFIG_PREEMPT_RT=y*) model=full ;;
      *CONFIG_PREEMPT_NONE=y*) model=none ;;
      *CONFIG_PREEMPT_VOLUNTARY=y*) model=voluntary ;;
      *CONFIG_PREEMPT_LAZY=y*) model=lazy ;;
      *CONFIG_PREEMPT=y*) model=full ;;
      *) model=unknown ;;
    esac
  fi
  case $model in
    full|lazy) row "kernel preemption" "full" "$model" ok ;;
    *) row "kernel preemption" "full" "$model" "advice: boot with preempt=full (real-time producer on time)" ;;
  esac
fi

# Open files: one descriptor per socket.  Where the hard limit is below what
# one process needs and cannot be raised, hongbao spreads its sockets over
# several descriptor tables (one per thread, unshare(CLONE_FILES)).
soft=$(ulimit -Sn) hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge "$((conns + 1000))" ]; then
  row "open files (RLIMIT_NOFILE)" ">= $((conns + 1000))" "soft $soft hard $hard" ok
elif (ulimit -Hn $((conns + 1000))) 2>/dev/null; then
  row "open files (RLIMIT_NOFILE)" ">= $((conns + 1000))" "soft $soft hard $hard" "advice: can be raised (limits.conf, ulimit -n)"
else
  per=$((hard > 200 ? hard - 100 : 100))
  tables=$(((conns + per - 1) / per))
  row "open files (RLIMIT_NOFILE)" ">= $((conns + 1000))" "soft $soft hard $hard" "fixed: per descriptor table"
  cat <<EOF

  The open-files hard limit is $hard and cannot be raised here (setrlimit
  fails even as root).  hongbao copes without it: every hb-server SET and
  every hb-client worker thread calls unshare(CLONE_FILES) and so gets its own
  descriptor table with its own $hard.  $conns connections need at least
  $tables tables: hb-server --sets >= $tables (and the kernel's SO_REUSEPORT
  spread leaves each SET a little over conns/sets), hb-client --threads >= the
  connections of that process / $per.
EOF
fi

if [ ${#bad[@]} -gt 0 ]; then
  echo
  echo "check.sh: not ready for $conns connections: ${bad[*]} (sysctl/apply.sh $role sets the .conf values)"
  exit 1
fi
[ $quiet = 1 ] || { echo; echo "check.sh: ready for $conns connections"; }
