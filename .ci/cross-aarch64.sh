#!/usr/bin/env bash
# Compiles every native source for aarch64 with Debian's cross compilers:
# proof that the clone3 trampoline, the raw syscall wrappers and the addon
# build there (headers only; nothing is linked or run).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
nodeinc=$(node -p "require('path').join(process.execPath, '..', '..', 'include', 'node')")
[ -f "$nodeinc/node_api.h" ] || nodeinc=/usr/include/node
common=(-O2 -fPIC -Wall -Wextra -Werror -fvisibility=hidden -fstack-protector-strong -DNAPI_VERSION=8 -I"$nodeinc")
for src in native/*.c; do
  aarch64-linux-gnu-gcc -std=gnu11 "${common[@]}" -c "$src" -o "$out/$(basename "$src").o"
done
for src in native/addon/*.cc; do
  aarch64-linux-gnu-g++ -std=c++17 -fno-exceptions "${common[@]}" -c "$src" -o "$out/addon-$(basename "$src").o"
done
# The trampoline must really be there, as aarch64 code.
# (Captured first: with pipefail, grep -q closing the pipe early would fail objdump.)
disasm=$(aarch64-linux-gnu-objdump -d "$out/spawn_vfork.c.o")
grep -q 'svc' <<<"$disasm" || { echo "aarch64: no svc in spawn_vfork.o" >&2; exit 1; }
echo "aarch64 cross-compile: ok ($(ls "$out" | wc -l) objects)"
