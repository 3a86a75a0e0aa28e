#!/usr/bin/env bash
# npm run test:valgrind: the addon and the helper under valgrind's memcheck.
#
#  1. build: scripts/native-build.js --mode valgrind (-g -O1, unstripped, into
#     a temporary directory; build/Release is not touched). The addon is the
#     real code; the helper's clone is replaced by a fork-like one
#     (test/native/spawn_fork_shim.c), because valgrind refuses a CLONE_VM
#     clone that is neither a thread nor a vfork.
#  2. Node under valgrind (--trace-children=no: the children and the helper
#     Node starts run natively), with that addon, running the tiny workload
#     (test/native/workload.js --tiny, CLONEFD_UNDER_VALGRIND=1: what
#     valgrind 3.19 cannot emulate is left out, listed in the workload).
#     Suppressions for Node/V8: test/native/node.supp.
#  3. The helper under valgrind, driven over its wire protocol by
#     test/native/helper_driver.py (well-formed and malformed requests), with
#     full leak checking at its exit.
# Every valgrind log (one per process: Node, the helper, and the forked
# children valgrind follows until their exec) must say 0 errors.
#
# CLONEFD_VALGRIND_KEEP=1 keeps the temporary directory (printed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$(date +%s)
command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "valgrind: python3 is needed for the helper driver" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/clonefd-valgrind.XXXXXX")
if [ "${CLONEFD_VALGRIND_KEEP:-}" = 1 ]; then echo "valgrind: keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi

[ -f lib/index.js ] || npx tsc -p tsconfig.json
node scripts/native-build.js --mode valgrind --out "$work/vg"
rel=$work/vg/build/Release
vg=(valgrind --error-exitcode=99 --trace-children=no --num-callers=30)

# Prints every log with errors; fails if any log reports errors or none is there.
check_logs() { # label, glob prefix
  local label=$1 prefix=$2 f n bad=0 logs=0
  for f in "$prefix".*; do
    [ -f "$f" ] || continue
    logs=$((logs + 1))
    n=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$f" | tail -1)
    if [ -z "$n" ]; then
      # A process that exec'd under valgrind (a forked child) writes no summary.
      grep -q 'Memcheck' "$f" || { echo "$label: $f is not a memcheck log"; bad=1; }
      continue
    fi
    if [ "$n" != 0 ]; then
      bad=1
      if grep -Eq 'clonefd\.node|clonefd-helper|/native/' "$f"; then echo "----- $f: $n errors, ATTRIBUTED TO CLONEFD -----"
      else echo "----- $f: $n errors, not in clonefd frames (Node/V8/libc: extend test/native/node.supp if it is their noise) -----"; fi
      cat "$f"
      echo "-----"
    fi
  done
  [ $logs -gt 0 ] || { echo "$label: no valgrind log"; bad=1; }
  local unhandled
  unhandled=$(grep -ho 'unhandled [a-z0-9-]* syscall: [0-9]*' "$prefix".* 2>/dev/null | sort -u | tr '\n' ';' || true)
  echo "$label: $logs valgrind log(s), $([ $bad = 0 ] && echo '0 errors' || echo 'ERRORS')${unhandled:+ (valgrind itself lacks: $unhandled)}"
  return $bad
}

status=0

# 2. Node with the addon.
t=$(date +%s)
CLONEFD_PREBUILD=$work/vg CLONEFD_EXPECT_ADDON=$rel/clonefd.node CLONEFD_UNDER_VALGRIND=1 \
  "${vg[@]}" --suppressions="$root/test/native/node.supp" \
  --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
  --log-file="$work/node.%p.log" node test/native/workload.js --tiny || status=1
check_logs "node + addon ($(($(date +%s) - t)) s)" "$work/node" || status=1

# 3. The helper.
t=$(date +%s)
python3 test/native/helper_driver.py --valgrind -- "${vg[@]}" \
  --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
  --log-file="$work/helper.%p.log" "$rel/clonefd-helper" || status=1
check_logs "helper ($(($(date +%s) - t)) s)" "$work/helper" || status=1

if [ $status != 0 ]; then
  echo "test:valgrind FAILED ($(($(date +%s) - start)) s)"
  exit 1
fi
echo "test:valgrind passed: 0 errors ($(($(date +%s) - start)) s)"
