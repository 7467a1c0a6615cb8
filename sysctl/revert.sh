#!/usr/bin/env bash
# sysctl/revert.sh -- put back the kernel values sysctl/apply.sh saved, and
# remove the files its --persist installed; a no-op when nothing is saved.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<EOF
Usage: sysctl/revert.sh [--holder PID] [--force]

Restores every value saved in $SAVED and deletes the state.
  --holder PID  release the hold of that run (apply.sh --holder PID); the
                values are restored only if no other live run holds them
  --force       restore now, whoever still holds them
Without --holder the "manual" hold is released.
EOF
}

holder=manual force=0
while [ $# -gt 0 ]; do
  case $1 in
    --holder) holder=${2:?--holder needs a PID}; shift ;;
    --force) force=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "revert.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
need_root
with_lock

if [ "$holder" = manual ]; then rm -f "$HOLDERS/manual"; else rm -f "$HOLDERS/pid-$holder"; fi
others=$(live_holders | tr '\n' ' ')
if [ -n "$others" ] && [ $force = 0 ]; then
  echo "revert.sh: values still needed by: $others- not restoring yet (--force to restore anyway)"
  exit 0
fi
if [ ! -s "$SAVED" ] && [ ! -s "$PERSISTED" ]; then
  echo "revert.sh: nothing saved, nothing to revert"
  rm -rf "$HOLDERS"
  exit 0
fi

failed=0
while IFS=$'\t' read -r key old; do
  have=$(sysctl_get "$key") || continue
  if [ "$have" = "$old" ]; then
    echo "  same     $key = $old"
  elif sysctl_set "$key" "$old" 2>/dev/null; then
    echo "  restored $key = $old (was $have)"
  else
    echo "revert.sh: cannot restore $key to '$old'" >&2
    failed=1
  fi
done <"${SAVED}" 2>/dev/null || true
if [ -s "$PERSISTED" ]; then
  sort -u "$PERSISTED" | while read -r f; do rm -f "$f" && echo "  removed  $f"; done
fi
[ $failed = 0 ] && rm -rf "$SAVED" "$PERSISTED" "$HOLDERS"
echo "revert.sh: done"
exit $failed
