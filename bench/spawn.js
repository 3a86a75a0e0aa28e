#!/usr/bin/env node
// Sequential spawn benchmark: /bin/true spawned and reaped one after
// another, stdio ignored, by clonefd (each engine), node:child_process and
// a C floor measured in the same run. Reports the median per-spawn latency
// and ratios. Not a test: numbers depend on the machine and its load.
//
//   npm run bench                      2000 spawns per contender
//   node bench/spawn.js -n 500 --heap-mib 1024 --json
'use strict';
const { execFileSync } = require('node:child_process');
const cp = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const clonefd = require('..');

function parseArgs(argv) {
  const opts = { n: 2000, rounds: 4, heapMiB: 0, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-n') opts.n = Number(argv[++i]);
    else if (a === '--rounds') opts.rounds = Number(argv[++i]);
    else if (a === '--heap-mib') opts.heapMiB = Number(argv[++i]);
    else if (a === '--json') opts.json = true;
    else {
      console.error(`usage: node bench/spawn.js [-n N] [--rounds R] [--heap-mib M] [--json]`);
      process.exit(2);
    }
  }
  if (!(opts.n > 0 && opts.rounds > 0 && opts.heapMiB >= 0)) {
    console.error('bench: -n and --rounds must be positive, --heap-mib >= 0');
    process.exit(2);
  }
  return opts;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// Each contender starts a child and returns the promise of its exit: the
// time until it returns is the synchronous spawn call, the rest the wait.
const contenders = {
  'clonefd (helper)': () => clonefd.spawn('/bin/true', [], { stdio: 'ignore', engine: 'helper' }).exited,
  'clonefd (direct)': () => clonefd.spawn('/bin/true', [], { stdio: 'ignore', engine: 'direct' }).exited,
  'child_process.spawn': () => {
    const child = cp.spawn('/bin/true', [], { stdio: 'ignore' });
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', resolve);
    });
  },
};

/** [total µs, µs spent in the spawn call itself] */
async function timeOne(fn) {
  const t0 = process.hrtime.bigint();
  const exited = fn();
  const t1 = process.hrtime.bigint();
  await exited;
  const t2 = process.hrtime.bigint();
  return [Number(t2 - t0) / 1000, Number(t1 - t0) / 1000];
}

function cFloor(n) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clonefd-bench-'));
  try {
    const bin = path.join(dir, 'floor');
    execFileSync('cc', ['-O2', '-o', bin, path.join(__dirname, 'floor.c')], { stdio: 'ignore' });
    return Number(execFileSync(bin, [String(n)], { encoding: 'utf8' }).trim());
  } catch (err) {
    return null; // no C compiler: the floor is reported as unavailable
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const ballast = [];
  for (let i = 0; i < opts.heapMiB; i++) ballast.push(Buffer.alloc(1 << 20, i & 0xff));

  // Warm up both paths, then interleave rounds so that machine noise hits
  // every contender alike.
  for (const fn of Object.values(contenders)) for (let i = 0; i < 20; i++) await fn();
  const samples = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  const calls = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  const perRound = Math.ceil(opts.n / opts.rounds);
  for (let r = 0; r < opts.rounds; r++) {
    for (const [name, fn] of Object.entries(contenders)) {
      for (let i = 0; i < perRound && samples[name].length < opts.n; i++) {
        const [total, call] = await timeOne(fn);
        samples[name].push(total);
        calls[name].push(call);
      }
    }
  }
  const floor = cFloor(opts.n);
  const result = {
    node: process.version,
    kernel: os.release(),
    spawns: opts.n,
    heapMiB: opts.heapMiB,
    medianMicros: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Math.round(median(v))])),
    medianSpawnCallMicros: Object.fromEntries(Object.entries(calls).map(([k, v]) => [k, Math.round(median(v))])),
    cFloorMicros: floor,
  };
  const theirs = result.medianMicros['child_process.spawn'];
  result.speedupVsChildProcess = {};
  result.ratioToFloor = {};
  for (const [name, us] of Object.entries(result.medianMicros)) {
    if (!name.startsWith('clonefd')) continue;
    result.speedupVsChildProcess[name] = Number((theirs / us).toFixed(2));
    result.ratioToFloor[name] = floor ? Number((us / floor).toFixed(2)) : null;
  }
  if (opts.json) {
    console.log(JSON.stringify(result));
    return;
  }
  console.log(`clonefd spawn benchmark: /bin/true x ${opts.n} sequential, stdio ignored, ${process.version}, Linux ${os.release()}${opts.heapMiB ? `, ${opts.heapMiB} MiB of Buffers held` : ''}`);
  console.log('');
  console.log('  contender                 median µs/spawn   vs C floor   of which the spawn call');
  const row = (name, us, call) =>
    console.log(`  ${name.padEnd(26)}${String(us ?? 'n/a').padStart(15)}   ${(floor && us ? `${(us / floor).toFixed(2)}x` : 'n/a').padStart(10)}   ${call === undefined ? '' : `${call} µs`}`);
  row('C floor (clone+exec+wait)', floor);
  for (const [name, us] of Object.entries(result.medianMicros)) row(name, us, result.medianSpawnCallMicros[name]);
  console.log('');
  for (const [name, x] of Object.entries(result.speedupVsChildProcess)) {
    console.log(`  ${name} is ${x}x as fast as child_process.spawn`);
  }
  void ballast;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
