// Shared by bench/run.js and bench/scenarios/*: statistics, the
// interleaving runner, bounded waits, the table printer, machine info, the
// C floor, subprocess scenarios, the results file and the leftover check.
'use strict';
const cp = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

// ---- statistics -------------------------------------------------------------

function quantile(xs, q) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))];
}

function median(xs) {
  return quantile(xs, 0.5);
}

/** Rounds to `digits` decimals (figures in JSON and tables). */
function round(x, digits = 1) {
  return Number.isFinite(x) ? Number(x.toFixed(digits)) : x;
}

// ---- time -------------------------------------------------------------------

function nowUs() {
  return Number(process.hrtime.bigint()) / 1000;
}

// ---- bounded waits ----------------------------------------------------------

/** Thrown by bounded(): a wait that did not end fails its scenario, not the run. */
class Timeout extends Error {}

/** `promise`, or a Timeout rejection after `ms` saying what was awaited. */
function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Timeout(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- the interleaving runner ------------------------------------------------

/**
 * Measures contenders in rounds, interleaved: every round gives each
 * contender one block of samples, so that machine noise (another process,
 * a frequency change) lands on all of them alike, and ratios are taken
 * round by round between blocks measured seconds apart.
 *
 * contenders: { name: async () => sample }, a sample being a number or an
 *   object of named numbers (e.g. { us, callUs }).
 * perRound: samples per block, a number or { name: number } (a slow
 *   contender may take fewer).
 * warmup: samples per contender before round 1, not recorded.
 * The first contender rotates each round (A B C, B C A, C A B, ...):
 * still interleaved, and none always goes first (right after the previous
 * round's, or the previous scenario's, last block).
 *
 * Returns { name: { metric: [[round 1 samples], [round 2 samples], ...] } }.
 */
async function interleave(contenders, { rounds, perRound, warmup = 0 }) {
  const names = Object.keys(contenders);
  const blockOf = (name) => (typeof perRound === 'number' ? perRound : perRound[name]);
  // A contender is a function giving one sample, or { block(n) } giving n
  // samples at once (the C floor: one run of the floor binary per block).
  const runBlock = async (c, n) => {
    if (typeof c.block === 'function') return c.block(n);
    const samples = [];
    for (let i = 0; i < n; i++) samples.push(await c());
    return samples;
  };
  for (const name of names) if (warmup > 0) await runBlock(contenders[name], warmup);
  const out = Object.fromEntries(names.map((n) => [n, {}]));
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + r) % names.length];
      const block = {};
      for (const s of await runBlock(contenders[name], blockOf(name))) {
        for (const [metric, v] of Object.entries(typeof s === 'number' ? { value: s } : s)) (block[metric] ??= []).push(v);
      }
      for (const [metric, vs] of Object.entries(block)) (out[name][metric] ??= []).push(vs);
    }
  }
  return out;
}

/** The median of each round's median: one figure per contender and metric. */
function roundMedian(roundsOfSamples) {
  return median(roundsOfSamples.map(median));
}

/**
 * a / b, round by round (medians of the same round's blocks), then the
 * median of those ratios: a pair measured at the same time is compared.
 */
function pairedRatio(aRounds, bRounds) {
  const n = Math.min(aRounds.length, bRounds.length);
  const ratios = [];
  for (let r = 0; r < n; r++) ratios.push(median(aRounds[r]) / median(bRounds[r]));
  return median(ratios);
}

// ---- targets ----------------------------------------------------------------

/**
 * A target from the issue, checked against a measured value:
 * { what, value, op: '>=' | '<=', limit, ok }. `ceiling`, where given, is
 * the same figure for the C floor in the same run: the best any spawner
 * could reach on this machine. A target the floor itself misses is marked
 * `reachable: false`, so a miss is read as the machine's, not the code's.
 */
function target(what, value, op, limit, ceiling) {
  const meets = (v) => Number.isFinite(v) && (op === '>=' ? v >= limit : v <= limit);
  const t = { what, value: round(value, 2), op, limit, ok: meets(value) };
  if (ceiling !== undefined) {
    t.ceiling = round(ceiling, 2);
    t.reachable = meets(ceiling);
  }
  return t;
}

function printTargets(targets) {
  if (!targets || targets.length === 0) return;
  console.log('');
  for (const t of targets) {
    const shown = Number.isFinite(t.value) ? `${t.value}×` : 'n/a';
    let line = `  ${t.ok ? '✓' : '✗'} ${t.what}: ${shown} (target ${t.op === '>=' ? '≥' : '≤'} ${t.limit}×)`;
    if (t.ceiling !== undefined) {
      line += t.reachable ? `; the C floor: ${t.ceiling}×` : `; out of reach here: the C floor itself reaches ${t.ceiling}×`;
    }
    console.log(line);
  }
}

// ---- the table printer ------------------------------------------------------

/**
 * Prints rows under headers, columns padded to their widest cell: the first
 * column left-aligned, the others right-aligned (numbers).
 */
function printTable(headers, rows) {
  const cells = [headers, ...rows].map((row) => row.map((c) => (c === null || c === undefined ? '' : String(c))));
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => [...(row[i] ?? '')].length)));
  const pad = (s, w, left) => {
    const fill = ' '.repeat(Math.max(0, w - [...s].length));
    return left ? s + fill : fill + s;
  };
  const line = (row) => `  ${row.map((c, i) => pad(c, widths[i], i === 0)).join('   ')}`.trimEnd();
  console.log(line(cells[0]));
  console.log(`  ${widths.map((w) => '-'.repeat(w)).join('   ')}`);
  for (const row of cells.slice(1)) console.log(line(row));
}

/** Formats a ratio for a table: 2.13×, or n/a. */
function x(ratio, digits = 2) {
  return Number.isFinite(ratio) ? `${ratio.toFixed(digits)}×` : 'n/a';
}

/** Formats a number for a table with fixed decimals, or n/a. */
function num(v, digits = 0) {
  return Number.isFinite(v) ? v.toFixed(digits) : 'n/a';
}

// ---- machine ----------------------------------------------------------------

function machineInfo() {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1];
  } catch { /* not Linux enough: os.cpus() said it */ }
  return {
    cpu,
    cores: os.availableParallelism ? os.availableParallelism() : os.cpus().length,
    ramGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    kernel: os.release(),
    loadAvg: os.loadavg().map((l) => round(l, 2)),
  };
}

// ---- the C floor ------------------------------------------------------------

/**
 * Builds bench/floor.c with `cc` into a temp dir: { bin, dispose() }, or
 * { unavailable: why } (no compiler, or it failed): the floor is then
 * reported as unavailable instead of failing the run.
 */
function buildFloor() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clonefd-bench-floor-'));
  const dispose = () => fs.rmSync(dir, { recursive: true, force: true });
  const bin = path.join(dir, 'floor');
  try {
    cp.execFileSync('cc', ['-O2', '-o', bin, path.join(__dirname, 'floor.c')], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
    return { bin, dispose };
  } catch (err) {
    dispose();
    const why = err.code === 'ENOENT' ? 'no C compiler (cc) found' : `cc failed: ${String(err.stderr || err.message).trim().split('\n')[0]}`;
    return { unavailable: why };
  }
}

/** Runs the floor binary for `n` spawns: the µs of each. */
function runFloor(bin, n) {
  const out = cp.execFileSync(bin, [String(n)], { encoding: 'utf8', timeout: 60_000 + n * 50 });
  const us = out.trim().split('\n').map(Number);
  if (us.length !== n || !us.every((v) => v > 0)) throw new Error(`floor: expected ${n} timings, got ${JSON.stringify(out.slice(0, 80))}`);
  return us;
}

/** Runs the floor binary's concurrency mode: the ms for `total` spawns, `inFlight` alive at once. */
function runFloorConcurrent(bin, total, inFlight) {
  const out = cp.execFileSync(bin, ['-c', String(total), String(inFlight)], { encoding: 'utf8', timeout: 60_000 + total * 50 });
  const us = Number(out.trim());
  if (!(us > 0)) throw new Error(`floor -c: expected the run's µs, got ${JSON.stringify(out.slice(0, 80))}`);
  return us / 1000;
}

// ---- subprocess scenarios ---------------------------------------------------

/**
 * Runs `node [execArgv] script --child <json>` (this process's node) and
 * resolves with the JSON object the script prints last; its stderr is
 * passed through. A subprocess keeps the bench's own process small (big
 * parents) or gives it flags (--expose-gc). Bounded by `timeoutMs`: a hang
 * kills it and fails the scenario.
 */
function runChild(script, args, { execArgv = [], timeoutMs }) {
  return new Promise((resolve, reject) => {
    const child = cp.spawn(process.execPath, [...execArgv, script, '--child', JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => { out += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Timeout(`${path.basename(script)} ${JSON.stringify(args)}: no result within ${timeoutMs} ms (killed)`));
    }, timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop();
      let result;
      try { result = JSON.parse(last); } catch { /* below */ }
      if (code === 0 && result) resolve(result);
      else reject(new Error(`${path.basename(script)} ${JSON.stringify(args)} exited with ${code ?? signal}${result?.error ? `: ${result.error}` : ''}`));
    });
  });
}

/**
 * The child side of runChild(): parses --child, runs `fn(args)`, prints
 * its result as one JSON line (with this process's leftover children, as
 * orphans would not be the parent bench's to find), exits 0; on an error
 * prints { error } and exits 1.
 */
function childMain(fn) {
  const i = process.argv.indexOf('--child');
  const args = JSON.parse(process.argv[i + 1]);
  fn(args).then(async (result) => {
    await sleep(50); // let the last exits be reaped before looking
    result.leftoverChildren = leftoverChildren();
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  }, (err) => {
    process.stdout.write(`${JSON.stringify({ error: String(err && err.stack || err) })}\n`);
    process.exit(1);
  });
}

// ---- workers: long-lived subprocesses that measure on request ------------

/**
 * Starts `node [execArgv] script --worker <json>`, a subprocess that sets
 * itself up (holds memory, starts idle children) and then measures on
 * request, so that contenders living in different processes can still be
 * interleaved block by block. Messages are JSON lines: the worker writes
 * one when it is ready, then one answer per request.
 *
 * Returns { ready, request(msg), close() }: `ready` resolves with the
 * worker's first line; request() with its answer (bounded by `timeoutMs`);
 * close() asks it to quit (it reaps its children and reports leftovers)
 * and resolves with its last line, killing it if it does not go in time.
 */
function startWorker(script, args, { execArgv = [], timeoutMs }) {
  const what = `${path.basename(script)} ${JSON.stringify(args)}`;
  const child = cp.spawn(process.execPath, [...execArgv, script, '--worker', JSON.stringify(args)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const waiting = []; // answers are in request order
  let buffered = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    buffered += d;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const w = waiting.shift();
      if (!w) continue;
      let msg;
      try { msg = JSON.parse(line); } catch { w.reject(new Error(`${what}: not JSON: ${line.slice(0, 200)}`)); continue; }
      if (msg.error) w.reject(new Error(`${what}: ${msg.error}`));
      else w.resolve(msg);
    }
  });
  const exited = new Promise((resolve) => {
    child.once('close', (code, signal) => {
      for (const w of waiting.splice(0)) w.reject(new Error(`${what} exited with ${code ?? signal}`));
      resolve(code ?? signal);
    });
  });
  child.stdin.on('error', () => {}); // a worker that died: its 'close' rejects what waits
  const answer = (ms, label) => bounded(new Promise((resolve, reject) => waiting.push({ resolve, reject })), ms, `${what}: ${label}`);
  const ready = answer(timeoutMs, 'ready');
  const request = (msg) => {
    const p = answer(timeoutMs, msg.op);
    child.stdin.write(`${JSON.stringify(msg)}\n`);
    return p;
  };
  const close = async () => {
    try {
      const last = await request({ op: 'quit' });
      await bounded(exited, timeoutMs, `${what}: exit`);
      return last;
    } catch (err) {
      child.kill('SIGKILL');
      await exited;
      throw err;
    }
  };
  ready.catch(() => {}); // awaited by the caller; close() reports a worker that never got ready
  return { ready, request, close };
}

/**
 * The worker side of startWorker(): `setup(args)` resolves with a state
 * and what to say when ready; then each request line runs
 * `handlers[msg.op](state, msg)` (one at a time) and its result is written
 * back; 'quit' runs `teardown(state)`, writes this process's leftover
 * children and exits. A closed stdin (the bench died) also tears down.
 */
function workerMain({ setup, teardown, handlers }) {
  const args = JSON.parse(process.argv[process.argv.indexOf('--worker') + 1]);
  const write = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
  const fail = (err) => write({ error: String(err && err.stack || err) });
  let state;
  let queue = setup(args).then((r) => { state = r.state; write(r.ready ?? {}); });
  queue.catch((err) => { fail(err); process.exit(1); });
  const quit = async () => {
    await teardown(state);
    await sleep(50); // let the last exits be reaped before looking
    write({ leftoverChildren: leftoverChildren() });
    process.exit(0);
  };
  let buffered = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    buffered += d;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const msg = JSON.parse(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      queue = queue.then(() => (msg.op === 'quit' ? quit() : handlers[msg.op](state, msg).then(write))).catch(fail);
    }
  });
  process.stdin.on('end', () => { queue = queue.then(quit, quit); });
}

// ---- children ---------------------------------------------------------------

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

/** The pid of this process's clonefd helper, or null if none runs. */
function helperPid() {
  for (const t of fs.readdirSync(`/proc/${process.pid}/task`)) {
    let kids = '';
    try { kids = fs.readFileSync(`/proc/${process.pid}/task/${t}/children`, 'utf8').trim(); } catch { continue; }
    for (const k of kids ? kids.split(' ') : []) {
      try { if (fs.readFileSync(`/proc/${k}/comm`, 'utf8').trim() === 'clonefd-helper') return Number(k); } catch { /* gone */ }
    }
  }
  return null;
}

/** Resident set size of process `pid` in bytes (VmRSS of /proc/<pid>/status: kB, whatever the page size). */
function rssOf(pid) {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

function fdCount() {
  return fs.readdirSync('/proc/self/fd').length;
}

// ---- contenders: start a child, resolve at its exit ------------------------

// Loaded lazily: run.js imports this file before checking that lib/ is built.
const clonefd = () => require('..');
const dropin = () => require('../lib/child_process.js');

/** A bound on one child's wait: a hang fails the scenario with this message. */
const CHILD_MS = 30_000;

/** Resolves at a clonefd Subprocess's exit; rejects unless it exited 0 (or `signal` killed it). */
function coreExit(p, signal) {
  return p.exited.then((info) => {
    const ok = signal ? info.signal === signal : info.exitCode === 0;
    if (!ok) throw new Error(`pid ${p.pid} ended with ${info.exitCode ?? info.signal}`);
  });
}

/** The same for a node:child_process (or drop-in) ChildProcess, from its 'exit'. */
function cpExit(child, signal) {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, sig) => {
      if (signal ? sig === signal : code === 0) resolve();
      else reject(new Error(`pid ${child.pid} ended with ${code ?? sig}`));
    });
  });
}

/**
 * Starters of `file args` with stdio 'ignore', by contender: each starts
 * one child and returns the promise of its exit (the time until it returns
 * is the synchronous spawn call). `handle` receives the child object, for
 * scenarios that kill children themselves.
 */
const starters = {
  helper: (file, args, handle) => { const p = clonefd().spawn(file, args, { stdio: 'ignore', engine: 'helper' }); handle?.(p); return p; },
  direct: (file, args, handle) => { const p = clonefd().spawn(file, args, { stdio: 'ignore', engine: 'direct' }); handle?.(p); return p; },
  'drop-in': (file, args, handle) => { const c = dropin().spawn(file, args, { stdio: 'ignore' }); handle?.(c); return c; },
  node: (file, args, handle) => { const c = cp.spawn(file, args, { stdio: 'ignore' }); handle?.(c); return c; },
};

/** The exit promise of what starters[name] returned. */
function exitOf(name, child, signal) {
  return name === 'helper' || name === 'direct' ? coreExit(child, signal) : cpExit(child, signal);
}

/** Kills a child from any contender with SIGKILL (a no-op once it has exited). */
function killChild(child) {
  try { child.kill('SIGKILL'); } catch { /* already gone */ }
}

/** One timed spawn: { us: until the exit is observed, callUs: the spawn call }. */
async function timeSpawn(name, file, args) {
  const t0 = nowUs();
  const child = starters[name](file, args);
  const t1 = nowUs();
  await bounded(exitOf(name, child), CHILD_MS, `${name}: ${file} to exit`);
  return { us: nowUs() - t0, callUs: t1 - t0 };
}

/**
 * Starts `n` idle children (`sleep 1000`) with contender `name`, waiting
 * for each to have started (Node's 'spawn' event; clonefd's spawn returns
 * after the exec). Returns the handles; the caller kills and reaps them
 * with killAll(). On a failure the ones started so far are killed first.
 */
async function startIdle(name, n) {
  const kids = [];
  const started = [];
  try {
    for (let i = 0; i < n; i++) {
      const child = starters[name]('sleep', ['1000']);
      const entry = { child, exit: exitOf(name, child, 'SIGKILL') };
      entry.exit.catch(() => {}); // awaited in killAll(); no unhandled rejection meanwhile
      kids.push(entry);
      if (name === 'node' || name === 'drop-in') {
        const s = new Promise((resolve, reject) => { child.once('spawn', resolve); child.once('error', reject); });
        s.catch(() => {}); // awaited below
        started.push(s);
      }
    }
    // Node's 'spawn' events, awaited together at the end (one loop turn per child otherwise).
    await bounded(Promise.all(started), CHILD_MS + n * 20, `${name}: ${n} idle children to start`);
    return kids;
  } catch (err) {
    await killAll(kids);
    throw err;
  }
}

/** SIGKILLs every idle child in `kids` and waits (bounded) until each exit is observed. */
async function killAll(kids) {
  for (const k of kids) killChild(k.child);
  // allSettled: every exit is awaited even when one of them went wrong.
  const settled = await bounded(Promise.allSettled(kids.map((k) => k.exit)), CHILD_MS + kids.length * 10, `${kids.length} killed children to be reaped`);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
}

// ---- results ----------------------------------------------------------------

/** Writes `result` to <dir>/<ISO time>.json; returns the file's path. */
function writeResults(dir, result) {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

module.exports = {
  quantile, median, round, nowUs,
  Timeout, bounded, sleep,
  interleave, roundMedian, pairedRatio,
  target, printTargets, printTable, x, num,
  machineInfo, buildFloor, runFloor, runFloorConcurrent,
  runChild, childMain, startWorker, workerMain,
  leftoverChildren, helperPid, rssOf, fdCount,
  CHILD_MS, starters, coreExit, cpExit, exitOf, killChild, timeSpawn, startIdle, killAll, clonefd, dropin,
  writeResults,
};
