#!/usr/bin/env bash
# tools/dev/lint.sh [--list | FILE...] -- shellcheck on every shell script of the
# repository (ctest: lint.shellcheck): the *.sh files in git and every other
# file in git whose first line is a sh/bash shebang (tools/fleet,
# tools/netmon, tools/conns, .ci/run ...).  Every finding fails, style notes
# included; a finding that is intended is disabled on its line with a
# `# shellcheck disable=SCxxxx` comment saying why.  Sources are followed
# (-x, relative to each script).  --list prints the scripts only; with
# FILEs, only those are checked.
# Exit: 0 clean, 1 findings, 2 shellcheck missing (tools/dev/setup.sh).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/../.."
scripts() {
  git ls-files -z | while IFS= read -r -d '' f; do
    [ -f "$f" ] || continue
    case $f in
      *.sh) echo "$f" ;;
      *) head -n 1 "$f" 2>/dev/null | grep -qE '^#!(/usr)?/bin/(env +)?(ba)?sh\b' && echo "$f" ;;
    esac
  done | sort -u
}
if [ "${1:-}" = --list ]; then scripts; exit 0; fi
command -v shellcheck >/dev/null || { echo "lint: shellcheck is not installed (tools/dev/setup.sh installs it)" >&2; exit 2; }
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(scripts); fi
[ ${#files[@]} -gt 0 ] || { echo "lint: no shell scripts found (not a git checkout?)" >&2; exit 2; }
if shellcheck -x -P SCRIPTDIR -f gcc "${files[@]}"; then
  echo "lint: shellcheck clean on ${#files[@]} scripts"
else
  echo "lint: shellcheck findings above (${#files[@]} scripts checked)" >&2
  exit 1
fi
