#!/bin/sh
# Builds and checks this machine's prebuild inside a node:<version>-bullseye
# (glibc) or node:<version>-alpine (musl) container; .github/workflows/prebuild.yml
# runs it with the checkout mounted at /src:
#   docker run --rm -v "$PWD:/src" node:20-alpine sh /src/.ci/prebuild.sh
# Works on a private copy (npm run as root in a directory it does not own
# would run the scripts as that directory's owner) and copies prebuilds/
# back to /src/prebuilds.
set -eu
src=${1:-/src}

if [ -f /etc/alpine-release ]; then
  apk add --no-cache build-base python3 linux-headers >/dev/null
elif ! command -v g++ >/dev/null || ! command -v make >/dev/null || ! command -v python3 >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ make python3 >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$src/." "$work/"
cd "$work"
rm -rf node_modules build prebuilds
npm ci --no-audit --no-fund
npm run prebuild
# The prebuild alone (PREBUILDS_ONLY: never build/Release): the smoke suite,
# and the package packed and installed from its tarball.
PREBUILDS_ONLY=1 npx vitest run --project helper test/smoke.test.ts test/pack.test.ts

mkdir -p "$src/prebuilds"
cp -R prebuilds/. "$src/prebuilds/"
ls -lR "$src/prebuilds"
