#!/usr/bin/env bash
# npm run test:asan: the addon and the helper built with ASan+UBSan
# (scripts/native-build.js --mode asan, into a temporary directory: the
# normal build/Release is not touched), then test/native/workload.js run by
# Node with that addon, and the helper it embeds, under the sanitizers.
#
#  1. build: every native source with -fsanitize=address,undefined
#     -fno-omit-frame-pointer, except native/child.c and native/spawn_vfork.c
#     (the code a CLONE_VM child runs on a borrowed stack before execve: see
#     CHILD_SIDE in scripts/native-build.js for why it must stay
#     uninstrumented);
#  2. self-test: the helper's positive control (test/native/sanitizer_options.c)
#     must be caught and attributed, proving that reports from the helper
#     process (empty environment, stderr on /dev/null) reach the log;
#  3. the workload, with libasan/libubsan preloaded into Node (an addon
#     cannot bring ASan into a process that did not start with it), leak
#     detection on (test/native/lsan.supp for Node's own), every report
#     written to the log directory by Node and by every helper generation;
#  4. wait for every helper seen to exit (its leak check runs at exit), then
#     test/native/check-reports.js: any report attributed to clonefd fails.
#
# CLONEFD_ASAN_KEEP=1 keeps the temporary directory (printed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$(date +%s)

work=$(mktemp -d "${TMPDIR:-/tmp}/clonefd-asan.XXXXXX")
if [ "${CLONEFD_ASAN_KEEP:-}" = 1 ]; then echo "asan: keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
logs=$work/logs
mkdir -p "$logs"

libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
for l in "$libasan" "$libubsan"; do
  [ -f "$l" ] || { echo "asan: $l not found (apt-get install libasan8 libubsan1, or gcc)" >&2; exit 1; }
done
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi

[ -f lib/index.js ] || npx tsc -p tsconfig.json
node scripts/native-build.js --mode asan --out "$work/asan" --log-dir "$logs"
rel=$work/asan/build/Release
# Proof that what we load is instrumented (the addon and the helper it embeds).
# (nm's output captured first: with pipefail, grep -q closing the pipe early would fail nm.)
for f in clonefd.node clonefd-helper; do
  syms=$(nm "$rel/$f")
  grep -q __asan_report_load <<<"$syms" || { echo "asan: $f is not instrumented" >&2; exit 1; }
done

export CLONEFD_PREBUILD=$work/asan # node-gyp-build: load $CLONEFD_PREBUILD/build/Release/*.node
export CLONEFD_EXPECT_ADDON=$rel/clonefd.node
export CLONEFD_EXPECT_HELPER_LIB=libasan
san_env=(
  LD_PRELOAD="$libasan $libubsan"
  ASAN_OPTIONS="log_path=$logs/node-asan:detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=0:check_initialization_order=1:allow_user_segv_handler=1"
  LSAN_OPTIONS="suppressions=$root/test/native/lsan.supp:print_suppressions=0"
  UBSAN_OPTIONS="log_path=$logs/node-ubsan:print_stacktrace=1:halt_on_error=1"
)

# Waits until none of the pids listed in $1 is alive (zombies count as gone).
wait_gone() {
  local deadline=$(($(date +%s) + 20)) pid state alive
  while :; do
    alive=0
    while read -r pid; do
      [ -n "$pid" ] || continue
      state=$(sed -n 's/^[0-9]* (.*) \(.\).*/\1/p' "/proc/$pid/stat" 2>/dev/null || true)
      if [ -n "$state" ] && [ "$state" != Z ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = clonefd-helper ]; then alive=1; fi
    done <"$1"
    [ $alive = 0 ] && return 0
    [ "$(date +%s)" -lt $deadline ] || { echo "asan: helper(s) still running after 20 s: $(tr '\n' ' ' <"$1")" >&2; return 1; }
    sleep 0.2
  done
}

# 2. The positive control.
touch "$logs/selftest"
: >"$work/selftest.pids"
env "${san_env[@]}" node -e '
  delete process.env.LD_PRELOAD;
  const { spawn } = require("./lib");
  const { binding } = require("./lib/binding");
  spawn("/bin/true", [], { stdio: "ignore" }).exited.then(() => {
    require("fs").writeFileSync(process.argv[1], binding.helperPid() + "\n");
  });' "$work/selftest.pids"
wait_gone "$work/selftest.pids"
node test/native/check-reports.js "$logs" "$rel/clonefd-helper" --expect-selftest
rm -f "$logs"/*

# 3. The workload.
: >"$work/helpers.pids"
status=0
env "${san_env[@]}" node test/native/workload.js --pids "$work/helpers.pids" || status=$?
# 4. Every helper's exit (and leak check), then the verdict.
wait_gone "$work/helpers.pids" || status=1
node test/native/check-reports.js "$logs" "$rel/clonefd-helper" || status=1
if [ $status != 0 ]; then
  echo "test:asan FAILED ($(($(date +%s) - start)) s)"
  exit 1
fi
echo "test:asan passed: 0 reports ($(($(date +%s) - start)) s; helpers checked: $(wc -l <"$work/helpers.pids"))"
