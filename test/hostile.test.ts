// Hostile neighbours (issue 8 §2): clonefd's children under everything a
// process may do to SIGCHLD and to other people's children, in this very
// process, with node:child_process children running alongside.
//
// The neighbours come from test/fixtures/hostile.c (a test-only Node-API
// addon, built here with `cc -shared -fPIC`): thief threads looping
// waitpid(-1, WNOHANG) or waitid(P_ALL, WEXITED|WNOHANG|__WALL), SIGCHLD
// SIG_IGN, SA_NOCLDWAIT with a no-op handler, a process-wide handler that
// reaps with waitpid(-1, WNOHANG) in a loop, and a SIGCHLD counter. Every
// disposition change keeps the original sigaction and puts it back.
//
// For each configuration:
//   phase A, helper engine only (no child_process, no direct child runs):
//     every record intact (pid, code, status), utime/stime numbers,
//     reapedElsewhere false, 0 SIGCHLD (signals coalesce: only 0 is
//     asserted exactly), no thief/handler ever got a helper child (or the
//     helper itself);
//   phase B, direct + helper + node:child_process mixed: every status
//     intact; direct: utime/stime null and reapedElsewhere true exactly when
//     someone else reaped the child (a thief or the handler recorded its pid,
//     or the configuration makes the kernel autoreap); a positive control
//     (some direct child WAS stolen, the loop is blocked now and then so the
//     thief wins); child_process children never hang (see cpExits);
//   after: thieves stopped, the disposition as it was, child_process works
//     again, no zombie, no live child, fds at the baseline.
//
// N = CLONEFD_HOSTILE_CHILDREN per engine per configuration. Per
// configuration: N helper (phase A) + N direct + N/4 helper + N/10
// child_process (phase B). Default 150 (~2,500 children, ~40 s on a VM
// where fork+exec of sh costs ~15 ms); the full run (`npm run
// test:hostile`) is 1500: 7 x (1500 + 1500 + 375 + 150) ~ 24,700 children.
// Seed: CLONEFD_HOSTILE_SEED (default 0x5eed).
//
// Deadlocks to avoid (see test/helper.test.ts): nothing synchronous from
// node:child_process (execFileSync/spawnSync) may run while a thief or a
// hostile disposition is active: libuv's private loop would wait forever
// for an exit a thief took (or that SIG_IGN made the kernel discard). The
// fixture is built before anything hostile starts. Async cp.spawn is used
// only for programs that exec (libuv's failed-exec path calls a blocking
// waitpid(pid) and aborts on ECHILD).
import * as cp from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLD_EXITED, CLD_KILLED, spawn, type ClonefdInfo } from '../src/index';
import { fdCount, liveChildren, rng, sleep, useLeakCheck, waitFor, zombieChildren } from './helpers';

const N = Math.max(10, Number(process.env.CLONEFD_HOSTILE_CHILDREN ?? 150) | 0);
const SEED = Number(process.env.CLONEFD_HOSTILE_SEED ?? 0x5eed) >>> 0;
const CONCURRENCY = 16;

// ---- the fixture -------------------------------------------------------------

interface Rec {
  pid: number;
  code: number;
  status: number;
}
interface Disposition {
  kind: 'default' | 'ignore' | 'handler';
  ours: boolean;
  flags: number;
  handler: string;
}
interface Hostile {
  thiefStart(kind: 0 | 1): boolean;
  thiefStop(kind: 0 | 1): boolean;
  thiefRunning(kind: 0 | 1): boolean;
  thiefReset(kind: 0 | 1): void;
  thiefStolen(kind: 0 | 1): Rec[];
  thiefPolls(kind: 0 | 1): number;
  setIgnore(): boolean;
  setNoCldWait(): boolean;
  setReaper(nocldwait: boolean): boolean;
  setCounter(): boolean;
  restore(): boolean;
  disposition(): Disposition;
  sigchldCount(): number;
  reaped(): Rec[];
  reapedReset(): void;
}

let fixtureDir = '';
let hostile: Hostile;

function buildHostile(): string {
  const candidates = [path.join(process.execPath, '../../include/node'), '/usr/include/node'];
  const include = candidates.find((dir) => existsSync(path.join(dir, 'node_api.h')));
  if (!include) throw new Error(`node_api.h not found in ${candidates.join(' or ')}`);
  fixtureDir = mkdtempSync(path.join(tmpdir(), 'clonefd-hostile-'));
  const out = path.join(fixtureDir, 'hostile.node');
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-I', include, '-o', out, path.join(__dirname, 'fixtures', 'hostile.c'), '-lpthread']);
  return out;
}

// ---- small tools ----------------------------------------------------------------


/** Blocks this thread (the event loop) for about `ms`, without burning a core. */
const blockFor = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Resolves with `p`'s value, or 'timeout' after `ms`. */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Runs `jobs` with at most `limit` in flight. */
async function pool<T>(count: number, limit: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      out[i] = await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return out;
}

/** The clonefd helper: this process's child named clonefd-helper. */
function helperPid(): number {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === process.pid && stat.includes('(clonefd-helper)')) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return -1;
}

/** True while `pid` is still this process's child (running or zombie). */
function isOurChild(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid;
  } catch {
    return false;
  }
}

// ---- the workload -------------------------------------------------------------------

interface Work {
  script: string;
  code: number;
  status: number;
}

// Non-core signals only (a core dump would be CLD_DUMPED, depending on ulimit -c).
const SIGNALS: [string, number][] = [
  ['TERM', 15],
  ['KILL', 9],
  ['USR1', 10],
  ['USR2', 12],
  ['ALRM', 14],
];

/** `sh -c 'exit K'` (K seed-fixed), a self-kill by signal, or a short CPU burn then exit K. */
function work(r: () => number): Work {
  const x = r();
  const k = Math.floor(r() * 256);
  if (x < 0.5) return { script: `exit ${k}`, code: CLD_EXITED, status: k };
  if (x < 0.75) {
    const [name, num] = SIGNALS[Math.floor(r() * SIGNALS.length)];
    return { script: `kill -${name} $$; exit 200`, code: CLD_KILLED, status: num };
  }
  const loops = 300 + Math.floor(r() * 2000);
  return { script: `i=0; while [ $i -lt ${loops} ]; do i=$((i+1)); done; exit ${k}`, code: CLD_EXITED, status: k };
}

/**
 * A spawn whose exec fails (ENOENT): spawn() must throw the typed error.
 * With the direct engine the failed child is a zombie with exit signal 0
 * (it never exec'd): a __WALL thief can take it before clonefd reaps it.
 */
const MISSING = '/nonexistent/clonefd-hostile-test';
function failedSpawn(engine: 'helper' | 'direct'): unknown {
  try {
    spawn(MISSING, [], { engine, stdio: 'ignore' });
    return new Error('spawn did not throw');
  } catch (err) {
    totals.failedExecs++;
    return err;
  }
}

// ---- the configurations ----------------------------------------------------------------

interface Config {
  name: string;
  thieves: (0 | 1)[];
  disposition: 'counter' | 'ignore' | 'nocldwait' | 'reaper' | 'reaper+nocldwait';
  /** SIG_IGN / SA_NOCLDWAIT: the kernel reaps exec'd children at exit; nobody can record them. */
  autoreap: boolean;
  /** A handler of ours is installed, so SIGCHLD can be counted (never under SIG_IGN: the signal is discarded). */
  counts: boolean;
  /** libuv's SIGCHLD handler still runs, so a child_process exit arrives unless a thief took the child. */
  cpExits: boolean;
  /** Someone in this process can take a direct child: the positive control applies. */
  steals: boolean;
}

const CONFIGS: Config[] = [
  { name: 'thief: waitpid(-1, WNOHANG)', thieves: [0], disposition: 'counter', autoreap: false, counts: true, cpExits: true, steals: true },
  { name: 'thief: waitid(P_ALL, WEXITED|WNOHANG|__WALL)', thieves: [1], disposition: 'counter', autoreap: false, counts: true, cpExits: true, steals: true },
  { name: 'SIGCHLD SIG_IGN', thieves: [], disposition: 'ignore', autoreap: true, counts: false, cpExits: false, steals: true },
  { name: 'SA_NOCLDWAIT (no-op handler)', thieves: [], disposition: 'nocldwait', autoreap: true, counts: true, cpExits: false, steals: true },
  { name: 'a process-wide reaping SIGCHLD handler', thieves: [], disposition: 'reaper', autoreap: false, counts: true, cpExits: false, steals: true },
  // SIG_IGN and a handler exclude each other: "all at once" is both thieves
  // and the reaping handler, once without and once with SA_NOCLDWAIT.
  { name: 'all at once: both thieves + reaping handler', thieves: [0, 1], disposition: 'reaper', autoreap: false, counts: true, cpExits: false, steals: true },
  { name: 'all at once: both thieves + reaping handler with SA_NOCLDWAIT', thieves: [0, 1], disposition: 'reaper+nocldwait', autoreap: true, counts: true, cpExits: false, steals: true },
];

function applyDisposition(c: Config): void {
  switch (c.disposition) {
    case 'counter':
      hostile.setCounter();
      break;
    case 'ignore':
      hostile.setIgnore();
      break;
    case 'nocldwait':
      hostile.setNoCldWait();
      break;
    case 'reaper':
      hostile.setReaper(false);
      break;
    case 'reaper+nocldwait':
      hostile.setReaper(true);
      break;
  }
}

/** Everything the thieves and the reaping handler took, by pid. */
function takenByOthers(): Map<number, Rec & { by: string }> {
  const m = new Map<number, Rec & { by: string }>();
  const add = (recs: Rec[], by: string) => {
    for (const r of recs) {
      if (m.has(r.pid)) throw new Error(`pid ${r.pid} reaped twice (${m.get(r.pid)!.by}, ${by}): pid reuse within a configuration?`);
      m.set(r.pid, { ...r, by });
    }
  };
  add(hostile.thiefStolen(0), 'waitpid thief');
  add(hostile.thiefStolen(1), 'waitid __WALL thief');
  add(hostile.reaped(), 'reaping handler');
  return m;
}

// ---- totals (reported at the end) --------------------------------------------------------

const totals = { helper: 0, direct: 0, cp: 0, statuses: 0, directStolen: 0, directAutoreaped: 0, cpTaken: 0, cpNoExit: 0, sigchldPhaseB: 0, failedExecs: 0 };

// ---- setup ------------------------------------------------------------------------------

beforeAll(() => {
  // Before anything hostile: the build uses child_process synchronously.
  const out = buildHostile();
  const m = { exports: {} as Hostile };
  process.dlopen(m, out);
  hostile = m.exports;
});

const leaks = useLeakCheck(async () => {
  // Warm-up: the helper and this environment's socket, the direct engine,
  // child_process (libuv's signal pipe). The baseline is taken after.
  await spawn('/bin/true', [], { engine: 'helper', stdio: 'ignore' }).exited;
  await spawn('/bin/true', [], { engine: 'direct', stdio: 'ignore' }).exited;
  await new Promise((r) => cp.spawn('/bin/true', [], { stdio: 'ignore' }).on('exit', r));
  const c = cp.spawn('sh', ['-c', 'exit 0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  c.stdout!.resume();
  await new Promise((r) => c.on('close', r));
});

afterAll(() => {
  // Never left behind, whatever failed.
  if (hostile) {
    hostile.thiefStop(0);
    hostile.thiefStop(1);
    hostile.restore();
  }
  if (fixtureDir) rmSync(fixtureDir, { recursive: true, force: true }); // loaded already: the mapping stays
  console.log(`hostile: seed ${SEED}, N ${N}: ${JSON.stringify(totals)}`);
});

// ---- the suite ----------------------------------------------------------------------------

describe(`hostile neighbours (seed ${SEED}, N ${N} per engine per configuration)`, () => {
  for (const [ci, config] of CONFIGS.entries()) {
    it(config.name, { timeout: 60_000 + N * 150 }, async () => {
      const r = rng((SEED ^ Math.imul(ci + 1, 0x9e3779b1)) >>> 0);
      const hp = helperPid();
      expect(hp, 'the helper runs (warm-up)').toBeGreaterThan(0);

      // A long-lived child_process child for the whole configuration: it
      // keeps libuv's SIGCHLD watcher active, so libuv never reinstalls or
      // removes its handler behind the hostile disposition; its exit after
      // the restore proves child_process works again.
      const anchor = cp.spawn('sleep', ['600'], { stdio: 'ignore' });
      const anchorExit = new Promise<number | null>((res) => anchor.on('exit', (_code, sig) => res(sig === 'SIGTERM' ? 15 : -1)));
      await waitFor(() => isOurChild(anchor.pid!), 2_000);
      await sleep(20);

      const before = hostile.disposition();
      hostile.thiefReset(0);
      hostile.thiefReset(1);
      hostile.reapedReset();
      try {
        applyDisposition(config);
        expect(hostile.disposition().kind, 'the hostile disposition is in place').toBe(config.disposition === 'ignore' ? 'ignore' : 'handler');
        for (const k of config.thieves) expect(hostile.thiefStart(k)).toBe(true);

        // ---- phase A: the helper engine alone --------------------------------
        await sleep(30);
        const sigA0 = hostile.sigchldCount();
        const planA = Array.from({ length: N }, () => work(r));
        const errorsA: unknown[] = [];
        const resultsA = await pool(N, CONCURRENCY, async (i) => {
          if (i % 20 === 0) errorsA.push(failedSpawn('helper'));
          const k = spawn('sh', ['-c', planA[i].script], { engine: 'helper', stdio: 'ignore' });
          return { pid: k.pid, info: await within(k.exited, 20_000) };
        });
        // Some time after the exits, for a SIGCHLD that might come late.
        await sleep(100);
        const sigA = hostile.sigchldCount() - sigA0;
        const takenA = takenByOthers();

        for (const [i, { pid, info }] of resultsA.entries()) {
          expect(info, `helper child ${i} (${planA[i].script}) settles`).not.toBe('timeout');
          const inf = info as ClonefdInfo;
          const got = { pid: inf.pid, code: inf.code, status: inf.status, reapedElsewhere: inf.reapedElsewhere, times: typeof inf.utime === 'number' && typeof inf.stime === 'number' };
          expect(got, `helper child ${i}: ${planA[i].script}`).toEqual({ pid, code: planA[i].code, status: planA[i].status, reapedElsewhere: false, times: true });
          expect(takenA.get(pid), `helper child ${pid} taken by someone in this process`).toBeUndefined();
          totals.statuses++;
        }
        for (const err of errorsA) expect(err, 'a failed helper-engine exec').toMatchObject({ code: 'ENOENT', path: MISSING });
        expect(takenA.get(hp), 'the helper itself reaped by someone in this process').toBeUndefined();
        if (config.counts) expect(sigA, `SIGCHLD during ${N} helper-engine children alone`).toBe(0);
        // Under SIG_IGN the kernel discards SIGCHLD at generation: nothing to count.
        totals.helper += N;

        // ---- phase B: direct + helper + child_process, mixed ------------------
        const nHelper = Math.max(4, Math.floor(N / 4));
        const nCp = Math.max(4, Math.floor(N / 10));
        const kinds: ('direct' | 'helper' | 'cp')[] = [...Array(N).fill('direct'), ...Array(nHelper).fill('helper'), ...Array(nCp).fill('cp')];
        for (let i = kinds.length - 1; i > 0; i--) {
          const j = Math.floor(r() * (i + 1));
          [kinds[i], kinds[j]] = [kinds[j], kinds[i]];
        }
        const planB = kinds.map(() => work(r));
        const blockEvery = 8 + Math.floor(r() * 8);
        const sigB0 = hostile.sigchldCount();

        type ResB =
          | { kind: 'direct' | 'helper'; pid: number; info: ClonefdInfo | 'timeout' }
          | { kind: 'cp'; pid: number; closed: boolean; exit: () => { code: number | null; signal: NodeJS.Signals | null } | null };
        let directSeen = 0;
        const errorsB: unknown[] = [];
        const resultsB = await pool<ResB>(kinds.length, CONCURRENCY, async (i) => {
          const w = planB[i];
          const kind = kinds[i];
          if (kind === 'cp') {
            const c = cp.spawn('sh', ['-c', w.script], { stdio: ['ignore', 'pipe', 'ignore'] });
            // A child a thief took never gets 'exit': it must not hold the loop.
            c.unref();
            let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
            c.on('exit', (code, signal) => (exit = { code, signal }));
            c.stdout!.resume();
            const closed = await within(new Promise((res) => c.stdout!.on('close', res)), 20_000);
            return { kind, pid: c.pid!, closed: closed !== 'timeout', exit: () => exit };
          }
          if (i % 20 === 0) errorsB.push(failedSpawn(kind));
          const k = spawn('sh', ['-c', w.script], { engine: kind, stdio: 'ignore' });
          // The positive control: now and then, block the loop so that
          // whoever else reaps in this process wins against the direct engine.
          if (kind === 'direct' && config.steals && ++directSeen % blockEvery === 0) blockFor(15);
          return { kind, pid: k.pid, info: await within(k.exited, 20_000) };
        });

        // child_process exits may come a little after the stdout EOF.
        const isCp = (x: ResB): x is Extract<ResB, { kind: 'cp' }> => x.kind === 'cp';
        const cps = resultsB.filter(isCp);
        if (!config.autoreap) await waitFor(() => cps.every((c) => c.exit() !== null || takenByOthers().has(c.pid)), 5_000);
        await sleep(100);
        const sigB = hostile.sigchldCount() - sigB0;
        const taken = takenByOthers();

        let stolen = 0;
        for (const [i, res] of resultsB.entries()) {
          const w = planB[i];
          const label = `${res.kind} child ${i} (pid ${res.pid}, ${w.script})`;
          if (res.kind === 'cp') {
            totals.cp++;
            // Never hangs: its stdout reached EOF and it is nobody's zombie here.
            expect(res.closed, `${label}: stdout closes`).toBe(true);
            const t = taken.get(res.pid);
            const exit = res.exit();
            if (config.autoreap) {
              // SIG_IGN / SA_NOCLDWAIT: the kernel reaped it, libuv hears
              // nothing (and could not get a status anyway): only "it does
              // not hang" is asserted; an 'exit', if one came, may be wrong.
              expect(t, `${label}: recorded under autoreap`).toBeUndefined();
              if (exit === null) totals.cpNoExit++;
            } else {
              // Exactly one reaper: libuv ('exit', right status) or a thief/handler (right status).
              if (t) {
                totals.cpTaken++;
                expect(exit, `${label}: 'exit' although ${t.by} reaped it`).toBeNull();
                expect({ code: t.code, status: t.status }, `${label}: status seen by ${t.by}`).toEqual({ code: w.code, status: w.status });
              } else {
                expect(config.cpExits, `${label}: nobody reaped it, yet libuv's handler is replaced`).toBe(true);
                const want = w.code === CLD_EXITED ? { code: w.status, signal: null } : { code: null, signal: `SIG${SIGNALS.find(([, n]) => n === w.status)![0]}` };
                expect(exit, `${label}: 'exit'`).toEqual(want);
              }
              totals.statuses++;
            }
            continue;
          }
          expect(res.info, `${label} settles`).not.toBe('timeout');
          const inf = res.info as ClonefdInfo;
          const t = taken.get(res.pid);
          expect({ pid: inf.pid, code: inf.code, status: inf.status }, label).toEqual({ pid: res.pid, code: w.code, status: w.status });
          totals.statuses++;
          if (res.kind === 'helper') {
            totals.helper++;
            expect(t, `${label}: a helper-engine child taken by ${t?.by}`).toBeUndefined();
            expect({ reapedElsewhere: inf.reapedElsewhere, utime: typeof inf.utime, stime: typeof inf.stime }, label).toEqual({ reapedElsewhere: false, utime: 'number', stime: 'number' });
          } else {
            totals.direct++;
            if (t) expect({ code: t.code, status: t.status }, `${label}: status seen by ${t.by}`).toEqual({ code: w.code, status: w.status });
            const elsewhere = t !== undefined || config.autoreap;
            if (config.autoreap) expect(t, `${label}: recorded although the kernel autoreaps`).toBeUndefined();
            expect({ reapedElsewhere: inf.reapedElsewhere, utimeNull: inf.utime === null, stimeNull: inf.stime === null }, `${label} (taken: ${t?.by ?? (config.autoreap ? 'kernel' : 'no')})`).toEqual({
              reapedElsewhere: elsewhere,
              utimeNull: elsewhere,
              stimeNull: elsewhere,
            });
            if (elsewhere) {
              stolen++;
              if (t) totals.directStolen++;
              else totals.directAutoreaped++;
            }
          }
        }
        for (const err of errorsB) expect(err, 'a failed exec beside the hostile neighbours').toMatchObject({ code: 'ENOENT', path: MISSING });
        if (config.steals) expect(stolen, 'positive control: direct-engine children reaped by someone else').toBeGreaterThanOrEqual(1);
        for (const k of config.thieves) expect(hostile.thiefPolls(k), `thief ${k} really polled`).toBeGreaterThan(100);
        expect(taken.get(hp), 'the helper itself reaped by someone in this process').toBeUndefined();
        // Exec'd direct children and child_process children raise SIGCHLD here: the counter works (>= 1, never exactly N).
        if (config.counts) expect(sigB, 'SIGCHLD during phase B').toBeGreaterThanOrEqual(1);
        totals.sigchldPhaseB += sigB;
      } finally {
        for (const k of config.thieves) hostile.thiefStop(k);
        hostile.restore();
      }

      // ---- after the configuration ----------------------------------------------
      expect([hostile.thiefRunning(0), hostile.thiefRunning(1)], 'thieves stopped').toEqual([false, false]);
      const after = hostile.disposition();
      expect(after, 'SIGCHLD disposition restored').toEqual(before);
      expect(after.ours).toBe(false);
      // child_process works again: the anchor's exit arrives, and a fresh child's.
      anchor.kill('SIGTERM');
      expect(await within(anchorExit, 5_000), 'the anchor child_process child exits (libuv hears SIGCHLD again)').toBe(15);
      const fresh = cp.spawn('sh', ['-c', 'exit 3'], { stdio: 'ignore' });
      expect(await within(new Promise((res) => fresh.on('exit', res)), 5_000), 'a fresh child_process child').toBe(3);
      const clean = await waitFor(() => zombieChildren().length === 0 && liveChildren().length === 0 && fdCount() === leaks.baseline, 10_000);
      expect(zombieChildren(), 'zombie children').toEqual([]);
      expect(liveChildren(), 'live children').toEqual([]);
      expect(clean, leaks.report()).toBe(true);
      expect(helperPid(), 'the same helper all along').toBe(hp);
    });
  }
});
