#!/usr/bin/env node
// Builds the addon and the helper for the native memory-safety runs
// (scripts/asan.sh, scripts/valgrind.sh) into a directory of their own, with
// gcc/g++ directly against Node's headers: build/Release, which the normal
// tests load, is never touched.
//
// usage: node scripts/native-build.js --mode asan|valgrind --out DIR [--log-dir DIR]
//
// The source lists and the per-target flags come from binding.gyp, so a new
// source file is picked up without editing this script. The result is laid
// out the way node-gyp-build looks for a build:
//   DIR/package.json              {"name":"clonefd"}: CLONEFD_PREBUILD=DIR selects it
//   DIR/build/Release/clonefd.node
//   DIR/build/Release/clonefd-helper (also embedded into clonefd.node, as in
//                                    the real build: the memfd path runs it)
//
// --mode asan:  -fsanitize=address,undefined -fno-omit-frame-pointer on every
//               source except CHILD_SIDE (below). The helper also gets
//               test/native/sanitizer_options.c, which points its reports at
//               --log-dir (the helper runs with an empty environment, so
//               ASAN_OPTIONS cannot reach it).
// --mode valgrind: -g -O1, no sanitizer, unstripped (readable stacks). The
//               addon is the real code. The helper has one substitution:
//               test/native/spawn_fork_shim.c instead of native/spawn_vfork.c,
//               because valgrind cannot run its CLONE_VM (non-vfork) clone at
//               all (see that file).
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const mode = opt('--mode');
const out = opt('--out');
const logDir = opt('--log-dir', '');
if (!['asan', 'valgrind'].includes(mode) || !out) {
  console.error('usage: node scripts/native-build.js --mode asan|valgrind --out DIR [--log-dir DIR]');
  process.exit(2);
}
if (mode === 'asan' && !logDir) {
  console.error('native-build: --mode asan needs --log-dir (where the helper writes its reports)');
  process.exit(2);
}

/*
 * Left uninstrumented in the ASan build, and why. These two files are the
 * code a child runs between clone and execve: with CLONE_VM it shares the
 * parent's memory (and, without CLONE_SETTLS, its thread pointer), on a
 * borrowed stack: a frame of the suspended caller (vfork, in Node and in
 * helper_start) or an mmap'd region of the helper that the helper keeps
 * using while the child runs (no vfork there). Instrumented, that code would
 *  - poison and unpoison ASan's shadow for its stack redzones in the shared
 *    shadow memory; the child ends in execve or exit_group without returning,
 *    so the poisoning of its last frames stays behind and later, valid
 *    accesses by the parent to that memory (its own stack in the vfork case)
 *    are reported as stack-buffer-overflows;
 *  - enter the ASan/UBSan runtime (reports, fake stacks, allocator and
 *    thread state, locks) from a "thread" the runtime never registered, using
 *    the parent's TLS while the helper's own thread runs on it concurrently:
 *    state corruption or a deadlock on a lock the parent holds;
 *  - with UBSan, call report handlers that format, lock and write from the
 *    shared memory before execve.
 * The child side uses raw system calls only (see child.h), which
 * no sanitizer could check anyway; the parent-side code around it (plans,
 * buffers, stacks, the helper's loop) is instrumented.
 * spawn_vfork.c also holds the clone3 trampoline, which calls into the
 * child from assembly on the fresh stack.
 * Tried (gcc 12, both files instrumented): the first failed exec in a helper
 * child, where the compiler puts __asan_handle_no_return before the noreturn
 * fail(), makes the runtime unpoison "the thread's stack" it believes it is
 * on and report a stack-use-after-scope inside its own sigaltstack
 * interceptor (clonefd_child_main, child.c:226, under clonefd_clone3_run),
 * then abort the child: the EACCES never reaches the exec pipe.
 */
const CHILD_SIDE = new Set(['native/child.c', 'native/spawn_vfork.c']);

function readGyp() {
  const text = fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8');
  // gyp files are Python literals; ours are JSON plus '#' comment lines.
  const json = text
    .split('\n')
    .map((l) => (/^\s*#/.test(l) ? '' : l))
    .join('\n');
  return new Function(`return (${json});`)();
}

const gyp = readGyp();
const target = (name) => {
  const t = gyp.targets.find((x) => x.target_name === name);
  if (!t) throw new Error(`binding.gyp: no target ${name}`);
  return t;
};
const linuxCond = (gyp.target_defaults.conditions || []).find((c) => c[0] === "OS=='linux'");
const defaults = linuxCond ? linuxCond[1] : {};
const defines = (gyp.target_defaults.defines || []).map((d) => `-D${d}`);

const nodedir = process.env.npm_config_nodedir;
let nodeInc = nodedir ? path.join(nodedir, 'include', 'node') : path.join(process.execPath, '..', '..', 'include', 'node');
if (!fs.existsSync(path.join(nodeInc, 'node_api.h'))) nodeInc = '/usr/include/node';
if (!fs.existsSync(path.join(nodeInc, 'node_api.h'))) throw new Error('native-build: no node_api.h (set npm_config_nodedir)');

const SAN = ['-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=all'];
const common = [
  ...defines,
  ...(defaults.cflags || []),
  '-fPIC',
  '-g',
  '-O1',
  '-DBUILDING_NODE_EXTENSION',
  `-I${nodeInc}`,
  `-I${path.join(root, 'native')}`,
];

const rel = path.join(out, 'build', 'Release');
const obj = path.join(out, 'obj');
fs.mkdirSync(rel, { recursive: true });
fs.mkdirSync(obj, { recursive: true });
fs.writeFileSync(path.join(out, 'package.json'), JSON.stringify({ name: 'clonefd', private: true }) + '\n');

function run(cmd, argv) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit'] });
    p.on('error', reject);
    p.on('exit', (code, sig) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${argv.join(' ')}: ${sig || `exit ${code}`}`)),
    );
  });
}

/** Compile flags for one source file (relative to the repository, or absolute). */
function cflagsFor(src, extra = []) {
  const cc = src.endsWith('.cc');
  const lang = cc ? defaults.cflags_cc || [] : defaults.cflags_c || [];
  const san = mode === 'asan' && !CHILD_SIDE.has(src) ? SAN : [];
  return { cmd: cc ? 'g++' : 'gcc', flags: [...common, ...lang, ...san, ...extra] };
}

async function compileAll(tag, sources, extra) {
  const dir = path.join(obj, tag);
  fs.mkdirSync(dir, { recursive: true });
  const jobs = sources.map((src) => {
    const abs = path.isAbsolute(src) ? src : path.join(root, src);
    const o = path.join(dir, path.basename(src).replace(/\.[^.]+$/, '') + (src.endsWith('.cc') ? '.cc.o' : '.o'));
    const { cmd, flags } = cflagsFor(src, extra);
    return { cmd, argv: [...flags, '-c', abs, '-o', o], o };
  });
  const width = Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) {
        const j = jobs[next++];
        await run(j.cmd, j.argv);
      }
    }),
  );
  return jobs.map((j) => j.o);
}

async function main() {
  const helper = target('clonefd-helper');
  const addon = target('clonefd');
  const t0 = Date.now();

  // 1. The helper (unstripped: readable reports; binding.gyp's "-s" is dropped).
  const helperSources = [...helper.sources];
  if (mode === 'valgrind') {
    const i = helperSources.indexOf('native/spawn_vfork.c');
    if (i < 0) throw new Error('binding.gyp: the helper no longer builds native/spawn_vfork.c; update the valgrind shim');
    helperSources[i] = path.join(root, 'test', 'native', 'spawn_fork_shim.c');
  }
  const helperExtra = [];
  if (mode === 'asan') {
    helperSources.push(path.join(root, 'test', 'native', 'sanitizer_options.c'));
    helperExtra.push(`-DCLONEFD_SAN_LOG_DIR="${logDir}"`);
  }
  const hobjs = await compileAll('helper', helperSources, helperExtra);
  const helperExe = path.join(rel, 'clonefd-helper');
  const hld = (helper.ldflags || []).filter((f) => f !== '-s');
  await run('gcc', [...(mode === 'asan' ? SAN : []), ...hobjs, ...hld, '-o', helperExe]);

  // 2. Embed it, as binding.gyp's clonefd_helper_blob action does.
  const gen = path.join(obj, 'gen');
  fs.mkdirSync(gen, { recursive: true });
  const blob = path.join(gen, 'clonefd_helper_blob.c');
  execFileSync(process.execPath, [path.join(root, 'native', 'embed-helper.js'), helperExe, blob], { stdio: 'inherit' });

  // 3. The addon.
  const addonSources = addon.sources.map((s) => (s.includes('<(SHARED_INTERMEDIATE_DIR)') ? blob : s));
  if (!addonSources.includes(blob)) throw new Error('binding.gyp: the clonefd target no longer embeds the helper blob');
  const aobjs = await compileAll('addon', addonSources, []);
  const linuxAddon = (addon.conditions || []).find((c) => c[0] === "OS=='linux'");
  const ald = linuxAddon ? linuxAddon[1].ldflags || [] : [];
  // Unresolved napi_* symbols come from the node executable at load time.
  await run('g++', [...(mode === 'asan' ? SAN : []), '-shared', ...aobjs, ...ald, '-o', path.join(rel, 'clonefd.node')]);

  const instrumented = mode === 'asan' ? [...helper.sources, ...addon.sources].filter((s) => !CHILD_SIDE.has(s) && !s.startsWith('<')) : [];
  console.log(
    `native-build (${mode}): ${rel} in ${((Date.now() - t0) / 1000).toFixed(1)} s` +
      (mode === 'asan' ? `; uninstrumented: ${[...CHILD_SIDE].join(', ')}; instrumented: ${new Set(instrumented).size} files` : '') +
      (mode === 'valgrind' ? '; helper spawns through test/native/spawn_fork_shim.c' : ''),
  );
}

main().catch((e) => {
  console.error(`native-build: ${e.message}`);
  process.exit(1);
});
