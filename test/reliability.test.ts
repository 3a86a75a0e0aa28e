// Regression tests for the defects of issue 8 §1 (items 1–7), plus one found
// while attacking them (drop-in execFile/exec honouring `stdio`).
//
// Each test pins the CORRECT behaviour, so it fails while its defect is
// present. Tests that can abort, block or poison a process (worker
// termination, a SIGSTOPped helper, RLIMIT_NPROC, a private pid namespace)
// run in a separate `node -e` process that requires the compiled `lib/`
// (run `npm run compile` first) and report JSON on stdout; the test asserts
// on its exit status, stderr and that JSON. Everything else runs here and
// checks that no fd, zombie or live child is left behind.
//
// Bounds are generous (shared 2-core VM) but each one fails today by a wide
// margin; the numbers measured before the fixes are in each test's comment.
//
// Knobs: CLONEFD_STRESS_ROUNDS (worker termination rounds, default 100:
// the full run, in CI too; lower it for a quick local run).
//
// Codes this file proposes (change here if the fix chooses others):
//   HELPER_UNRESPONSIVE: a helper that does not answer within the deadline
//   HELPER_UNAVAILABLE:  no helper can be executed at all (memfd refused, no file)
import * as nodeCp from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import * as ours from '../src/child_process';
import { spawn, type Engine } from '../src/index';
import { fdDiff, liveChildren, openFds, waitFor, zombieChildren } from './helpers';

const HELPER_UNRESPONSIVE = 'ERR_CLONEFD_HELPER_UNRESPONSIVE';
const HELPER_UNAVAILABLE = 'ERR_CLONEFD_HELPER_UNAVAILABLE';

const root = path.resolve(__dirname, '..');
const libIndex = JSON.stringify(path.join(root, 'lib', 'index.js'));
const engines: Engine[] = ['helper', 'direct'];
const ROUNDS = Number(process.env.CLONEFD_STRESS_ROUNDS ?? 100);

interface NodeRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `script` with `node -e` (async, so this thread stays free). */
function runNode(script: string, timeoutMs: number, wrap: string[] = []): Promise<NodeRun> {
  return new Promise((resolve) => {
    const argv = [...wrap, process.execPath, '-e', script];
    const child = nodeCp.spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

/** The last line of stdout, parsed. */
function lastJson(r: NodeRun): any {
  const lines = r.stdout.trim().split('\n');
  try {
    return JSON.parse(lines[lines.length - 1]);
  } catch {
    return undefined;
  }
}

/** Source of a function, for the -e scripts: the clonefd helper of `process.pid`, by comm and ppid. */
const findHelperSrc = `
  function findHelper() {
    const fs = require('fs');
    for (const n of fs.readdirSync('/proc')) {
      if (!/^\\d+$/.test(n)) continue;
      try {
        const st = fs.readFileSync('/proc/' + n + '/stat', 'utf8');
        const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
        const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
        if (comm === 'clonefd-helper' && ppid === process.pid) return Number(n);
      } catch {}
    }
    return 0;
  }`;

/** This process's clonefd helper (0: none), found in /proc. */
function findHelper(): number {
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const st = readFileSync(`/proc/${n}/stat`, 'utf8');
      const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      if (comm === 'clonefd-helper' && ppid === process.pid) return Number(n);
    } catch {
      // exited meanwhile
    }
  }
  return 0;
}

/** For the in-process tests: nothing left behind. */
let fdsBefore: Map<number, string>;
async function warmUp(): Promise<void> {
  for (const engine of engines) await spawn('/bin/true', [], { stdio: 'ignore', engine }).exited;
  await spawn('/bin/true', [], { engine: 'helper' }).exited; // pipes too
}
async function expectClean(): Promise<void> {
  expect(await waitFor(() => zombieChildren().length === 0), `zombies: ${zombieChildren()}`).toBe(true);
  expect(await waitFor(() => liveChildren().length === 0), `live children: ${liveChildren()}`).toBe(true);
  expect(await waitFor(() => openFds().size <= fdsBefore.size), fdDiff(fdsBefore)).toBe(true);
}

// ---------------------------------------------------------------------------
describe('1. concurrent spawn loops do not starve the event loop', () => {
  // Measured before the fix (plain node, repro/d1-starvation.js), helper
  // engine, 8 loops for a nominal 3 s: the 3 s timer itself fired after
  // 70 s, 2 setInterval ticks (707 expected), the
  // `timeout: 200` child was never killed (exited normally after 5 s), the
  // node:child_process `sleep 0.3` exit was seen after 70 s. Direct engine:
  // 26-28 of 30 setInterval ticks (23 inside vitest: why this test counts
  // slots instead), timeout kill at 221-280 ms, child_process exit at 340 ms.
  // Here the loops stop by the clock, so the helper run ends after ~3 s too.
  const LOAD_MS = 3000;

  interface Load {
    ticks: number;
    maxGapMs: number;
    wallMs: number;
    spawns: number;
    timeoutSignal: string | null;
    timeoutMs: number;
    cpExitMs: number;
  }

  async function underLoad(engine: Engine): Promise<Load> {
    // A drift-free 100 ms ticker: it counts the 100 ms slots in which the
    // loop reached its timers at least once (a plain setInterval drifts by
    // each tick's lateness, which on a busy 2-core VM is noise, not
    // starvation), and the longest gap between two ticks.
    let ticks = 0;
    let maxGapMs = 0;
    const start = Date.now();
    let last = start;
    let next = start + 100;
    let ticker: NodeJS.Timeout;
    const tick = () => {
      const now = Date.now();
      ticks++;
      maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
      while (next <= now) next += 100; // slots missed meanwhile stay missed
      ticker = setTimeout(tick, next - now);
    };
    ticker = setTimeout(tick, 100);
    let spawns = 0;
    // The loops stop themselves by the clock: a starved timer can't stop them.
    const deadline = start + LOAD_MS;
    let warm!: () => void;
    const warmed = new Promise<void>((r) => (warm = r));
    const loops = Array.from({ length: 8 }, async () => {
      while (Date.now() < deadline) {
        await spawn('/bin/true', [], { stdio: 'ignore', engine }).exited;
        if (++spawns === 40) warm();
      }
    });
    // The measured children start once the load is under way (a promise,
    // not a timer: a starved loop still runs it).
    await Promise.race([warmed, Promise.all(loops)]);
    const timed = spawn('sleep', ['5'], { stdio: 'ignore', engine, timeout: 200 });
    const timedAt = Date.now();
    const timedDone = timed.exited.then((info) => ({ signal: info.signal, ms: Date.now() - timedAt }));
    const cpAt = Date.now();
    const cpDone = new Promise<number>((resolve) => {
      nodeCp.spawn('sleep', ['0.3'], { stdio: 'ignore' }).on('exit', () => resolve(Date.now() - cpAt));
    });
    await Promise.all(loops);
    const wallMs = Date.now() - start;
    clearTimeout(ticker);
    maxGapMs = Math.max(maxGapMs, Date.now() - last);
    // If the timeout never fired during the load, don't wait 5 s for sleep.
    const late = setTimeout(() => timed.kill('SIGKILL'), 1000);
    const [t, cpExitMs] = await Promise.all([timedDone, cpDone]);
    clearTimeout(late);
    return { ticks, maxGapMs, wallMs, spawns, timeoutSignal: t.signal, timeoutMs: t.ms, cpExitMs };
  }

  for (const engine of engines) {
    describe(`${engine} engine`, () => {
      let load: Load;
      beforeAll(async () => {
        fdsBefore = openFds();
        await warmUp();
        fdsBefore = openFds();
        load = await underLoad(engine);
      }, 60_000);
      afterAll(expectClean);

      it('a 100 ms timer fires in >= 80% of its slots, never more than 1000 ms apart', () => {
        const slots = Math.floor(load.wallMs / 100);
        expect(load.ticks, JSON.stringify(load)).toBeGreaterThanOrEqual(Math.floor(0.8 * slots));
        expect(load.maxGapMs, JSON.stringify(load)).toBeLessThan(1000);
        expect(load.spawns).toBeGreaterThan(0);
      });

      it('a child with timeout: 200 is killed with SIGTERM within 1000 ms of its spawn', () => {
        expect(load.timeoutSignal, JSON.stringify(load)).toBe('SIGTERM');
        expect(load.timeoutMs, JSON.stringify(load)).toBeLessThan(1000);
      });

      it("a node:child_process child's exit (sleep 0.3) is seen within 900 ms", () => {
        expect(load.cpExitMs, JSON.stringify(load)).toBeLessThan(900);
      });
    });
  }
});

// ---------------------------------------------------------------------------
describe('2+3. worker.terminate() while workers spawn', () => {
  // Before the fix: SIGABRT, "terminate called after throwing an instance of
  // 'Napi::Error'", in every run of 20 rounds x 8 workers, both engines.
  // fds (helper engine, 1 worker x 20 rounds): 52 sockets left for good;
  // the direct engine aborted before the count.
  const workerSrc = (engine: Engine, file: string, args: string[]) => `
    const { spawn } = require(${libIndex});
    const { parentPort } = require('node:worker_threads');
    (async () => {
      for (let n = 0; ; n++) {
        const stdio = n % 2 ? 'pipe' : 'ignore';
        await spawn(${JSON.stringify(file)}, ${JSON.stringify(args)}, { stdio, engine: ${JSON.stringify(engine)} }).exited;
        if (n === 0) parentPort.postMessage('up');
      }
    })();`;

  for (const engine of engines) {
    it(`${engine}: 8 workers spawning in loops, terminated at random moments for ${ROUNDS} rounds: the process does not abort`, async () => {
      const script = `
        const { Worker } = require('node:worker_threads');
        const src = ${JSON.stringify(workerSrc(engine, '/bin/true', []))};
        (async () => {
          for (let r = 0; r < ${ROUNDS}; r++) {
            const ws = Array.from({ length: 8 }, () => new Worker(src, { eval: true }));
            // Terminate some before they are up, the rest while they spawn.
            await Promise.all(ws.map((w, i) => new Promise((res) => {
              if (i % 4 === 0) return setTimeout(res, Math.random() * 20);
              w.once('message', res); w.once('error', res); w.once('exit', res);
            }).then(() => new Promise((res) => setTimeout(res, Math.random() * 50))).then(() => w.terminate())));
          }
          console.log(JSON.stringify({ ok: true }));
        })();`;
      const r = await runNode(script, 30_000 + ROUNDS * 2000);
      expect(r.stderr).not.toContain('terminate called');
      expect({ status: r.status, signal: r.signal, stderr: r.stderr.slice(0, 500) }).toEqual({ status: 0, signal: null, stderr: '' });
      expect(lastJson(r)).toEqual({ ok: true });
    }, 60_000 + ROUNDS * 3000);

    it(`${engine}: workers terminated mid-spawn leave no fd behind (${ROUNDS} rounds)`, async () => {
      // fds of the child Node process, after a warm-up (the helper's own
      // socket and a first worker's), against after the rounds. The
      // process-wide reaper's epoll fd (opened for good the first time a
      // worker is torn down with a live direct-engine child) is process
      // state, not a leak: the warm-up opens it too.
      const script = `
        const { Worker } = require('node:worker_threads');
        const fs = require('fs');
        const { spawn } = require(${libIndex});
        const fds = () => { const m = {}; for (const f of fs.readdirSync('/proc/self/fd')) { try { m[f] = fs.readlinkSync('/proc/self/fd/' + f); } catch {} } return m; };
        const src = ${JSON.stringify(workerSrc(engine, '/bin/true', []))};
        const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
        (async () => {
          await spawn('/bin/true', [], { engine: ${JSON.stringify(engine)} }).exited;
          { const w = new Worker(src, { eval: true }); await new Promise((r) => w.once('message', r)); await w.terminate(); }
          {
            const w = new Worker("const { spawn } = require(" + ${JSON.stringify(libIndex)} + "); require('node:worker_threads').parentPort.postMessage(spawn('sleep', ['30'], { stdio: 'ignore', engine: " + ${JSON.stringify(JSON.stringify(engine))} + " }).pid); setInterval(() => {}, 1000);", { eval: true });
            const pid = await new Promise((r) => w.once('message', r));
            await w.terminate();
            process.kill(pid, 'SIGKILL'); // ours, still unreaped (the reaper or the helper holds it)
          }
          await sleep(300);
          const before = fds();
          for (let r = 0; r < ${ROUNDS}; r++) {
            const w = new Worker(src, { eval: true });
            await new Promise((res) => { w.once('message', res); w.once('error', res); });
            await sleep(Math.random() * 30);
            await w.terminate();
          }
          let extra = [];
          for (let i = 0; i < 100; i++) {
            globalThis.gc?.();
            await sleep(20);
            const after = fds();
            extra = Object.entries(after).filter(([k, v]) => before[k] !== v).map(([k, v]) => k + '->' + v);
            if (extra.length === 0) break;
          }
          console.log(JSON.stringify({ extra }));
        })();`;
      const r = await runNode(script, 30_000 + ROUNDS * 2000, []);
      expect({ status: r.status, signal: r.signal, stderr: r.stderr.slice(0, 500) }).toEqual({ status: 0, signal: null, stderr: '' });
      expect(lastJson(r)).toEqual({ extra: [] });
    }, 60_000 + ROUNDS * 3000);
  }
});

// ---------------------------------------------------------------------------
describe('4. a SIGSTOPped helper', () => {
  // The deadline is the helper's, not the child's: a child whose execve
  // takes long (its executable under a file lease, as on a slow NFS or FUSE
  // path) while the helper answered at once must be waited for, as Node
  // does. Found by the red team of issue 11: for a while the wait for the
  // exec counted against CLONEFD_HELPER_TIMEOUT_MS and such a spawn threw
  // ERR_CLONEFD_HELPER_UNRESPONSIVE and abandoned a healthy helper.
  it('a child whose exec takes longer than the deadline is waited for, not blamed on the helper', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'clonefd-slowexec-'));
    const exe = path.join(dir, 'slowtrue');
    cpSync('/bin/true', exe);
    const leased = path.join(dir, 'leased');
    const holder = nodeCp.spawn('python3', ['-c', [
      'import fcntl, os, signal, sys, time',
      'signal.signal(signal.SIGIO, signal.SIG_IGN)',
      `fd = os.open(${JSON.stringify(exe)}, os.O_RDONLY)`,
      'fcntl.fcntl(fd, 1024, fcntl.F_WRLCK)', // F_SETLEASE: an open for exec blocks until it goes
      `open(${JSON.stringify(leased)}, 'w').close()`,
      'time.sleep(1.5)',
      'os.close(fd)',
    ].join('\n')], { stdio: 'inherit' });
    const saved = process.env.CLONEFD_HELPER_TIMEOUT_MS;
    try {
      expect(await waitFor(() => readdirSync(dir).includes('leased'), 10000)).toBe(true);
      process.env.CLONEFD_HELPER_TIMEOUT_MS = '400';
      const t0 = Date.now();
      const p = spawn(exe, [], { stdio: 'ignore', engine: 'helper' });
      const info = await p.exited;
      expect(info.exitCode).toBe(0);
      // The positive control: the exec really waited for the lease.
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
      // And the helper was not abandoned: a spawn right after works on it.
      expect((await spawn('/bin/true', [], { stdio: 'ignore', engine: 'helper' }).exited).exitCode).toBe(0);
    } finally {
      if (saved === undefined) delete process.env.CLONEFD_HELPER_TIMEOUT_MS;
      else process.env.CLONEFD_HELPER_TIMEOUT_MS = saved;
      if (holder.exitCode === null) await new Promise((r) => holder.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Before the fix: spawn() blocked in poll(-1) until SIGCONT (3009 ms with
  // SIGCONT at 3 s); worker.terminate() waited 2749 ms, also until SIGCONT.
  // Here a watchdog process (sh, a child of the script, which outlives it)
  // SIGCONTs the helper after 8 s whatever happens, so nothing stays stopped.
  const WATCHDOG_S = 8;

  // The deadline is CLONEFD_HELPER_TIMEOUT_MS (default 5000): 1 s here.
  it(`spawn() fails within 4.5 s with code ${HELPER_UNRESPONSIVE}; after SIGCONT spawns work again`, async () => {
    const script = `
      process.env.CLONEFD_HELPER_TIMEOUT_MS = '1000';
      ${findHelperSrc}
      const { spawn } = require(${libIndex});
      const cp = require('child_process');
      (async () => {
        await spawn('/bin/true', [], { stdio: 'ignore' }).exited;
        const hp = findHelper();
        if (!hp) throw new Error('no helper');
        const dog = cp.spawn('sh', ['-c', 'sleep ${WATCHDOG_S}; kill -CONT ' + hp], { stdio: 'ignore' });
        const out = { helper: hp };
        try {
          process.kill(hp, 'SIGSTOP');
          const t0 = Date.now();
          try {
            const p = spawn('/bin/true', [], { stdio: 'ignore' });
            out.spawned = true;
            p.exited.catch(() => {});
          } catch (e) { out.code = e.code; out.message = e.message; }
          out.ms = Date.now() - t0;
        } finally {
          process.kill(hp, 'SIGCONT');
          dog.kill();
        }
        try {
          out.after = (await spawn('sh', ['-c', 'exit 3'], { stdio: 'ignore' }).exited).status;
        } catch (e) { out.after = e.code; }
        console.log(JSON.stringify(out));
      })();`;
    const r = await runNode(script, 30_000);
    expect({ status: r.status, signal: r.signal, stderr: r.stderr.slice(0, 500) }).toEqual({ status: 0, signal: null, stderr: '' });
    const out = lastJson(r);
    expect(out.ms, JSON.stringify(out)).toBeLessThan(4500);
    expect(out.spawned, JSON.stringify(out)).toBeUndefined();
    expect(out.code, JSON.stringify(out)).toBe(HELPER_UNRESPONSIVE);
    expect(out.after, JSON.stringify(out)).toBe(3);
  }, 40_000);

  // Found by the red team: once the child had exited, read() waited for
  // the record with no deadline, and exited never settled while the
  // helper stayed stopped.
  for (const how of ['read()', 'exited'] as const) {
    it(`a child that exits under a stopped helper: ${how} settles within the deadline, with the recovered record`, async () => {
      const script = `
        process.env.CLONEFD_HELPER_TIMEOUT_MS = '1000';
        ${findHelperSrc}
        const { spawn } = require(${libIndex});
        const cp = require('child_process');
        (async () => {
          await spawn('/bin/true', [], { stdio: 'ignore' }).exited;
          const hp = findHelper();
          const dog = cp.spawn('sh', ['-c', 'sleep ${WATCHDOG_S}; kill -CONT ' + hp], { stdio: 'ignore' });
          const out = {};
          try {
            const c = spawn('sh', ['-c', 'exit 7'], { stdio: 'ignore' });
            process.kill(hp, 'SIGSTOP');
            await new Promise((r) => setTimeout(r, 300));
            const t0 = Date.now();
            const info = ${how === 'read()' ? "c.read()" : 'await c.exited'};
            out.ms = Date.now() - t0;
            out.status = info && info.status;
            out.timesKnown = info && info.utime !== null;
          } catch (e) { out.error = e.code + ' ' + e.message; }
          finally {
            process.kill(hp, 'SIGCONT');
            dog.kill();
          }
          out.after = (await spawn('sh', ['-c', 'exit 3'], { stdio: 'ignore' }).exited).status;
          console.log(JSON.stringify(out));
        })();`;
      const r = await runNode(script, 30_000);
      expect({ status: r.status, signal: r.signal, stderr: r.stderr.slice(0, 500) }).toEqual({ status: 0, signal: null, stderr: '' });
      const out = lastJson(r);
      expect(out.error, JSON.stringify(out)).toBeUndefined();
      expect(out.status, JSON.stringify(out)).toBe(7);
      expect(out.ms, JSON.stringify(out)).toBeLessThan(4500);
      expect(out.after, JSON.stringify(out)).toBe(3);
    }, 40_000);
  }

  const stoppedWorkerSrc = `
    const { spawn } = require(${libIndex});
    require('node:worker_threads').parentPort.postMessage('go');
    try { spawn('/bin/true', [], { stdio: 'ignore' }); } catch {}`;

  it('worker.terminate() of a worker spawning against it resolves within 4 s', async () => {
    const script = `
      process.env.CLONEFD_HELPER_TIMEOUT_MS = '1000';
      ${findHelperSrc}
      const { spawn } = require(${libIndex});
      const { Worker } = require('node:worker_threads');
      const cp = require('child_process');
      (async () => {
        await spawn('/bin/true', [], { stdio: 'ignore' }).exited;
        const hp = findHelper();
        if (!hp) throw new Error('no helper');
        const dog = cp.spawn('sh', ['-c', 'sleep ${WATCHDOG_S}; kill -CONT ' + hp], { stdio: 'ignore' });
        const out = { helper: hp };
        try {
          process.kill(hp, 'SIGSTOP');
          const w = new Worker(${JSON.stringify(stoppedWorkerSrc)}, { eval: true });
          await new Promise((r) => w.once('message', r));
          await new Promise((r) => setTimeout(r, 200));
          const t0 = Date.now();
          await w.terminate();
          out.terminateMs = Date.now() - t0;
        } finally {
          process.kill(hp, 'SIGCONT');
          dog.kill();
        }
        console.log(JSON.stringify(out));
      })();`;
    const r = await runNode(script, 30_000);
    expect({ status: r.status, signal: r.signal, stderr: r.stderr.slice(0, 500) }).toEqual({ status: 0, signal: null, stderr: '' });
    const out = lastJson(r);
    expect(out.terminateMs, JSON.stringify(out)).toBeLessThan(4000);
  }, 40_000);
});

// ---------------------------------------------------------------------------
describe('5. the sync drop-ins type-check stdio like node:child_process', () => {
  // Before the fix: TypeError "(opts.stdio ?? [...]) is not iterable", no code.
  const bad: [string, unknown][] = [
    ['5', 5],
    ['{}', {}],
    ['true', true],
    ['10n', 10n],
  ];
  const calls = {
    spawnSync: (m: any, stdio: unknown) => m.spawnSync('true', [], { stdio }),
    execFileSync: (m: any, stdio: unknown) => m.execFileSync('true', [], { stdio }),
    execSync: (m: any, stdio: unknown) => m.execSync('true', { stdio }),
    spawn: (m: any, stdio: unknown) => m.spawn('true', [], { stdio }), // a control: passes today
  };
  const thrown = (f: () => unknown): { name?: string; code?: unknown } | 'no throw' => {
    try {
      const r: any = f();
      if (r && typeof r.kill === 'function') r.kill();
      return 'no throw';
    } catch (e: any) {
      return { name: e?.name, code: e?.code };
    }
  };
  beforeAll(async () => {
    await warmUp();
    fdsBefore = openFds();
  });
  afterAll(expectClean);

  for (const [fn, call] of Object.entries(calls)) {
    for (const [label, stdio] of bad) {
      it(`${fn}('true', ..., { stdio: ${label} }) throws ERR_INVALID_ARG_VALUE, as node:child_process does`, () => {
        const theirs = thrown(() => call(nodeCp, stdio));
        expect(theirs).toEqual({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
        expect(thrown(() => call(ours, stdio))).toEqual(theirs);
      });
    }
  }
});

// ---------------------------------------------------------------------------
describe('6. both engines give the same error for the same oversized request', () => {
  // Before the fix: 1,100,000 empty args → helper EPROTO, direct E2BIG, node
  // E2BIG. The boundary is argc > 2^20 (CLONEFD_MAX_STRINGS in the protocol);
  // 1,100,000 empty env entries also give EPROTO with the helper.
  beforeAll(async () => {
    await warmUp();
    fdsBefore = openFds();
  });
  afterAll(expectClean);
  const bigArgs = () => new Array(1_100_000).fill('');
  // Only the code: the error's spawnargs would flood the report.
  const codeOf = (f: () => unknown): unknown => {
    try {
      f();
      return 'no throw';
    } catch (e: any) {
      return e?.code;
    }
  };

  it('node:child_process itself says E2BIG (the reference)', () => {
    expect((nodeCp.spawnSync('true', bigArgs()).error as any)?.code).toBe('E2BIG');
  });

  for (const engine of engines) {
    it(`${engine}: spawn with 1,100,000 empty args throws E2BIG, and the next spawn works`, async () => {
      expect(codeOf(() => spawn('true', bigArgs(), { stdio: 'ignore', engine }))).toBe('E2BIG');
      expect((await spawn('sh', ['-c', 'exit 7'], { stdio: 'ignore', engine }).exited).status).toBe(7);
    });

    it(`${engine}: spawn with 1,100,000 empty env entries throws E2BIG`, () => {
      const env: Record<string, string> = {};
      for (let i = 0; i < 1_100_000; i++) env[`V${i}`] = '';
      expect(codeOf(() => spawn('true', [], { stdio: 'ignore', engine, env }))).toBe('E2BIG');
    });
  }

  it('the drop-in spawnSync reports E2BIG like node:child_process', () => {
    expect((ours.spawnSync('true', bigArgs()).error as any)?.code).toBe('E2BIG');
  });
});

// ---------------------------------------------------------------------------
const isRoot = process.getuid?.() === 0;

/** A copy of the package (lib, addon, node-gyp-build), optionally without the helper file. */
function packageCopy(withHelper: boolean): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'clonefd-rel-'));
  cpSync(path.join(root, 'lib'), path.join(dir, 'lib'), { recursive: true });
  cpSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
  cpSync(path.join(root, 'node_modules', 'node-gyp-build'), path.join(dir, 'node_modules', 'node-gyp-build'), { recursive: true });
  mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
  cpSync(path.join(root, 'build', 'Release', 'clonefd.node'), path.join(dir, 'build', 'Release', 'clonefd.node'));
  if (withHelper) cpSync(path.join(root, 'build', 'Release', 'clonefd-helper'), path.join(dir, 'build', 'Release', 'clonefd-helper'));
  nodeCp.execFileSync('chmod', ['-R', 'a+rX', dir]);
  return dir;
}

function canUnshare(): boolean {
  if (!isRoot) return false;
  const r = nodeCp.spawnSync('unshare', ['-p', '-f', '--mount-proc', 'sh', '-c', 'sysctl -w vm.memfd_noexec=2 >/dev/null'], { encoding: 'utf8' });
  return r.status === 0;
}

describe('7. helper start failures and recovery records', () => {
  it.runIf(canUnshare())(`memfd exec forbidden and no helper file: the code is ${HELPER_UNAVAILABLE}, not ENOENT`, async () => {
    // Before the fix: code ENOENT, "spawn clonefd-helper ENOENT (... exec failed ...)".
    // vm.memfd_noexec is per pid namespace: set only in a private one.
    const dir = packageCopy(false);
    try {
      const script = `
        const { spawn } = require(${JSON.stringify(dir)});
        try { spawn('true', [], { stdio: 'ignore' }); console.log(JSON.stringify({ spawned: true })); }
        catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
      const r = await runNode(script, 20_000, ['unshare', '-p', '-f', '--mount-proc', 'sh', '-c', 'sysctl -w vm.memfd_noexec=2 >/dev/null && exec "$0" "$@"']);
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
      const out = lastJson(r);
      expect(out.code, JSON.stringify(out)).not.toBe('ENOENT');
      expect(out.code, JSON.stringify(out)).toBe(HELPER_UNAVAILABLE);
      expect(out.message).toContain("engine: 'direct'");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.runIf(isRoot)("the helper's clone failing with EAGAIN (RLIMIT_NPROC) is not reported as 'exec failed'", async () => {
    // Before the fix: code EAGAIN, message "(the clonefd helper could not be
    // started (exec failed): ...)". Runs as nobody with RLIMIT_NPROC = 1, set
    // by prlimit on the script's own pid (lowering needs no privilege).
    const dir = packageCopy(true);
    try {
      const script = `
        require('child_process').execFileSync('prlimit', ['--pid', String(process.pid), '--nproc=1']);
        const { spawn } = require(${JSON.stringify(dir)});
        try { spawn('true', [], { stdio: 'ignore' }); console.log(JSON.stringify({ spawned: true })); }
        catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
      const r = await runNode(script, 20_000, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
      const out = lastJson(r);
      expect(out.code, JSON.stringify(out)).toBe('EAGAIN');
      expect(out.message).not.toContain('exec failed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('a child recovered after the helper is SIGKILLed', () => {
    beforeEach(async () => {
      await warmUp();
      fdsBefore = openFds();
    });
    afterEach(expectClean);

    it('with times read from /proc, has reapedElsewhere false (and true only when the times are unknown)', async () => {
      // Before the fix: { utime: 16, stime: 0, reapedElsewhere: true }.
      // The child burns some CPU, then sleeps past the helper's death; the
      // orphan's zombie (reparented to PID 1, reaped lazily) gives the times.
      const child = spawn('sh', ['-c', 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 1'], { stdio: 'ignore' });
      try {
        await new Promise((r) => setTimeout(r, 100));
        const helper = findHelper();
        expect(helper).toBeGreaterThan(0);
        process.kill(helper, 'SIGKILL');
        const info = await child.exited;
        expect(info.exitCode).toBe(0);
        expect(info.reapedElsewhere, JSON.stringify(info)).toBe(info.utime === null);
        expect(info.utime, 'times from the orphaned zombie').not.toBeNull();
        expect(info.stime).not.toBeNull();
        expect(info.reapedElsewhere).toBe(false);
      } finally {
        child.kill('SIGKILL');
        child.close();
      }
    });
  });
});

// ---------------------------------------------------------------------------
describe('new: drop-in execFile/exec ignore options.stdio, as node:child_process does', () => {
  // Found while attacking 5: node's execFile/exec never pass `stdio` on (they
  // always pipe and capture). Ours honour it: { stdio: 'ignore' } or
  // 'inherit' gives the callback an empty stdout; { stdio: 5 } throws.
  beforeAll(async () => {
    await warmUp();
    fdsBefore = openFds();
  });
  afterAll(expectClean);

  const run = (m: any, fn: 'execFile' | 'exec', stdio: unknown) =>
    new Promise<{ err: unknown; stdout: string }>((resolve) => {
      const cb = (err: any, stdout: string) => resolve({ err: err?.code ?? null, stdout });
      try {
        if (fn === 'execFile') m.execFile('echo', ['hi'], { stdio }, cb);
        else m.exec('echo hi', { stdio }, cb);
      } catch (e: any) {
        resolve({ err: `threw ${e?.code}`, stdout: '' });
      }
    });

  for (const fn of ['execFile', 'exec'] as const) {
    for (const [label, stdio] of [
      ["'ignore'", 'ignore'],
      ['5', 5],
    ] as [string, unknown][]) {
      it(`${fn} with { stdio: ${label} } still captures stdout`, async () => {
        const theirs = await run(nodeCp, fn, stdio);
        expect(theirs).toEqual({ err: null, stdout: 'hi\n' });
        expect(await run(ours, fn, stdio)).toEqual(theirs);
      });
    }
  }
});

// ---------------------------------------------------------------------------
describe('the main thread exits with live children', () => {
  // A Node process that calls process.exit() with four live children per
  // engine: a ref'd one, an unref'd one, a detached one and a
  // killWithParent one. After it is gone: the killWithParent children are
  // dead (helper: the helper kills them when the environment's sockets
  // close; direct: PR_SET_PDEATHSIG of the spawning thread); the others run
  // on (they are not killed by our exit), are nobody's zombies of ours, and
  // are then ended here by pid.
  for (const engine of engines) {
    it(`${engine}: killWithParent children die with the process; ref'd, unref'd and detached ones run on`, async () => {
      const script = `
        const { spawn } = require(${libIndex});
        const o = { stdio: 'ignore', engine: ${JSON.stringify(engine)} };
        const kids = {
          refd: spawn('sleep', ['30'], o),
          unrefd: spawn('sleep', ['30'], o).unref(),
          detached: spawn('sleep', ['30'], { ...o, detached: true }),
          kwp: spawn('sleep', ['30'], { ...o, killWithParent: true }),
        };
        console.log(JSON.stringify(Object.fromEntries(Object.entries(kids).map(([k, v]) => [k, v.pid]))));
        setTimeout(() => process.exit(0), 100);`;
      const r = await runNode(script, 20_000);
      expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
      const pids = lastJson(r) as Record<string, number>;
      const alive = (pid: number) => {
        try {
          const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
          return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z' && stat.includes('(sleep)');
        } catch {
          return false;
        }
      };
      try {
        expect(await waitFor(() => !alive(pids.kwp), 5_000), 'the killWithParent child is gone').toBe(true);
        for (const k of ['refd', 'unrefd', 'detached']) expect(alive(pids[k]), `${k} runs on`).toBe(true);
      } finally {
        // Ours to end: we started them (through the script).
        for (const k of ['refd', 'unrefd', 'detached']) if (alive(pids[k])) process.kill(pids[k], 'SIGKILL');
      }
    }, 30_000);
  }
});
