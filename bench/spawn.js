#!/usr/bin/env node
// Sequential spawn benchmark: /bin/true spawned and reaped one after
// another, stdio ignored, by clonefd (each engine), node:child_process and
// a C floor measured in the same run. Reports the median per-spawn latency
// and ratios. Not a test: numbers depend on the machine and its load.
//
// Then fork + IPC: clonefd/child_process's fork() (default engine) against
// node:child_process's, interleaved: (1) fork(child.js) until the reply to
// the first message arrives, (2) the round trip of a message over an
// established channel. Skipped with "fork: unsupported" where the drop-in's
// fork() throws ERR_CLONEFD_IPC_UNSUPPORTED.
//
// Every run also writes its figures to bench/results/<time>.json.
//
//   npm run bench                      2000 spawns, 40 forks, 2000 round trips per contender
//   npm run bench -- --quick           200 spawns, 10 forks, 500 round trips (a few seconds)
//   node bench/spawn.js -n 500 --heap-mib 1024 --json
//   node bench/spawn.js --only fork --forks 20 --pings 5000
//
// --rounds is the spawn half's; forks alternate one by one, round trips in
// blocks of 100.
'use strict';
const { execFileSync } = require('node:child_process');
const cp = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const clonefd = require('..');
const dropin = require('../lib/child_process.js');

function parseArgs(argv) {
  const given = {};
  const usage = () => {
    console.error('usage: node bench/spawn.js [--quick] [-n SPAWNS] [--rounds R] [--forks F] [--pings P] [--only spawn|fork] [--heap-mib M] [--json]');
    process.exit(2);
  };
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-n') given.n = Number(argv[++i]);
    else if (a === '--rounds') given.rounds = Number(argv[++i]);
    else if (a === '--forks') given.forks = Number(argv[++i]);
    else if (a === '--pings') given.pings = Number(argv[++i]);
    else if (a === '--heap-mib') given.heapMiB = Number(argv[++i]);
    else if (a === '--only') given.only = argv[++i];
    else if (a === '--json') given.json = true;
    else if (a === '--quick') quick = true;
    else usage();
  }
  const defaults = quick
    ? { n: 200, rounds: 4, forks: 10, pings: 500 }
    : { n: 2000, rounds: 4, forks: 40, pings: 2000 };
  const opts = { ...defaults, heapMiB: 0, json: false, only: null, quick, ...given };
  if (opts.only !== null && opts.only !== 'spawn' && opts.only !== 'fork') usage();
  if (!(opts.n > 0 && opts.rounds > 0 && opts.forks > 0 && opts.pings > 0 && opts.heapMiB >= 0)) {
    console.error('bench: -n, --rounds, --forks and --pings must be positive, --heap-mib >= 0');
    process.exit(2);
  }
  return opts;
}

function median(xs) {
  return quantile(xs, 0.5);
}

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))];
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


// ---- fork + IPC -----------------------------------------------------------

// The forked child: answers every message, exits when the channel closes.
const CHILD_JS = "'use strict';\nprocess.on('message', (m) => { process.send({ pong: m.ping }); });\n";

// Both take Node's fork(modulePath, args, options); the drop-in uses its
// default engine (helper).
const forkers = {
  'clonefd/child_process.fork': (script) => dropin.fork(script, []),
  'child_process.fork': (script) => cp.fork(script, []),
};
const FORK_PEER = 'child_process.fork';

const ANSWER_MS = 15000; // a bound on any one wait, so that a hang fails the scenario instead of the run

const PING_BLOCK = 100;

class Unsupported extends Error {}

function bounded(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ANSWER_MS} ms`)), ANSWER_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A forked child with its listeners attached once, before anything can
 * arrive: roundTrip() sends a message and resolves with the next one.
 */
class Forked {
  constructor(forkFn, script) {
    try {
      this.child = forkFn(script);
    } catch (err) {
      if (err && err.code === 'ERR_CLONEFD_IPC_UNSUPPORTED') throw new Unsupported(err.message);
      throw err;
    }
    this.pending = null;
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.status = { code, signal };
        if (this.pending) this.pending.reject(new Error(`the child exited (${code ?? signal}) before replying`));
        resolve(this.status);
      });
    });
    this.child.on('error', (err) => {
      if (this.pending) this.pending.reject(err);
      else this.lateError = err;
    });
    this.child.on('message', (m) => {
      const p = this.pending;
      this.pending = null;
      if (p) p.resolve(m);
      else this.stray = m;
    });
  }

  roundTrip(msg) {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.child.send(msg);
    });
  }

  /** Disconnects and waits for 'exit'; a child that does not go is killed. */
  async close() {
    try {
      if (this.child.connected) this.child.disconnect();
      const status = await bounded(this.exited, "'exit' after disconnect()");
      if (status.code !== 0) throw new Error(`the child exited with ${status.code ?? status.signal} after disconnect()`);
    } catch (err) {
      this.kill();
      throw err;
    }
  }

  kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** [µs until the reply to the first message, µs in the fork() call, µs from disconnect() to 'exit'] */
async function timeFork(forkFn, script) {
  const t0 = process.hrtime.bigint();
  const f = new Forked(forkFn, script);
  const t1 = process.hrtime.bigint();
  try {
    const reply = await bounded(f.roundTrip({ ping: 1 }), 'the reply to the first message');
    const t2 = process.hrtime.bigint();
    if (!reply || reply.pong !== 1) throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
    await f.close();
    const t3 = process.hrtime.bigint();
    return [Number(t2 - t0) / 1000, Number(t1 - t0) / 1000, Number(t3 - t2) / 1000];
  } catch (err) {
    f.kill();
    throw err;
  }
}

async function forkScenario(opts, script) {
  const names = Object.keys(forkers);
  for (const name of names) for (let i = 0; i < 2; i++) await timeFork(forkers[name], script); // warm-up
  const first = Object.fromEntries(names.map((k) => [k, []]));
  const call = Object.fromEntries(names.map((k) => [k, []]));
  const teardown = Object.fromEntries(names.map((k) => [k, []]));
  // A fork is long (a Node starting up): alternate them one by one.
  for (let r = 0; r < opts.forks; r++) {
    for (const name of names) {
      const [f, c, t] = await timeFork(forkers[name], script);
      first[name].push(f);
      call[name].push(c);
      teardown[name].push(t);
    }
  }
  const med = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(median(v))]));
  const result = {
    forks: opts.forks,
    exitInSpan: false,
    medianFirstReplyMicros: med(first),
    p90FirstReplyMicros: Object.fromEntries(Object.entries(first).map(([k, v]) => [k, Math.round(quantile(v, 0.9))])),
    medianForkCallMicros: med(call),
    medianTeardownMicros: med(teardown),
  };
  result.speedupVsChildProcess = ratiosTo(result.medianFirstReplyMicros, FORK_PEER);
  return result;
}

async function ipcScenario(opts, script) {
  const names = Object.keys(forkers);
  const kids = {};
  const rtt = Object.fromEntries(names.map((k) => [k, []]));
  const cpu = Object.fromEntries(names.map((k) => [k, []])); // the parent's CPU µs per round trip, per block
  const firstMicros = {};
  try {
    // ping 0 waits for the child to start; ping 1, right after it, is the
    // first round trip on a ready channel (one sample, reported apart);
    // then a warm-up.
    for (const name of names) {
      kids[name] = new Forked(forkers[name], script);
      await bounded(kids[name].roundTrip({ ping: 0 }), `${name}: the first reply`);
      const t0 = process.hrtime.bigint();
      await bounded(kids[name].roundTrip({ ping: 1 }), `${name}: the second reply`);
      firstMicros[name] = Number(process.hrtime.bigint() - t0) / 1000;
      for (let i = 0; i < 100; i++) await bounded(kids[name].roundTrip({ ping: i }), `${name}: a warm-up reply`);
    }
    // Blocks of PING_BLOCK round trips, alternating between the children.
    const rounds = Math.ceil(opts.pings / PING_BLOCK);
    const perRound = Math.ceil(opts.pings / rounds);
    for (let r = 0; r < rounds; r++) {
      for (const name of names) {
        const k = kids[name];
        const u0 = process.cpuUsage();
        const before = rtt[name].length;
        for (let i = 0; i < perRound && rtt[name].length < opts.pings; i++) {
          const t0 = process.hrtime.bigint();
          const reply = await bounded(k.roundTrip({ ping: i }), `${name}: reply ${i}`);
          rtt[name].push(Number(process.hrtime.bigint() - t0) / 1000);
          if (reply.pong !== i) throw new Error(`${name}: reply ${JSON.stringify(reply)} to ping ${i}`);
        }
        const u = process.cpuUsage(u0);
        cpu[name].push((u.user + u.system) / (rtt[name].length - before));
      }
    }
    for (const name of names) await kids[name].close();
  } finally {
    for (const k of Object.values(kids)) k.kill();
  }
  const fix = (o, f) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Number(f(v).toFixed(1))]));
  const result = {
    roundTrips: opts.pings,
    medianMicros: fix(rtt, median),
    p99Micros: fix(rtt, (v) => quantile(v, 0.99)),
    maxMicros: fix(rtt, (v) => Math.max(...v)),
    parentCpuMicrosPerRoundTrip: fix(cpu, median),
    firstOnReadyChannelMicros: fix(firstMicros, (v) => v),
  };
  result.speedupVsChildProcess = ratiosTo(result.medianMicros, FORK_PEER);
  return result;
}

function ratiosTo(medians, peer) {
  const out = {};
  for (const [name, us] of Object.entries(medians)) {
    if (name !== peer) out[name] = Number((medians[peer] / us).toFixed(2));
  }
  return out;
}

/** fork + IPC figures, or { unsupported } / { error } */
async function forkFigures(opts) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clonefd-bench-fork-'));
  const script = path.join(dir, 'child.js');
  fs.writeFileSync(script, CHILD_JS);
  try {
    return { fork: await forkScenario(opts, script), ipc: await ipcScenario(opts, script) };
  } catch (err) {
    if (err instanceof Unsupported) return { unsupported: err.message };
    return { error: String(err && err.stack || err) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** This process's descendants other than clonefd's helper: [pid, command] */
function leftoverChildren() {
  const out = [];
  const walk = (pid) => {
    let tasks;
    try { tasks = fs.readdirSync(`/proc/${pid}/task`); } catch { return; }
    for (const t of tasks) {
      let kids = '';
      try { kids = fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim(); } catch { continue; }
      for (const k of kids ? kids.split(' ') : []) {
        let comm = '?';
        try { comm = fs.readFileSync(`/proc/${k}/comm`, 'utf8').trim(); } catch { /* gone */ }
        if (comm !== 'clonefd-helper') out.push([Number(k), comm]);
        walk(k);
      }
    }
  };
  walk(process.pid);
  return out;
}

function writeResults(result) {
  const dir = path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const ballast = [];
  for (let i = 0; i < opts.heapMiB; i++) ballast.push(Buffer.alloc(1 << 20, i & 0xff));
  const result = {
    node: process.version,
    kernel: os.release(),
    quick: opts.quick,
    heapMiB: opts.heapMiB,
  };
  if (opts.only !== 'fork') Object.assign(result, await spawnFigures(opts));
  if (opts.only !== 'spawn') Object.assign(result, await forkFigures(opts));
  // Give the last 'exit's a moment to be reaped before looking.
  await new Promise((resolve) => setTimeout(resolve, 50));
  result.leftoverChildren = leftoverChildren();
  const file = writeResults(result);
  if (result.error || result.leftoverChildren.length) process.exitCode = 1;
  if (opts.json) {
    console.log(JSON.stringify(result));
    return;
  }
  console.log(`clonefd benchmark, ${process.version}, Linux ${os.release()}${opts.quick ? ', --quick' : ''}${opts.heapMiB ? `, ${opts.heapMiB} MiB of Buffers held` : ''}`);
  if (result.medianMicros) printSpawn(result, opts);
  if (opts.only !== 'spawn') printFork(result);
  console.log('');
  console.log(result.leftoverChildren.length
    ? `  children left behind: ${result.leftoverChildren.map(([pid, comm]) => `${pid} (${comm})`).join(', ')}`
    : '  children left behind: none');
  console.log(`  results: ${path.relative(process.cwd(), file)}`);
  void ballast;
}

async function spawnFigures(opts) {
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
    spawns: opts.n,
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
  return result;
}

function printSpawn(result, opts) {
  const floor = result.cFloorMicros;
  console.log('');
  console.log(`spawn: /bin/true x ${opts.n} sequential, stdio ignored`);
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
}

function printFork(result) {
  console.log('');
  if (result.unsupported) {
    console.log(`fork: unsupported (${result.unsupported})`);
    return;
  }
  if (result.error) {
    console.log(`fork: failed: ${result.error}`);
    return;
  }
  const ms = (us) => (us / 1000).toFixed(1);
  const f = result.fork;
  console.log(`fork + first round trip: fork(child.js), send {ping:1}, until its reply arrives (exit not in the span), x ${f.forks} each`);
  console.log('');
  console.log('  contender                    median ms   p90 ms   of which fork() call   then disconnect → exit');
  for (const name of Object.keys(f.medianFirstReplyMicros)) {
    console.log(`  ${name.padEnd(27)}${ms(f.medianFirstReplyMicros[name]).padStart(11)}${ms(f.p90FirstReplyMicros[name]).padStart(9)}${`${ms(f.medianForkCallMicros[name])} ms`.padStart(23)}${`${ms(f.medianTeardownMicros[name])} ms`.padStart(25)}`);
  }
  console.log('');
  for (const [name, x] of Object.entries(f.speedupVsChildProcess)) console.log(`  ${name} is ${x.toFixed(2)}x as fast as ${FORK_PEER} (fork to first reply)`);
  const p = result.ipc;
  console.log('');
  console.log(`IPC round trip: send a message, await the reply, over an established channel, x ${p.roundTrips} each`);
  console.log('');
  console.log('  contender                    median µs   p99 µs   max µs   parent CPU µs*  1st once ready µs');
  for (const name of Object.keys(p.medianMicros)) {
    console.log(`  ${name.padEnd(27)}${String(p.medianMicros[name]).padStart(11)}${String(p.p99Micros[name]).padStart(9)}${String(p.maxMicros[name]).padStart(9)}${String(p.parentCpuMicrosPerRoundTrip[name]).padStart(16)}${String(p.firstOnReadyChannelMicros[name]).padStart(20)}`);
  }
  console.log('');
  console.log('  * the whole parent process\'s CPU time (user + system) per round trip, mean of a block, median of the blocks');
  console.log('');
  for (const [name, x] of Object.entries(p.speedupVsChildProcess)) console.log(`  ${name} is ${x.toFixed(2)}x as fast as ${FORK_PEER} (per round trip)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
