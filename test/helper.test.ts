// The helper engine's own promises (docs/ARCHITECTURE.md, "Why a helper" and "The helper engine"):
// no SIGCHLD and no foreign waitpid(-1) can touch its children; the record
// pipe is a literal read(2) contract; one helper serves every environment
// (workers included), kills killWithParent children when their environment
// goes, outlives Node until its children are reaped, survives nothing
// silently (its death is recovered), and takes requests of any size.
//
// Every spawn here pins `engine: 'helper'` (the positive control of the
// theft test pins 'direct'), so the file means the same in any project.
import * as cp from 'node:child_process';
import { execFileSync, spawnSync , spawnSync as spawnSyncCp } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, readSync, rmSync } from 'node:fs';
import { endianness, release, tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binding } from '../src/binding';
import {
  CLD_EXITED,
  CLD_KILLED,
  ClonefdInfo,
  clonefd,
  O_CLOEXEC,
  O_NONBLOCK,
  spawn,
  type ClonefdHandle,
  type Subprocess,
} from '../src/index';
import { collect, fdCount, fdFlags, openFds, probe, procStat, procStatus, sleep, useLeakCheck, waitFor, zombieChildren, macrotask } from './helpers';

const LIB = path.resolve(__dirname, '..', 'lib', 'index.js');
const BINDING = path.resolve(__dirname, '..', 'lib', 'binding.js');
const helper = { engine: 'helper' } as const;


/** True while `pid` exists at all (running or zombie). */
function procExists(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}


/** Exists and is not a zombie. */
function isRunning(pid: number): boolean {
  const s = procStat(pid);
  return s !== null && s.state !== 'Z';
}

/** Running (not a zombie) and a child of `parent`. */
function runningChildOf(pid: number, parent: number): boolean {
  const s = procStat(pid);
  return s !== null && s.state !== 'Z' && s.ppid === parent;
}

function comm(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8');
  } catch {
    return null;
  }
}

/** SIGKILL by pid, only while `pid` is still a running `sleep` (never a recycled pid). */
function killSleepByPid(pid: number): boolean {
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep\0')) return false;
    if (procStat(pid)?.state === 'Z') return false;
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

/** Kernel >= major.minor. */
function kernelAtLeast(major: number, minor: number): boolean {
  const [a, b] = release().split('.').map((x) => parseInt(x, 10));
  return a > major || (a === major && b >= minor);
}

/** Resolves with `p`'s settlement, or with 'timeout' after `ms`. */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

// ---- the thief: a foreign waitpid(-1) loop in this process ----------------

interface Stolen {
  pid: number;
  status: number;
  exitCode: number | null;
  signal: number | null;
}
interface Thief {
  start(): boolean;
  stop(): boolean;
  stolen(): Stolen[];
  polls(): number;
}

let thiefPath = '';

/** Compiles test/fixtures/thief.c (Node-API, C) into a loadable addon. */
function buildThief(): string {
  const candidates = [path.join(process.execPath, '../../include/node'), '/usr/include/node'];
  const include = candidates.find((dir) => existsSync(path.join(dir, 'node_api.h')));
  if (!include) throw new Error(`node_api.h not found in ${candidates.join(' or ')}`);
  const out = path.join(mkdtempSync(path.join(tmpdir(), 'clonefd-thief-')), 'thief.node');
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-I', include, '-o', out, path.join(__dirname, 'fixtures', 'thief.c'), '-lpthread']);
  return out;
}

let thiefModule: Thief | undefined;
function thief(): Thief {
  if (!thiefModule) {
    const m = { exports: {} as Thief };
    process.dlopen(m, thiefPath);
    thiefModule = m.exports;
  }
  return thiefModule;
}

/** Blocks this thread (the event loop) for about `ms`, without burning a core. */
const blockFor = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

// ---- setup ------------------------------------------------------------------

beforeAll(() => {
  // Fixtures first (they use child_process, which must never run beside
  // the thief).
  probe();
  thiefPath = buildThief();
});
const leaks = useLeakCheck(async () => {
  // Warm-up of everything this file uses: the helper (and this
  // environment's socket to it, one fd for the environment's life), the
  // direct engine, child_process (libuv's signal pipe), a worker's own
  // connection. The baseline is taken after.
  await spawn('/bin/true', [], { ...helper, stdio: 'ignore' }).exited;
  const warmFd = clonefd('/bin/true', [], { ...helper, stdio: 'ignore' });
  await warmFd.exited;
  warmFd.close();
  await spawn('/bin/true', [], { engine: 'direct', stdio: 'ignore' }).exited;
  await new Promise((r) => cp.spawn('/bin/true', [], { stdio: 'ignore' }).on('exit', r));
  const w = new Worker(
    `const { spawn } = require(${JSON.stringify(LIB)});
     spawn('/bin/true', [], { engine: 'helper', stdio: 'ignore' }).exited.then((i) => require('node:worker_threads').parentPort.postMessage(i.exitCode));`,
    { eval: true },
  );
  expect(await new Promise((r) => w.once('message', r))).toBe(0);
  await new Promise((r) => w.once('exit', r));
  await sleep(50);
});

afterAll(async () => {
  thiefModule?.stop(); // never left running (each test stops it in a finally)
  if (thiefPath) rmSync(path.dirname(thiefPath), { recursive: true, force: true }); // loaded already: the mapping stays
});

// ---- tests ------------------------------------------------------------------

describe('SIGCHLD', () => {
  it('200 helper-engine children (exec\'d, killed, failed execs) raise exactly 0 SIGCHLD; one child_process child raises it', async () => {
    const hp = binding.helperPid();
    expect(hp, 'the helper runs before the count starts').toBeGreaterThan(0);
    let count = 0;
    const onSigchld = () => count++;
    process.on('SIGCHLD', onSigchld);
    try {
      type Expect = { code: number; status: number };
      const results: { info: ClonefdInfo; want: Expect; pid: number }[] = [];
      const errors: unknown[] = [];
      let parentsChecked = 0;
      for (let batch = 0; batch < 4; batch++) {
        const pending: Promise<void>[] = [];
        for (let i = 0; i < 50; i++) {
          const n = batch * 50 + i;
          let k: Subprocess;
          let want: Expect;
          switch (n % 5) {
            case 0:
            case 1:
              k = spawn('sh', ['-c', `exit ${n % 256}`], { ...helper, stdio: 'ignore' });
              want = { code: CLD_EXITED, status: n % 256 };
              break;
            case 2:
              k = spawn('/bin/true', [], { ...helper, stdio: 'ignore' });
              want = { code: CLD_EXITED, status: 0 };
              break;
            case 3:
              k = spawn('sleep', ['30'], { ...helper, stdio: 'ignore' });
              // Running, exec'd: whose child it is.
              if (runningChildOf(k.pid, hp)) parentsChecked++;
              expect(k.kill('SIGKILL')).toBe(true);
              want = { code: CLD_KILLED, status: 9 };
              break;
            default:
              try {
                spawn('/nonexistent/clonefd-helper-test', [String(n)], { ...helper, stdio: 'ignore' });
                errors.push(new Error('spawn did not throw'));
              } catch (err) {
                errors.push(err);
              }
              continue;
          }
          const pid = k.pid;
          pending.push(k.exited.then((info) => void results.push({ info, want, pid })));
        }
        await Promise.all(pending);
      }
      await macrotask();
      await sleep(100);
      await macrotask();
      const sigchldForHelperChildren = count;

      expect(results.length + errors.length).toBe(200);
      expect(results).toHaveLength(160);
      for (const r of results) {
        expect({ pid: r.info.pid, code: r.info.code, status: r.info.status }, `child ${r.pid}`).toEqual({ pid: r.pid, ...r.want });
      }
      expect(errors).toHaveLength(40);
      for (const err of errors) expect(err).toMatchObject({ code: 'ENOENT', path: '/nonexistent/clonefd-helper-test' });
      expect(parentsChecked, 'the sleep children ran as children of the helper').toBe(40);
      expect(binding.helperPid(), 'the same helper all along').toBe(hp);
      expect(sigchldForHelperChildren, 'SIGCHLD for 200 helper-engine children').toBe(0);

      // The counter works: a node:child_process child raises SIGCHLD here.
      await new Promise((r) => cp.spawn('/bin/true', [], { stdio: 'ignore' }).on('exit', r));
      await macrotask();
      await waitFor(() => count > 0, 2_000);
      expect(count, 'SIGCHLD for one node:child_process child').toBeGreaterThanOrEqual(1);
    } finally {
      process.off('SIGCHLD', onSigchld);
    }
  });
});

describe('a foreign waitpid(-1) loop in this process (the thief)', () => {
  it('never obtains a helper-engine child; every status arrives intact', async () => {
    const t = thief();
    const hp = binding.helperPid();
    expect(hp).toBeGreaterThan(0);
    expect(t.start()).toBe(true);
    try {
      const kids: { k: Subprocess; code: number; status: number }[] = [];
      const sleepers: number[] = [];
      for (let i = 0; i < 30; i++) {
        if (i % 3 === 0) {
          kids.push({ k: spawn('sh', ['-c', `exit ${i + 1}`], { ...helper, stdio: 'ignore' }), code: CLD_EXITED, status: i + 1 });
        } else if (i % 3 === 1) {
          kids.push({ k: spawn('sh', ['-c', `sleep 0.2; exit ${i + 1}`], { ...helper, stdio: 'ignore' }), code: CLD_EXITED, status: i + 1 });
        } else {
          const k = spawn('sleep', ['30'], { ...helper, stdio: 'ignore' });
          sleepers.push(k.pid);
          kids.push({ k, code: CLD_KILLED, status: 15 });
        }
      }
      // The thief had its chances while they run: block the loop, so that
      // only the helper (another process) could reap anything meanwhile.
      blockFor(300);
      for (const pid of sleepers) expect(runningChildOf(pid, hp), `sleep ${pid} is the helper's running child`).toBe(true);
      for (const { k } of kids) if (sleepers.includes(k.pid)) expect(k.kill('SIGTERM')).toBe(true);
      const infos = await Promise.all(kids.map(({ k }) => k.exited));
      // And some more time after the exits.
      blockFor(200);
      await sleep(100);

      const pids = new Set(kids.map(({ k }) => k.pid));
      const stolen = t.stolen();
      expect(stolen.filter((s) => pids.has(s.pid)), 'helper-engine children obtained by waitpid(-1)').toEqual([]);
      expect(stolen.filter((s) => s.pid === hp), 'the helper itself obtained by waitpid(-1)').toEqual([]);
      expect(t.polls(), 'the thief really polled').toBeGreaterThan(100);
      for (const [i, info] of infos.entries()) {
        const { k, code, status } = kids[i];
        expect({ pid: info.pid, code: info.code, status: info.status, reapedElsewhere: info.reapedElsewhere }, `child ${i}`).toEqual({
          pid: k.pid,
          code,
          status,
          reapedElsewhere: false,
        });
        // Reaped by the helper: the seed's times are known.
        expect(typeof info.utime).toBe('number');
        expect(typeof info.stime).toBe('number');
      }
    } finally {
      t.stop();
    }
  });

  it('positive control: the same thief does steal direct-engine children; their statuses still arrive (PIDFD_INFO_EXIT)', async () => {
    const t = thief();
    expect(t.start()).toBe(true);
    let stolenOurs: Stolen[] = [];
    let kids: Subprocess[] = [];
    try {
      kids = [0, 1, 2, 3, 4].map((i) => spawn('sh', ['-c', `exit ${40 + i}`], { engine: 'direct', stdio: 'ignore' }));
      const pids = kids.map((k) => k.pid);
      // Block the loop, so the direct engine cannot reap them first, until
      // the thief reports having stolen them (at least one; all, normally).
      const deadline = Date.now() + 10_000;
      for (;;) {
        stolenOurs = t.stolen().filter((s) => pids.includes(s.pid));
        if (stolenOurs.length === pids.length || Date.now() > deadline) break;
        blockFor(1);
      }
    } finally {
      t.stop();
    }
    expect(stolenOurs.length, 'direct-engine children stolen by waitpid(-1)').toBeGreaterThanOrEqual(1);
    for (const s of stolenOurs) {
      const i = kids.findIndex((k) => k.pid === s.pid);
      expect(s.exitCode, `the thief got child ${i}'s status`).toBe(40 + i);
    }
    const infos = await within(Promise.all(kids.map((k) => k.exited)), 10_000);
    expect(infos, 'the stolen children settle').not.toBe('timeout');
    for (const [i, info] of (infos as ClonefdInfo[]).entries()) {
      const stolen = stolenOurs.some((s) => s.pid === kids[i].pid);
      expect({ pid: info.pid, code: info.code, status: info.status }).toEqual({ pid: kids[i].pid, code: CLD_EXITED, status: 40 + i });
      if (stolen) {
        expect({ reapedElsewhere: info.reapedElsewhere, utime: info.utime, stime: info.stime }, `stolen child ${i}`).toEqual({
          reapedElsewhere: true,
          utime: null,
          stime: null,
        });
      } else {
        expect(info.reapedElsewhere).toBe(false);
      }
    }
  });
});

describe('the record pipe, read with plain read(2)', () => {
  it('fs.readSync(handle.fd): EAGAIN before exit, then 24 bytes (s32 code, s32 status, u64 utime, u64 stime), then EOF; read() then returns null', async () => {
    const h = clonefd('sh', ['-c', 'sleep 0.3; exit 5'], { ...helper, flags: O_CLOEXEC | O_NONBLOCK, stdio: 'ignore' });
    try {
      expect(readlinkSync(`/proc/self/fd/${h.fd}`)).toMatch(/^pipe:/);
      expect(readlinkSync(`/proc/self/fd/${h.pidfd}`)).toContain('pidfd');
      expect(fdFlags(h.fd)).toEqual({ cloexec: true, nonblock: true });
      const buf = Buffer.alloc(64);
      expect(() => readSync(h.fd, buf, 0, 64, null)).toThrow(expect.objectContaining({ code: 'EAGAIN' }));

      const info = await h.exited;
      // The helper writes the pipe before it sends the EXIT message behind
      // `exited`: the bytes are there, a non-blocking read gets them.
      const n = readSync(h.fd, buf, 0, 64, null);
      expect(n, 'one read yields exactly the 24-byte struct clonefd_info').toBe(24);
      const le = endianness() === 'LE';
      const raw = {
        code: le ? buf.readInt32LE(0) : buf.readInt32BE(0),
        status: le ? buf.readInt32LE(4) : buf.readInt32BE(4),
        utime: le ? buf.readBigUInt64LE(8) : buf.readBigUInt64BE(8),
        stime: le ? buf.readBigUInt64LE(16) : buf.readBigUInt64BE(16),
      };
      expect({ code: raw.code, status: raw.status }).toEqual({ code: CLD_EXITED, status: 5 });
      // Known times (not UINT64_MAX), the same as the record `exited` gave.
      expect(raw.utime).not.toBe(0xffffffffffffffffn);
      expect(raw.stime).not.toBe(0xffffffffffffffffn);
      expect({ utime: Number(raw.utime), stime: Number(raw.stime) }).toEqual({ utime: info.utime, stime: info.stime });
      const parsed = ClonefdInfo.fromBuffer(buf.subarray(0, 24));
      expect({ code: parsed.code, status: parsed.status, utime: parsed.utime, stime: parsed.stime }).toEqual({
        code: info.code,
        status: info.status,
        utime: info.utime,
        stime: info.stime,
      });
      // Then EOF, and EOF again.
      expect(readSync(h.fd, buf, 0, 64, null), 'EOF after the record').toBe(0);
      expect(readSync(h.fd, buf, 0, 64, null), 'EOF stays').toBe(0);
      // The raw read consumed the record (docs/ARCHITECTURE.md, "Who reads the record"): the library's read() has nothing left.
      expect(h.read()).toBeNull();
      expect(h.read()).toBeNull();
      // `exited` came from the helper's socket: the full record.
      expect(info).toBeInstanceOf(ClonefdInfo);
      expect({ pid: info.pid, code: info.code, status: info.status, exitCode: info.exitCode, reapedElsewhere: info.reapedElsewhere }).toEqual({
        pid: h.pid,
        code: CLD_EXITED,
        status: 5,
        exitCode: 5,
        reapedElsewhere: false,
      });
      expect(info.rusage, 'the full rusage came with the socket message').not.toBeNull();
      expect(await h.exited).toBe(info);
    } finally {
      h.close();
    }
  });

  it('read() and readAsync() once `exited` has resolved: the record, never EAGAIN, however soon', async () => {
    // The helper sends the EXIT message before it writes the record pipe;
    // a non-blocking read() in between must still return the record.
    const failures: string[] = [];
    for (let i = 0; i < 300; i++) {
      const viaAsync = i % 2 === 1;
      const h = clonefd('/bin/true', [], { ...helper, flags: O_CLOEXEC | O_NONBLOCK, stdio: 'ignore' });
      try {
        let rec: ClonefdInfo | null;
        if (viaAsync) rec = await h.readAsync();
        else {
          await h.exited;
          rec = h.read();
        }
        if (rec === null || rec.code !== CLD_EXITED || rec.status !== 0) failures.push(`#${i}: ${JSON.stringify(rec)}`);
      } catch (err) {
        failures.push(`#${i} ${viaAsync ? 'readAsync()' : 'read() after exited'}: ${(err as Error).message}`);
      } finally {
        h.close();
      }
    }
    expect(failures, `${failures.length} of 300`).toEqual([]);
  });

  it('a C program reading the fd as its fd 3: 24, then 0 (EOF); read() then returns null', async () => {
    // Blocking (no O_NONBLOCK): the probe's read(2) waits for the exit.
    const h = clonefd('sh', ['-c', 'sleep 0.3; exit 6'], { ...helper, flags: O_CLOEXEC, stdio: 'ignore' });
    try {
      const p = spawn(probe(), ['read', '3'], { ...helper, stdio: ['ignore', 'pipe', 'inherit', h.fd] });
      const out = collect(p.stdout);
      const [pInfo, text] = await Promise.all([p.exited, out]);
      expect(text).toBe('24\n0\n');
      expect(pInfo.exitCode).toBe(0);
      const info = await h.exited;
      expect({ code: info.code, status: info.status }).toEqual({ code: CLD_EXITED, status: 6 });
      expect(h.read(), 'the probe consumed the record').toBeNull();
    } finally {
      h.close();
    }
  });
});

describe('a large environment', () => {
  it('> 64 KiB of env strings (sent to the helper through a memfd): the child sees every variable', async () => {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    for (let i = 0; i < 100; i++) env[`CLONEFD_BIG_${i}`] = `${i}:${String.fromCharCode(97 + (i % 26)).repeat(1000)}`;
    env.CLONEFD_HUGE = 'y'.repeat(70_000);
    const bytes = Object.entries(env).reduce((n, [k, v]) => n + k.length + v.length + 2, 0);
    expect(bytes).toBeGreaterThan(64 * 1024 + 100_000);

    const k = spawn('env', [], { ...helper, env, stdio: ['ignore', 'pipe', 'inherit'] });
    const [text, info] = await Promise.all([collect(k.stdout), k.exited]);
    expect(info.exitCode).toBe(0);
    const seen = new Map<string, string>();
    for (const line of text.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) seen.set(line.slice(0, eq), line.slice(eq + 1));
    }
    expect(seen.size, 'exactly the variables given').toBe(Object.keys(env).length);
    for (const [key, value] of Object.entries(env)) expect(seen.get(key), key).toBe(value);

    // The same request size through a worker's connection (its own socket).
    const w = new Worker(
      `const { spawn } = require(${JSON.stringify(LIB)});
       const { workerData, parentPort } = require('node:worker_threads');
       const k = spawn('sh', ['-c', 'echo "\${#CLONEFD_HUGE} \${CLONEFD_BIG_99%%:*}"'], { engine: 'helper', env: workerData, stdio: ['ignore', 'pipe', 'inherit'] });
       let out = '';
       k.stdout.setEncoding('utf8').on('data', (d) => (out += d)).on('end', () => k.exited.then((i) => parentPort.postMessage({ out, code: i.exitCode })));`,
      { eval: true, workerData: env },
    );
    const fromWorker = await new Promise<{ out: string; code: number }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    await new Promise((r) => w.once('exit', r));
    expect(fromWorker).toEqual({ out: '70000 99\n', code: 0 });
  });
});

describe('worker threads', () => {
  it('spawn from 4 workers at once: one helper is the parent of every child; statuses and outputs right', async () => {
    const src = `
      const { parentPort, workerData } = require('node:worker_threads');
      const fs = require('node:fs');
      const { spawn } = require(${JSON.stringify(LIB)});
      const { binding } = require(${JSON.stringify(BINDING)});
      (async () => {
        const kids = [];
        for (let i = 0; i < 6; i++) {
          const code = (workerData.w * 6 + i) % 13;
          const k = spawn('sh', ['-c', 'sleep 0.2; echo w' + workerData.w + '-' + i + '; exit ' + code], { engine: 'helper' });
          const stat = fs.readFileSync('/proc/' + k.pid + '/stat', 'utf8');
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
          const out = [];
          k.stdout.on('data', (d) => out.push(d));
          const ended = new Promise((r) => k.stdout.on('close', r));
          kids.push(Promise.all([k.exited, ended]).then(([info]) => ({
            i, pid: k.pid, ppid, infoPid: info.pid, code: info.code, status: info.status, out: Buffer.concat(out).toString(),
          })));
        }
        parentPort.postMessage({ helper: binding.helperPid(), rows: await Promise.all(kids) });
      })().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
    `;
    type Row = { i: number; pid: number; ppid: number; infoPid: number; code: number; status: number; out: string };
    const hp = binding.helperPid();
    expect(hp).toBeGreaterThan(0);
    const runs = [0, 1, 2, 3].map(
      (w) =>
        new Promise<{ helper: number; rows: Row[]; error?: string }>((resolve, reject) => {
          const worker = new Worker(src, { eval: true, workerData: { w } });
          let msg: { helper: number; rows: Row[]; error?: string } | undefined;
          worker.once('message', (m) => (msg = m));
          worker.once('error', reject);
          worker.once('exit', (code) => (code === 0 && msg ? resolve(msg) : reject(new Error(`worker ${w} exit ${code}: ${JSON.stringify(msg)}`))));
        }),
    );
    const results = await Promise.all(runs);
    for (const [w, r] of results.entries()) {
      expect(r.error, `worker ${w}`).toBeUndefined();
      expect(r.helper, `worker ${w} sees the process's one helper`).toBe(hp);
      expect(r.rows).toHaveLength(6);
      for (const row of r.rows) {
        expect(row.ppid, `worker ${w} child ${row.i}: parent`).toBe(hp);
        expect(row.infoPid).toBe(row.pid);
        expect({ code: row.code, status: row.status, out: row.out }).toEqual({ code: CLD_EXITED, status: (w * 6 + row.i) % 13, out: `w${w}-${row.i}\n` });
      }
    }
    expect(binding.helperPid()).toBe(hp);
    expect(await waitFor(() => zombieChildren().length === 0 && fdCount() === leaks.baseline, 10_000), leaks.report()).toBe(true);
  });

  it('terminating a worker mid-flight: killWithParent children die with it; the others run on until killed, then the helper reaps them', async () => {
    const hp = binding.helperPid();
    expect(hp).toBeGreaterThan(0);
    const fdsBefore = openFds();
    // Worker A: four `sleep 30`, two of them killWithParent; terminated mid-flight.
    const a = new Worker(
      `const { spawn } = require(${JSON.stringify(LIB)});
       const opts = { engine: 'helper', stdio: 'ignore' };
       const kwp = [0, 1].map(() => spawn('sleep', ['30'], { ...opts, killWithParent: true }));
       const plain = [0, 1].map(() => spawn('sleep', ['30'], opts));
       plain[1].unref();
       require('node:worker_threads').parentPort.postMessage({ kwp: kwp.map((k) => k.pid), plain: plain.map((k) => k.pid) });
       setInterval(() => {}, 1000);`,
      { eval: true },
    );
    // Worker B: children that live across A's teardown; its statuses must not suffer.
    const b = new Worker(
      `const { spawn } = require(${JSON.stringify(LIB)});
       const { parentPort } = require('node:worker_threads');
       const kids = [1, 2, 3].map((n) => spawn('sh', ['-c', 'sleep 0.6; exit ' + n], { engine: 'helper', stdio: 'ignore' }));
       parentPort.postMessage('spawned');
       Promise.all(kids.map((k) => k.exited)).then((infos) => parentPort.postMessage(infos.map((i) => [i.code, i.status])));`,
      { eval: true },
    );
    const bMessages: unknown[] = [];
    const bDone = new Promise<unknown>((resolve, reject) => {
      b.on('message', (m) => {
        bMessages.push(m);
        if (bMessages.length === 2) resolve(m);
      });
      b.once('error', reject);
    });
    const aExit = new Promise<number>((r) => a.once('exit', r));
    const { kwp, plain } = await new Promise<{ kwp: number[]; plain: number[] }>((resolve, reject) => {
      a.once('message', resolve);
      a.once('error', reject);
    });
    await waitFor(() => bMessages.length >= 1, 10_000);
    for (const pid of [...kwp, ...plain]) expect(runningChildOf(pid, hp), `sleep ${pid} runs as the helper's child`).toBe(true);

    try {
      await a.terminate();
      expect(await aExit).toBe(1);
      // killWithParent: SIGKILLed by the helper when A's socket closed, and reaped (gone, not zombies).
      const t0 = Date.now();
      const kwpGone = await waitFor(() => kwp.every((pid) => !procExists(pid)), 5_000);
      expect(kwp.filter(procExists), `killWithParent children left after ${Date.now() - t0} ms`).toEqual([]);
      expect(kwpGone).toBe(true);
      // The others run on, still the helper's, well after the killWithParent ones are gone.
      await sleep(300);
      for (const pid of plain) expect(runningChildOf(pid, hp), `plain sleep ${pid} still runs under the helper`).toBe(true);
      // Worker B's children were not disturbed.
      expect(await within(bDone, 10_000)).toEqual([
        [CLD_EXITED, 1],
        [CLD_EXITED, 2],
        [CLD_EXITED, 3],
      ]);
      // Killed by pid (still the helper's unreaped children: the pid is theirs), then reaped by the helper.
      for (const pid of plain) expect(killSleepByPid(pid), `kill ${pid}`).toBe(true);
      let sawZombie = 0;
      const plainGone = await waitFor(() => {
        for (const pid of plain) if (procStat(pid)?.state === 'Z') sawZombie++;
        return plain.every((pid) => !procExists(pid));
      }, 5_000);
      expect(plain.filter(procExists), `plain children left (zombie sightings: ${sawZombie})`).toEqual([]);
      expect(plainGone).toBe(true);
      expect(zombieChildren()).toEqual([]);
      expect(binding.helperPid(), 'the helper lives on').toBe(hp);
      expect(await waitFor(() => fdCount() === leaks.baseline, 10_000), leaks.report()).toBe(true);
    } finally {
      // Cleanup only, after the assertions: nothing left running, and the
      // pidfds the library may have left behind in this process closed.
      for (const pid of [...kwp, ...plain]) killSleepByPid(pid);
      await b.terminate();
      for (const [n, target] of openFds()) if (target.includes('pidfd') && fdsBefore.get(n) !== target) closeSync(n);
    }
  });
});

describe('with many live children (the helper shares its fd table with each new child until the child has its own)', () => {
  // From 128 live children on, the helper keeps their fds at 1024 and up and
  // clones each new child with CLONE_FILES; the child's first act is a
  // private copy of the fds below 1024 (close_range CLOSE_RANGE_UNSHARE).
  // Everything a child gets must be as with few children.
  it('150 idle children: a new child has fds 0-2 and the mapped ones only, default signals, exec errors as usual, and nothing leaks', async () => {
    const idle: Subprocess[] = [];
    try {
      for (let i = 0; i < 150; i++) idle.push(spawn('sleep', ['60'], { stdio: 'ignore', engine: 'helper' }));
      const hp = binding.helperPid();
      const helperFds = () => readdirSync(`/proc/${hp}/fd`).map(Number);
      // The positive control: the helper's long-lived fds did move up.
      expect(Math.max(...helperFds())).toBeGreaterThanOrEqual(1024);
      const p = spawn('sh', ['-c', 'ls -1 /proc/$$/fd; grep -E "^Sig(Blk|Ign)" /proc/$$/status'], { stdio: ['ignore', 'pipe', 'inherit', 'pipe'], engine: 'helper' });
      const out = collect(p.stdout);
      expect((await p.exited).exitCode).toBe(0);
      const lines = (await out).trim().split('\n');
      // sh's fds, listed by ls: 0-2 and 3 (the extra pipe), nothing of the helper's.
      expect(lines.filter((l) => /^\d+$/.test(l)).map(Number).sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
      expect(lines.filter((l) => l.startsWith('Sig')).map((l) => l.split(/\s+/)[1])).toEqual(['0000000000000000', '0000000000000000']);
      // Exec errors still come from the child, synchronously.
      expect(() => spawn('/bin/true', [], { cwd: '/nonexistent-clonefd', stdio: 'ignore', engine: 'helper' })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
      expect(() => spawn('/etc/passwd', [], { stdio: 'ignore', engine: 'helper' })).toThrow(expect.objectContaining({ code: 'EACCES' }));
      const before = helperFds().length;
      for (let i = 0; i < 50; i++) expect((await spawn('/bin/true', [], { stdio: 'ignore', engine: 'helper' }).exited).exitCode).toBe(0);
      expect(helperFds().length).toBe(before);
    } finally {
      for (const c of idle) c.kill('SIGKILL');
      await Promise.all(idle.map((c) => c.exited));
    }
  });

  // The helper waits for a new child's private fd table before it touches
  // its own; a child SIGSTOPped in those first instructions must cost only
  // its own spawn (killed and failed with ETIMEDOUT after 1 s), not stall
  // every environment until Node abandons the helper. Found by the red team.
  it('children SIGSTOPped as they appear: spawns fail alone (ETIMEDOUT) or succeed, the helper is never abandoned', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'clonefd-stopper-'));
    const idle: Subprocess[] = [];
    const made: Subprocess[] = [];
    let stopped: number[] = [];
    const saved = process.env.CLONEFD_HELPER_TIMEOUT_MS;
    try {
      execFileSync('cc', ['-O2', '-o', path.join(dir, 'stopper'), path.join(__dirname, 'fixtures/stopper.c')]);
      for (let i = 0; i < 140; i++) idle.push(spawn('sleep', ['60'], { stdio: 'ignore', engine: 'helper' }));
      const hp = binding.helperPid();
      process.env.CLONEFD_HELPER_TIMEOUT_MS = '4000';
      // The direct engine: a child of this process, not of the helper, and
      // independent of this file's SIGCHLD experiments (node:child_process).
      const stopper = spawn(path.join(dir, 'stopper'), [String(hp), '3'], { stdio: ['ignore', 'pipe', 'inherit'], engine: 'direct' });
      const outP = collect(stopper.stdout);
      await sleep(200);
      const codes = new Set<string>();
      const t0 = Date.now();
      while (Date.now() - t0 < 2500) {
        try {
          made.push(spawn('sleep', ['60'], { stdio: 'ignore', engine: 'helper' }));
        } catch (e) {
          codes.add((e as { code: string }).code);
        }
        await sleep(5);
      }
      expect((await stopper.exited).exitCode).toBe(0);
      stopped = (await outP).trim().split('\n').filter(Boolean).map(Number);
      expect(stopped.length).toBeGreaterThan(0); // the stopper did its work
      expect([...codes].filter((c) => c !== 'ETIMEDOUT')).toEqual([]);
      expect(binding.helperPid()).toBe(hp); // not abandoned
      expect((await spawn('/bin/true', [], { stdio: 'ignore', engine: 'helper' }).exited).exitCode).toBe(0);
    } finally {
      if (saved === undefined) delete process.env.CLONEFD_HELPER_TIMEOUT_MS;
      else process.env.CLONEFD_HELPER_TIMEOUT_MS = saved;
      for (const c of [...idle, ...made]) c.kill('SIGKILL');
      for (const pid of stopped) {
        try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
      }
      await Promise.all([...idle, ...made].map((c) => c.exited));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the helper process', () => {
  // The umask is read from /proc/self/status (never by setting it): without
  // /proc a helper-engine spawn must say so, not report a bare ENOENT that
  // looks like a missing executable. Found by the red team of issue 11.
  it.skipIf(process.getuid?.() !== 0)('without /proc the helper engine says it needs it; the direct engine spawns', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'clonefd-noproc-'));
    try {
      const lib = JSON.stringify(path.resolve(__dirname, '../lib/index.js'));
      const script = `const { spawn } = require(${lib});
        const out = {};
        try { spawn('/bin/true', [], { engine: 'helper', stdio: 'ignore' }); out.helper = 'spawned'; } catch (e) { out.helper = { code: e.code, message: e.message }; }
        const d = spawn('/bin/true', [], { engine: 'direct', stdio: 'ignore' });
        d.exited.then((i) => { out.direct = i.exitCode; console.log(JSON.stringify(out)); });`;
      const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" /proc && exec "$2" -e "$3"', 'sh', dir, process.execPath, script], { encoding: 'utf8', timeout: 30000 });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { helper: { code: string; message: string }; direct: number };
      expect(out.direct).toBe(0);
      expect(out.helper.code).toBe('ENOENT');
      expect(out.helper.message).toContain('umask from /proc/self/status');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a busy event loop with a backlog of EXITs does not get a healthy helper abandoned (its killWithParent children live on)', () => {
    // 150 exits at once, each loop iteration 150 ms of synchronous work: the
    // backlog (8 EXITs per iteration) takes ~3 s to read, six watchdog
    // periods of 500 ms. The helper answered in milliseconds.
    const lib = path.resolve(__dirname, '..', 'lib');
    const code = `
      const { binding } = require(${JSON.stringify(path.join(lib, 'binding.js'))});
      let abandoned = 0;
      const orig = binding.helperAbandon;
      binding.helperAbandon = function (g) { abandoned++; return orig.call(this, g); };
      const { spawn } = require(${JSON.stringify(path.join(lib, 'index.js'))});
      const busy = (ms) => { const e = Date.now() + ms; while (Date.now() < e); };
      (async () => {
        const keeper = spawn('sleep', ['60'], { stdio: 'ignore', killWithParent: true });
        const kids = Array.from({ length: 150 }, () => spawn('true', [], { stdio: 'ignore' }));
        let settled = 0, noRusage = 0;
        kids.forEach((c) => c.exited.then((i) => { settled++; if (!i.rusage) noRusage++; }));
        const iv = setInterval(() => busy(150), 0);
        while (settled < kids.length) await new Promise((r) => setTimeout(r, 10));
        clearInterval(iv);
        const k = await Promise.race([keeper.exited, new Promise((r) => setTimeout(() => r(null), 300))]);
        console.log(JSON.stringify({ abandoned, noRusage, keeperAlive: k === null }));
        keeper.kill('SIGKILL');
        await keeper.exited;
      })();`;
    const r = spawnSyncCp(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, CLONEFD_HELPER_TIMEOUT_MS: '500' } });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual({ abandoned: 0, noRusage: 0, keeperAlive: true });
  });

  it("is called clonefd-helper in /proc/<pid>/comm, is this process's child, with fds 0-2 on /dev/null and terminal signals ignored", () => {
    const hp = binding.helperPid();
    expect(hp).toBeGreaterThan(0);
    expect(comm(hp)).toBe('clonefd-helper\n');
    expect(procStat(hp)).toEqual({ comm: 'clonefd-helper', state: expect.not.stringMatching(/^Z$/), ppid: process.pid });
    for (const fd of [0, 1, 2]) expect(readlinkSync(`/proc/${hp}/fd/${fd}`), `helper fd ${fd}`).toBe('/dev/null');
    const ignored = BigInt(`0x${procStatus(hp, 'SigIgn')}`);
    for (const sig of [1, 2, 3, 13, 20, 21, 22]) expect((ignored >> BigInt(sig - 1)) & 1n, `signal ${sig} ignored by the helper`).toBe(1n);
  });

  it('outlives a Node process that exits with a live (unref\'d) child until that child is reaped, then is gone', async () => {
    const script = `
      const { clonefd } = require(${JSON.stringify(LIB)});
      const { binding } = require(${JSON.stringify(BINDING)});
      const h = clonefd('sleep', ['1'], { engine: 'helper', stdio: 'ignore' });
      h.unref();
      console.log(JSON.stringify({ helper: binding.helperPid(), child: h.pid, at: Date.now() }));
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    // Node has exited now.
    const after = Date.now();
    expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
    const { helper: hp, child, at } = JSON.parse(r.stdout) as { helper: number; child: number; at: number };
    expect(hp).toBeGreaterThan(0);
    expect(hp).not.toBe(binding.helperPid()); // that process had its own helper
    // Its child still runs (it sleeps 1 s; Node took ${after - at} ms to exit), and is still the helper's.
    const childRuns = runningChildOf(child, hp);
    const helperState = procStat(hp);
    const helperComm = comm(hp);
    if (after - at < 800) {
      expect(childRuns, `sleep ${child} still runs under helper ${hp} after Node exited (${after - at} ms)`).toBe(true);
    }
    if (childRuns) {
      expect(helperState?.state, 'the helper runs while its child does').not.toBe('Z');
      expect(helperComm).toBe('clonefd-helper\n');
    }
    // The child is reaped (by the helper: gone, not a zombie of anyone for long) ...
    let childZombieSightings = 0;
    const childGone = await waitFor(() => {
      if (procStat(child)?.state === 'Z') childZombieSightings++;
      return !procExists(child);
    }, 15_000);
    expect(childGone, `sleep ${child} reaped (zombie sightings: ${childZombieSightings})`).toBe(true);
    // ... and then the helper is gone too (orphans are reaped lazily here: long deadline).
    const helperGone = await waitFor(() => !procExists(hp) || comm(hp) !== 'clonefd-helper\n', 15_000);
    expect(helperGone, `helper ${hp} gone: ${JSON.stringify(procStat(hp))}`).toBe(true);
  });

  it('SIGKILL of the helper mid-flight: every handle settles, a raw read gets EOF without a record, new spawns start a new helper', async () => {
    const hp = binding.helperPid();
    expect(hp).toBeGreaterThan(0);
    const opts = { ...helper, stdio: 'ignore' as const };
    const short = [0, 1, 2].map(() => spawn('sleep', ['0.5'], opts));
    const long = [0, 1].map(() => spawn('sleep', ['30'], opts));
    const flags = O_CLOEXEC | O_NONBLOCK;
    const rawLong = clonefd('sleep', ['30'], { ...opts, flags });
    const rawShort = clonefd('sleep', ['0.5'], { ...opts, flags });
    const untouched = clonefd('sleep', ['0.5'], { ...opts, flags });
    const all: ClonefdHandle[] = [...short, ...long, rawLong, rawShort, untouched];
    const longPids = [...long, rawLong].map((k) => k.pid);
    try {
      for (const k of [...long, rawLong]) expect(runningChildOf(k.pid, hp), `sleep 30 ${k.pid} runs under the helper`).toBe(true);

      process.kill(hp, 'SIGKILL');
      // Dead, and reaped by this process's reaper thread (not left a zombie).
      expect(await waitFor(() => !procExists(hp), 10_000), `old helper ${hp} reaped: ${JSON.stringify(procStat(hp))}`).toBe(true);

      // The documented failure mode: the record pipe lost its only writer.
      // A raw read(2) gets EOF with no record, even though the child still runs.
      const buf = Buffer.alloc(64);
      expect(isRunning(rawLong.pid), 'rawLong still runs (an orphan now)').toBe(true);
      expect(readSync(rawLong.fd, buf, 0, 64, null), 'raw read after the helper died: EOF, no record').toBe(0);

      // The long ones are orphans now; kill them by pid (alive and unreaped: the pid is theirs).
      for (const pid of longPids) expect(killSleepByPid(pid), `kill ${pid}`).toBe(true);

      const settled = await within(Promise.allSettled(all.map((k) => k.exited)), 20_000);
      expect(settled, 'every outstanding handle settles (nothing hangs)').not.toBe('timeout');
      const outcomes = settled as PromiseSettledResult<ClonefdInfo>[];
      for (const [i, o] of outcomes.entries()) {
        const k = all[i];
        const want = longPids.includes(k.pid) ? { code: CLD_KILLED, status: 9 } : { code: CLD_EXITED, status: 0 };
        if (o.status === 'fulfilled') {
          expect({ pid: o.value.pid, code: o.value.code, status: o.value.status }, `handle ${i} (pid ${k.pid})`).toEqual({ pid: k.pid, ...want });
        } else {
          // Only a kernel without PIDFD_INFO_EXIT may lose a status, and then with a coded error.
          expect(o.reason, `handle ${i} rejected`).toMatchObject({ code: expect.any(String) });
          expect(kernelAtLeast(6, 15), `handle ${i} rejected on a kernel with PIDFD_INFO_EXIT: ${String(o.reason)}`).toBe(false);
        }
      }
      // The raw-read handle's record after the child's exit: still no bytes.
      expect(readSync(rawShort.fd, buf, 0, 64, null), 'rawShort: EOF, no record').toBe(0);
      // The library's read() still delivers the recovered record (docs/ARCHITECTURE.md, "A helper that dies"),
      // also where a raw read found only EOF (it consumed no record).
      for (const [h, want] of [
        [untouched, { code: CLD_EXITED, status: 0 }],
        [rawShort, { code: CLD_EXITED, status: 0 }],
        [rawLong, { code: CLD_KILLED, status: 9 }],
      ] as const) {
        if (outcomes[all.indexOf(h)].status !== 'fulfilled') continue; // lost status: checked above
        const rec = h.read();
        expect(rec, `read() of ${h.pid} after the helper died`).not.toBeNull();
        expect({ pid: rec!.pid, code: rec!.code, status: rec!.status }).toEqual({ pid: h.pid, ...want });
        expect(h.read()).toBeNull();
      }

      // New spawns work, through a new helper.
      const k = spawn('sh', ['-c', 'sleep 0.2; exit 4'], opts);
      const hp2 = binding.helperPid();
      expect(hp2).toBeGreaterThan(0);
      expect(hp2).not.toBe(hp);
      expect(comm(hp2)).toBe('clonefd-helper\n');
      expect(runningChildOf(k.pid, hp2), 'the new child is the new helper\'s').toBe(true);
      expect((await k.exited).exitCode).toBe(4);
      expect(await waitFor(() => zombieChildren().length === 0, 10_000), `zombies: ${zombieChildren().join(',')}`).toBe(true);
    } finally {
      // Cleanup only: nothing left running, user fds released.
      for (const pid of longPids) killSleepByPid(pid);
      for (const h of all) h.close();
    }
    expect(await waitFor(() => fdCount() === leaks.baseline, 10_000), leaks.report()).toBe(true);
  });
});

describe('edge cases of the helper protocol: EXITs taken by other waits, full fd tables, a dead helper, record pipes held by siblings', () => {
  const lib = JSON.stringify(path.resolve(__dirname, '..', 'lib', 'index.js'));
  const bindingLib = JSON.stringify(path.resolve(__dirname, '..', 'lib', 'binding.js'));
  const runNode = (script: string, timeout = 20_000) => {
    const r = spawnSyncCp(process.execPath, ['-e', script], { encoding: 'utf8', timeout });
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  };

  it("read() of a child whose EXIT another spawn already took off the socket returns at once", () => {
    const r = runNode(`
      const { spawn } = require(${lib});
      const a = spawn('true', [], { stdio: 'ignore' });
      const t = Date.now(); while (Date.now() - t < 300); // a exits; its EXIT waits in the socket
      const b = spawn('sleep', ['0.2'], { stdio: 'ignore' }); // b's spawn reads (and queues) a's EXIT
      const info = a.read();
      console.log(info.exitCode, info.rusage !== null);`);
    expect(r.signal).toBeNull();
    expect(r.stdout).toBe('0 true\n');
  });

  it('a spawn whose fds do not fit in the helper fd table fails with EMFILE instead of waiting forever', () => {
    const r = spawnSyncCp('sh', ['-c', `ulimit -n 100; exec "${process.execPath}" -e "$0"`, `
      const { clonefd } = require(${lib});
      const fs = require('fs');
      const extra = [...Array(5)].map(() => fs.openSync('/dev/null', 'r'));
      for (let i = 0; i < 200; i++) {
        try { clonefd('sleep', ['5'], { stdio: 'ignore' }).close(); } catch (e) { break; }
      }
      try { clonefd('true', [], { stdio: ['ignore', 'ignore', 'ignore', ...extra] }); console.log('spawned'); }
      catch (e) { console.log(e.code); }
      process.exit(0);`], { encoding: 'utf8', timeout: 30_000 });
    expect(r.signal).toBeNull();
    expect(r.stdout.trim()).toMatch(/^(EMFILE|spawned)$/);
  });

  it('after the helper died: read() of a running child is EAGAIN (nothing consumed), then the recovered record', () => {
    const r = runNode(`
      const { clonefd, O_CLOEXEC, O_NONBLOCK } = require(${lib});
      const { binding } = require(${bindingLib});
      const h = clonefd('sleep', ['0.5'], { stdio: 'ignore', flags: O_CLOEXEC | O_NONBLOCK });
      process.kill(binding.helperPid(), 'SIGKILL');
      setTimeout(() => {
        let first;
        try { first = h.read(); } catch (e) { first = e.code; }
        h.exited.then((info) => {
          const second = h.read();
          console.log(first, info.exitCode, second && second.exitCode, h.read());
        });
      }, 200);`);
    expect(r.signal).toBeNull();
    expect(r.stdout).toBe('EAGAIN 0 0 null\n');
  });

  it('unref() after the helper died lets the process exit', () => {
    const r = runNode(`
      const { spawn } = require(${lib});
      const { binding } = require(${bindingLib});
      const t0 = Date.now();
      const c = spawn('sleep', ['4'], { stdio: 'ignore' });
      process.kill(binding.helperPid(), 'SIGKILL');
      setTimeout(() => c.unref(), 200);
      process.on('exit', () => { console.log(Date.now() - t0 < 3000 ? 'quick' : 'slow'); try { process.kill(c.pid, 'SIGKILL'); } catch {} });`);
    expect(r.stdout).toBe('quick\n');
  });

  it("a sibling's record pipe is not held by a child that has not exec'd yet", () => {
    // 20 children spawned back to back from two environments: every raw
    // read after the record gets EOF at once (no sibling copy of the write
    // end keeps it open).
    const r = runNode(`
      const { clonefd, O_CLOEXEC, O_NONBLOCK } = require(${lib});
      const { Worker } = require('worker_threads');
      const fs = require('fs');
      const w = new Worker("const { spawn } = require(${lib.replace(/"/g, '\\"')}); for (let i = 0; i < 200; i++) spawn('/bin/true', [], { stdio: 'ignore' });", { eval: true });
      const hs = [...Array(20)].map(() => clonefd('/bin/true', [], { stdio: 'ignore', flags: O_CLOEXEC | O_NONBLOCK }));
      Promise.all(hs.map((h) => h.exited)).then(() => {
        let eof = 0;
        const b = Buffer.alloc(64);
        for (const h of hs) {
          const n1 = fs.readSync(h.fd, b, 0, 64, null);
          try { if (n1 === 24 && fs.readSync(h.fd, b, 0, 64, null) === 0) eof++; } catch (e) {}
          h.close();
        }
        console.log(eof);
        w.terminate();
      });`);
    expect(r.stdout).toBe('20\n');
  });
});
