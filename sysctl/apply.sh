#!/usr/bin/env bash
# sysctl/apply.sh -- apply the kernel settings of a C1000K role to this
# machine (its current network namespace for the per-netns net.* keys),
# saving every value it changes first so sysctl/revert.sh can put it back.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<EOF
Usage: sysctl/apply.sh [server|client|all] [--holder PID] [--persist] [--dry-run]

Applies sysctl/server.conf, sysctl/client.conf or both (default: server) to
the running kernel.  Before the first change it saves the value in force to
$SAVED; later applies never overwrite a saved original,
so any number of applies is undone by one revert.

  --holder PID  this run needs the values while PID lives; revert.sh --holder
                PID restores only when no other live holder remains (so two
                runs sharing the machine do not undo each other).  Without it
                the hold is "manual" and lasts until a revert.
  --persist     also install the files as /etc/sysctl.d/90-hongbao-ROLE.conf
                and /etc/security/limits.d/90-hongbao.conf (revert.sh removes
                them again)
  --dry-run     print what would change, change nothing

Keys that do not exist here (nf_conntrack_max without the conntrack module)
are skipped and said so.  Exits 1 if a value could not be written.
EOF
}

role=server holder=manual persist=0 dry=0
while [ $# -gt 0 ]; do
  case $1 in
    server | client | all) role=$1 ;;
    --holder) holder=${2:?--holder needs a PID}; shift ;;
    --persist) persist=1 ;;
    --dry-run) dry=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "apply.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
files=$(conf_files "$role")
[ $dry = 1 ] || { need_root; with_lock; }

failed=0 changed=0
# shellcheck disable=SC2086 # $files: a list of file names (ours, no spaces)
while IFS=$'\t' read -r key want; do
  if ! have=$(sysctl_get "$key"); then
    echo "  skip    $key (not in this kernel or module not loaded)"
    continue
  fi
  if [ "$have" = "$want" ]; then
    echo "  same    $key = $want"
    continue
  fi
  echo "  set     $key = $want (was $have)"
  [ $dry = 1 ] && continue
  # Save the original once: an earlier apply's value is not an original.
  grep -q "^$key	" "$SAVED" 2>/dev/null || printf '%s\t%s\n' "$key" "$have" >>"$SAVED"
  if sysctl_set "$key" "$want" 2>/dev/null; then
    changed=$((changed + 1))
  else
    echo "apply.sh: cannot write $key (read-only here?)" >&2
    failed=1
  fi
done < <(conf_entries $files)

[ $dry = 1 ] && exit 0
if [ "$holder" = manual ]; then echo manual >"$HOLDERS/manual"; else echo "$holder" >"$HOLDERS/pid-$holder"; fi

if [ $persist = 1 ]; then
  for f in $files; do
    dst=/etc/sysctl.d/90-hongbao-$(basename "$f")
    install -m 0644 "$f" "$dst" && echo "$dst" >>"$PERSISTED" && echo "  installed $dst"
  done
  dst=/etc/security/limits.d/90-hongbao.conf
  mkdir -p /etc/security/limits.d
  install -m 0644 "$SYSCTL_DIR/limits.conf" "$dst" && echo "$dst" >>"$PERSISTED" && echo "  installed $dst"
fi
echo "apply.sh: $role: $changed value(s) changed; originals in $SAVED; undo with sysctl/revert.sh"
exit $failed
