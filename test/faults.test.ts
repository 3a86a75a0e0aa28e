// Faults (issue 8 §2): a kernel that refuses clone3 (seccomp ENOSYS, EPERM),
// a kernel without pidfds at all, and a helper that dies, stops or loses
// its socket while children are outstanding.
//
// The seccomp cases run a fresh Node under test/fixtures/seccomp-run.c: the
// filter covers Node and, through inheritance, the clonefd helper (a child
// of Node). No environment variable selects the legacy path: the fallback
// must find it alone.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLD_EXITED, CLD_KILLED, clonefd, spawn, type ClonefdHandle, type Subprocess } from '../src/index';
import { fdDiff, liveChildren, openFds, procStat, sleep, waitFor, zombieChildren } from './helpers';

const LIB = JSON.stringify(path.resolve(__dirname, '..', 'lib', 'index.js'));
const CP = JSON.stringify(path.resolve(__dirname, '..', 'lib', 'child_process.js'));
const FIXTURES = path.join(__dirname, 'fixtures');

let dir = '';
let seccompRun = '';
let fdtool = '';

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'clonefd-faults-'));
  seccompRun = path.join(dir, 'seccomp-run');
  fdtool = path.join(dir, 'fdtool');
  execFileSync('cc', ['-O2', '-Wall', '-o', seccompRun, path.join(FIXTURES, 'seccomp-run.c')]);
  execFileSync('cc', ['-O2', '-Wall', '-o', fdtool, path.join(FIXTURES, 'fdtool.c')]);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** An environment without any clonefd variable: nothing may pick the path for the library. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('CLONEFD_')) delete env[k];
  return env;
}

/** Runs `script` in a new Node under the seccomp mode; returns its last stdout line as JSON. */
function underSeccomp(mode: string, script: string): any {
  const r = spawnSync(seccompRun, [mode, '--', process.execPath, '-e', script], {
    encoding: 'utf8',
    timeout: 40_000,
    env: cleanEnv(),
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

// Shared by the scripts: /proc scans of the script's own process.
const procTools = `
  const fs = require('fs');
  const stat = (pid) => {
    const s = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), state: rest[0], ppid: Number(rest[1]) };
  };
  const childrenOf = (ppid) => {
    const out = [];
    for (const n of fs.readdirSync('/proc')) {
      if (!/^\\d+$/.test(n)) continue;
      try { const s = stat(n); if (s.ppid === ppid) out.push({ pid: Number(n), ...s }); } catch {}
    }
    return out;
  };
  const helperPid = () => (childrenOf(process.pid).find((c) => c.comm === 'clonefd-helper') || { pid: 0 }).pid;
  const status = (pid, field) => fs.readFileSync('/proc/' + pid + '/status', 'utf8').split('\\n').find((l) => l.startsWith(field + ':')).split(':')[1].trim();
  const descendants = () => {
    const h = helperPid();
    return [...childrenOf(process.pid).filter((c) => c.pid !== h), ...(h ? childrenOf(h) : [])];
  };
  const collect = (s) => new Promise((resolve) => { let t = ''; s.setEncoding('utf8'); s.on('data', (d) => (t += d)); s.on('end', () => resolve(t)); });
`;

// The contract under a refused clone3, both engines.
const workload = `
  ${procTools}
  const { spawn, clonefd } = require(${LIB});
  (async () => {
    const out = { seccomp: status(process.pid, 'Seccomp'), filters: status(process.pid, 'Seccomp_filters') };
    for (const engine of ['helper', 'direct']) {
      const r = (out[engine] = {});
      const o = { engine, stdio: 'ignore' };
      r.exit = (await spawn('sh', ['-c', 'exit 7'], o).exited).status;
      const killedSelf = await spawn('sh', ['-c', 'kill -TERM $$'], o).exited;
      r.selfKilled = [killedSelf.code, killedSelf.status, killedSelf.signal];
      const sleeper = spawn('sleep', ['30'], o);
      r.killReturned = sleeper.kill('SIGKILL');
      const k = await sleeper.exited;
      r.killed = [k.code, k.status, k.signal];
      const io = spawn('sh', ['-c', 'echo out; echo err >&2; read x; echo "got $x"; exit 3'], { engine });
      io.stdin.end('line\\n');
      const [stdout, stderr, ioExit] = await Promise.all([collect(io.stdout), collect(io.stderr), io.exited]);
      r.stdio = { stdout, stderr, status: ioExit.status };
      const st = spawn('sh', ['-c', 'grep -E "^Sig(Ign|Blk)" /proc/self/status'], { engine, stdio: ['ignore', 'pipe', 'inherit'] });
      r.childSignals = (await collect(st.stdout)).trim().split('\\n').map((l) => l.replace(/\\s+/g, ' '));
      await st.exited;
      for (const [name, file] of [['noent', '/nonexistent/clonefd-x'], ['acces', '/dev/null']]) {
        try { spawn(file, [], o); r[name] = 'spawned'; } catch (e) { r[name] = { code: e.code, syscall: e.syscall, path: e.path }; }
      }
      const h = clonefd('sh', ['-c', 'exit 5'], o);
      r.record = (await h.readAsync()).status;
      r.eof = await h.readAsync();
      h.close();
      let ok = 0;
      const many = [];
      for (let i = 0; i < 20; i++) many.push(spawn('sh', ['-c', 'exit ' + (i % 4)], o).exited.then((x) => { if (x.code === 1 && x.status === i % 4) ok++; }));
      await Promise.all(many);
      r.many = ok;
      const hp = helperPid();
      if (hp) r.helperFilters = status(hp, 'Seccomp_filters');
    }
    const end = Date.now() + 5000;
    while (descendants().length && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    out.leftover = descendants();
    console.log(JSON.stringify(out));
  })().catch((e) => { console.log(JSON.stringify({ fatal: String(e && e.stack) })); });
`;

describe('clone3 refused by seccomp: the legacy clone() path, found without any variable', () => {
  for (const mode of ['clone3-enosys', 'clone3-eperm']) {
    it(`${mode}: both engines spawn, exit, signal, pipe stdio and type exec errors`, () => {
      const out = underSeccomp(mode, workload);
      expect(out.fatal).toBeUndefined();
      expect(out.seccomp).toBe('2');
      for (const engine of ['helper', 'direct']) {
        const r = out[engine];
        expect(r.exit, engine).toBe(7);
        expect(r.selfKilled).toEqual([CLD_KILLED, 15, 'SIGTERM']);
        expect(r.killReturned).toBe(true);
        expect(r.killed).toEqual([CLD_KILLED, 9, 'SIGKILL']);
        expect(r.stdio).toEqual({ stdout: 'out\ngot line\n', stderr: 'err\n', status: 3 });
        expect(r.childSignals).toEqual(['SigBlk: 0000000000000000', 'SigIgn: 0000000000000000']);
        expect(r.noent).toMatchObject({ code: 'ENOENT', path: '/nonexistent/clonefd-x' });
        expect(r.acces).toMatchObject({ code: 'EACCES', path: '/dev/null' });
        expect(r.record).toBe(5);
        expect(r.eof).toBeNull();
        expect(r.many).toBe(20);
      }
      // The helper ran under the same filter (it inherits Node's).
      expect(Number(out.helper.helperFilters)).toBeGreaterThanOrEqual(1);
      expect(out.leftover).toEqual([]);
    });
  }
});

describe('no pidfds at all', () => {
  const script = `
      ${procTools}
      const lib = require(${LIB});
      const cp = require(${CP});
      const before = { cgt: status(process.pid, 'SigCgt'), blk: status(process.pid, 'SigBlk'), ign: status(process.pid, 'SigIgn'), fds: fs.readdirSync('/proc/self/fd').length };
      const errors = [];
      const record = (what, f) => {
        try { f(); errors.push({ what, spawned: true }); }
        catch (e) { errors.push({ what, name: e.constructor.name, isSystemError: e instanceof lib.SystemError, code: e.code, errno: e.errno, syscall: e.syscall, message: e.message }); }
      };
      for (let round = 0; round < 2; round++) {
        for (const engine of ['helper', 'direct']) {
          record('spawn ' + engine, () => lib.spawn('true', [], { engine, stdio: 'ignore' }));
          record('spawn missing ' + engine, () => lib.spawn('/nonexistent/x', [], { engine, stdio: 'ignore' }));
          record('clonefd ' + engine, () => lib.clonefd('true', [], { engine }));
        }
        record('drop-in spawn', () => cp.spawn('true', [], { stdio: 'ignore' }));
        record('drop-in spawnSync', () => { const r = cp.spawnSync('true'); if (r.error) throw r.error; });
        record('drop-in execFileSync', () => cp.execFileSync('true'));
      }
      // node:child_process is not ours and keeps working beside us.
      const native = require('child_process').spawnSync('sh', ['-c', 'exit 3']).status;
      setTimeout(() => {
        const after = { cgt: status(process.pid, 'SigCgt'), blk: status(process.pid, 'SigBlk'), ign: status(process.pid, 'SigIgn'), fds: fs.readdirSync('/proc/self/fd').length };
        console.log(JSON.stringify({ errors, before, after, native, sigchldListeners: process.listenerCount('SIGCHLD'), children: childrenOf(process.pid) }));
      }, 50);
  `;
  const sync = /^drop-in (spawnSync|execFileSync)/;

  it('every spawn throws one clear coded SystemError; nothing process-wide changes; no child is left', () => {
    const out = underSeccomp('no-pidfd', script);
    expect(out.errors).toHaveLength(18);
    const codes = new Set<string>();
    for (const e of out.errors) {
      expect(e.spawned, e.what).toBeUndefined();
      expect(e.isSystemError, e.what).toBe(true);
      expect(e.code, e.what).toMatch(/^E[A-Z0-9]+$/);
      expect(e.errno, e.what).toBeLessThan(0);
      if (sync.test(e.what)) {
        codes.add(e.code);
        continue; // their message: see the next test
      }
      expect(e.message, e.what).toMatch(/pidfd/);
      codes.add(e.code);
    }
    // One error, whatever the entry point or engine.
    expect([...codes]).toHaveLength(1);
    expect(out.after).toEqual(out.before);
    expect(out.sigchldListeners).toBe(0);
    expect(out.native).toBe(3);
    expect(out.children).toEqual([]);
  });

  // Once rebuilt as Node's "spawnSync true EINVAL", dropping the reason:
  // the one failure a user cannot fix by changing arguments.
  it('the sync drop-ins say why too (pidfds missing)', () => {
    const out = underSeccomp('no-pidfd', script);
    for (const e of out.errors.filter((x: any) => sync.test(x.what))) expect(e.message, e.what).toMatch(/pidfd/);
  });
});

// --- The helper, hurt mid-flight --------------------------------------


/** The helper: this process's child whose comm is clonefd-helper (0 if none). */
function helperPid(): number {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = procStat(Number(name));
    if (s && s.ppid === process.pid && s.comm === 'clonefd-helper') return Number(name);
  }
  return 0;
}

const helper = { engine: 'helper', stdio: 'ignore' } as const;

interface Outstanding {
  long: Subprocess[]; // sleep 30, killed by us through the API after the fault
  short: { p: Subprocess; code: number }[]; // exit on their own after the fault
  done: Subprocess; // exited before the fault
  handle: ClonefdHandle; // clonefd(): its record through readAsync()
}

async function startOutstanding(): Promise<Outstanding> {
  const done = spawn('sh', ['-c', 'exit 5'], helper);
  await done.exited;
  const long = [0, 1, 2].map(() => spawn('sleep', ['30'], helper));
  const short = [0, 1, 2].map((i) => ({ p: spawn('sh', ['-c', `sleep 0.${3 + i}; exit ${10 + i}`], helper), code: 10 + i }));
  const handle = clonefd('sh', ['-c', 'sleep 0.4; exit 9'], helper);
  return { long, short, done, handle };
}

async function expectAllSettle(o: Outstanding, killed = false): Promise<void> {
  if (!killed) for (const p of o.long) expect(p.kill('SIGTERM')).toBe(true);
  const deadline = (p: Promise<unknown>) =>
    Promise.race([p, sleep(20_000).then(() => { throw new Error('exited did not settle in 20 s'); })]);
  const longs = await Promise.all(o.long.map((p) => deadline(p.exited)));
  for (const [i, info] of longs.entries()) {
    expect(info, `long ${i}`).toMatchObject({ code: CLD_KILLED, status: 15, signal: 'SIGTERM', pid: o.long[i].pid });
  }
  const shorts = await Promise.all(o.short.map((s) => deadline(s.p.exited)));
  for (const [i, info] of shorts.entries()) {
    expect(info, `short ${i}`).toMatchObject({ code: CLD_EXITED, status: o.short[i].code, exitCode: o.short[i].code });
  }
  expect(await o.done.exited).toMatchObject({ code: CLD_EXITED, status: 5 });
  // The library's read() delivers the record even if the helper never wrote it.
  expect(await deadline(o.handle.readAsync())).toMatchObject({ code: CLD_EXITED, status: 9 });
  expect(await o.handle.readAsync()).toBeNull();
  o.handle.close();
  // After exit, kill() is false (the pidfd never names anyone else).
  for (const p of o.long) expect(p.kill('SIGKILL')).toBe(false);
}

async function expectNewSpawnsWork(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const p = spawn('sh', ['-c', `echo x$0; exit ${i}`], { engine: 'helper', stdio: ['ignore', 'pipe', 'ignore'], argv0: String(i) });
    let text = '';
    p.stdout!.setEncoding('utf8');
    p.stdout!.on('data', (d) => (text += d));
    const ended = new Promise((r) => p.stdout!.on('end', r));
    expect((await p.exited).status).toBe(i);
    await ended;
    expect(text).toMatch(/^x/);
  }
}

describe('the helper hurt while children are outstanding', () => {
  let baseline = new Map<number, string>();

  beforeAll(async () => {
    await spawn('true', [], helper).exited; // the helper is started; its fds are part of the baseline
    baseline = openFds();
  });

  async function expectClean(): Promise<void> {
    // The children are gone (reaped by whoever their parent is now) and no fd of ours is left open.
    const ok = await waitFor(() => zombieChildren().length === 0 && liveChildren().filter((p) => procStat(p)?.comm !== 'clonefd-helper').length === 0, 15_000);
    expect(ok, `children left: ${liveChildren()} zombies: ${zombieChildren()}`).toBe(true);
    // A new helper may have replaced the old one: compare what is not the helper's socket.
    const fdsOk = await waitFor(() => openFds().size <= baseline.size, 10_000);
    expect(fdsOk, fdDiff(baseline)).toBe(true);
    baseline = openFds();
  }

  it('SIGKILLed: every outstanding exited settles with its status; a new helper serves new spawns', async () => {
    const o = await startOutstanding();
    const h = helperPid();
    expect(h).toBeGreaterThan(0);
    const pids = [...o.long, ...o.short.map((s) => s.p)].map((p) => p.pid);
    for (const pid of pids) expect(procStat(pid)?.ppid).toBe(h);
    process.kill(h, 'SIGKILL');
    await waitFor(() => procStat(h) === null || procStat(h)!.state === 'Z', 5_000);
    await expectAllSettle(o);
    await expectNewSpawnsWork();
    const h2 = helperPid();
    expect(h2).toBeGreaterThan(0);
    expect(h2).not.toBe(h);
    await expectClean();
  });

  it('SIGSTOPped then SIGCONTed: the exits that happened meanwhile all arrive, from the same helper', async () => {
    const o = await startOutstanding();
    const h = helperPid();
    process.kill(h, 'SIGSTOP');
    try {
      await waitFor(() => procStat(h)?.state === 'T', 5_000);
      // The children exit (and are killed) while their reaper is stopped.
      for (const p of o.long) expect(p.kill('SIGTERM')).toBe(true);
      await sleep(800);
    } finally {
      process.kill(h, 'SIGCONT');
    }
    await expectAllSettle(o, true);
    await expectNewSpawnsWork();
    expect(helperPid()).toBe(h);
    await expectClean();
  });

  for (const which of ['environment', 'every'] as const) {
    it(`its ${which} socket shut down: every outstanding exited settles; new spawns work`, async () => {
      const o = await startOutstanding();
      const h = helperPid();
      const socks = readdirSync(`/proc/${h}/fd`).filter((fd) => {
        try {
          return readlinkSync(`/proc/${h}/fd/${fd}`).startsWith('socket:') && (which === 'every' || fd !== '3');
        } catch {
          return false;
        }
      });
      expect(socks.length).toBeGreaterThan(0);
      const res = execFileSync(fdtool, ['shutdown', String(h), ...socks], { encoding: 'utf8' });
      // Once one socket of an environment is shut down the helper drops that
      // environment and closes its other socket: that one is then EBADF.
      const lines = res.trim().split('\n');
      expect(lines.every((l) => l.endsWith(' shutdown 0') || l.endsWith(' getfd 9')), res).toBe(true);
      expect(lines.some((l) => l.endsWith(' shutdown 0')), res).toBe(true);
      await expectAllSettle(o);
      await expectNewSpawnsWork();
      expect(helperPid()).toBeGreaterThan(0);
      await expectClean();
    });
  }
});
