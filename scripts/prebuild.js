#!/usr/bin/env node
// `npm run prebuild`: prebuildify for this platform (the flags come from
// package.json: --napi --strip --tag-libc), then the helper executable is
// put next to the addon: prebuilds/<platform>-<arch>/clonefd-helper.<libc>
// beside clonefd.<libc>.node. prebuildify copies only .node files, and the
// addon falls back to that file where its embedded copy can't run from a
// memfd (src/helper.ts helperFileFor). The libc in the name lets one folder
// hold the glibc and the musl build.
//
// One N-API build serves every Node version; it is built against the
// headers of the Node that runs this script (its own include/ directory
// when npm_config_nodedir is not set), so nothing is downloaded.
// (There is no `build` script, only `compile`: npm would run `prebuild` as
// a hook before it.)
// usage: node scripts/prebuild.js [prebuildify flags...]
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const platform = process.env.PREBUILD_PLATFORM || os.platform();
const arch = process.env.PREBUILD_ARCH || os.arch();
/** ELF e_machine of each arch we ship. */
const machines = { x64: 62, arm64: 183 };

const args = process.argv.slice(2);
if (!args.some((a) => a === '-t' || a.startsWith('--target'))) args.push('--target', `node@${process.versions.node}`);

const env = { ...process.env };
if (!env.npm_config_nodedir) {
  const own = path.join(path.dirname(process.execPath), '..');
  if (fs.existsSync(path.join(own, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = own;
}

const r = spawnSync(process.execPath, [require.resolve('prebuildify/bin.js'), ...args], { cwd: root, env, stdio: 'inherit' });
if (r.status !== 0) {
  console.error(`prebuild: prebuildify failed (${r.error ? r.error.message : `exit ${r.status ?? r.signal}`})`);
  process.exit(1);
}

const helper = path.join(root, 'build', 'Release', 'clonefd-helper');
const dir = path.join(root, 'prebuilds', `${platform}-${arch}`);
const bytes = fs.readFileSync(helper);
// A helper for another machine would only fail at runtime, on a user's box.
const machine = bytes.length > 20 && bytes.readUInt32BE(0) === 0x7f454c46 ? bytes.readUInt16LE(18) : -1;
if (machines[arch] !== undefined && machine !== machines[arch]) {
  console.error(`prebuild: ${helper} is not an ${arch} executable (ELF machine ${machine})`);
  process.exit(1);
}
fs.mkdirSync(dir, { recursive: true });
// The libc tag of the addon prebuildify just wrote (--tag-libc).
const addon = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.node'))
  .map((f) => ({ f, t: fs.statSync(path.join(dir, f)).mtimeMs }))
  .sort((a, b) => b.t - a.t)[0];
const libc = addon && /\.(glibc|musl)\.node$/.exec(addon.f);
if (!libc) {
  console.error(`prebuild: no libc-tagged addon in ${dir} (run with --tag-libc)`);
  process.exit(1);
}
const dest = path.join(dir, `clonefd-helper.${libc[1]}`);
fs.copyFileSync(helper, dest);
fs.chmodSync(dest, 0o755);
console.log(`prebuild: ${path.relative(root, dir)}: ${fs.readdirSync(dir).sort().join(', ')}`);
