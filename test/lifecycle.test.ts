// Lifecycle: handles dropped and collected, close() before exit, the GC
// finalizer for fds the user never closed, worker threads (concurrent and
// terminated mid-flight), ref/unref and the event loop, environment exit
// with live children. Every child must be reaped exactly once and every fd
// released, whatever the caller does with the handle.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binding } from '../src/binding';
import { CLD_EXITED, CLD_KILLED, clonefd, spawn, type ClonefdInfo } from '../src/index';
import { fdCount, liveChildren, openFds, pidfdCount, sleep, waitFor, zombieChildren } from './helpers';

const LIB = path.resolve(__dirname, '..', 'lib', 'index.js');

let baseline = 0;

/** What fd `fd` points to now, or null when it is closed. */
function fdTarget(fd: number): string | null {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

function isPidfd(fd: number): boolean {
  return fdTarget(fd)?.includes('pidfd') ?? false;
}

/** True while `pid` exists at all (running or zombie). */
function procExists(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

/** Fds opened since the baseline snapshot, for failure messages. */
function fdReport(before: Map<number, string>): string {
  const now = openFds();
  const extra = [...now].filter(([fd, t]) => before.get(fd) !== t).map(([fd, t]) => `${fd} -> ${t}`);
  return `fdCount ${now.size} vs baseline ${baseline}; new: ${extra.join(', ') || 'none'}`;
}

let baselineFds = new Map<number, string>();

beforeAll(async () => {
  // Warm-up: loads the addon, probes pidfds, lets libuv and vitest open
  // whatever they open lazily; the baseline is taken after it.
  const warm = spawn('/bin/true', [], { stdio: 'ignore' });
  await warm.exited;
  const warmFd = clonefd('/bin/true', [], { stdio: 'ignore' });
  await warmFd.exited;
  warmFd.close();
  await sleep(50);
  globalThis.gc?.();
  baseline = fdCount();
  baselineFds = openFds();
});

afterAll(async () => {
  const clean = await waitFor(() => zombieChildren().length === 0 && fdCount() === baseline, 10_000);
  expect(zombieChildren(), 'zombie children of this process at the end of the file').toEqual([]);
  expect(clean, fdReport(baselineFds)).toBe(true);
});

describe('unreferenced handles', () => {
  // Spawns without keeping the handles; returns WeakRefs only, so the test
  // can tell that the handles really were collected.
  function spawnAndDrop(stdio: 'ignore' | undefined): WeakRef<object>[] {
    const refs: WeakRef<object>[] = [];
    for (let i = 0; i < 50; i++) {
      const child = i % 10 === 9 ? spawn('sleep', ['0.2'], stdio ? { stdio } : {}) : spawn('/bin/true', [], stdio ? { stdio } : {});
      refs.push(new WeakRef(child));
    }
    return refs;
  }

  it('are reaped and collected: no zombie, fds back to baseline (stdio ignore)', async () => {
    const refs = spawnAndDrop('ignore');
    const done = await waitFor(
      () => zombieChildren().length === 0 && liveChildren().length === 0 && fdCount() === baseline && refs.every((r) => r.deref() === undefined),
      10_000,
    );
    expect(zombieChildren()).toEqual([]);
    expect(liveChildren()).toEqual([]);
    expect(fdCount(), fdReport(baselineFds)).toBe(baseline);
    expect(refs.filter((r) => r.deref() !== undefined).length, 'handles still alive after exit and gc()').toBe(0);
    expect(done).toBe(true);
  });

  it('are reaped and collected: no zombie, fds back to baseline (default stdio: pipes)', async () => {
    const refs = spawnAndDrop(undefined);
    // Weak references to the stdio sockets, only to clean up after the
    // assertions if the library leaves some open.
    const sockets = refs.flatMap((r) => ((r.deref() as { stdio?: unknown[] })?.stdio ?? []).filter(Boolean).map((s) => new WeakRef(s as object)));
    try {
      const done = await waitFor(
        () => zombieChildren().length === 0 && liveChildren().length === 0 && fdCount() === baseline && refs.every((r) => r.deref() === undefined),
        10_000,
      );
      expect(zombieChildren()).toEqual([]);
      expect(liveChildren()).toEqual([]);
      expect(fdCount(), fdReport(baselineFds)).toBe(baseline);
      expect(refs.filter((r) => r.deref() !== undefined).length, 'handles still alive after exit and gc()').toBe(0);
      expect(done).toBe(true);
    } finally {
      for (const s of sockets) (s.deref() as { destroy?: () => void } | undefined)?.destroy?.();
    }
  });
});

describe('close() before exit', () => {
  it('releases the user fds at once; exited still settles, kill() still works, no zombie', async () => {
    const before = pidfdCount();
    const handles = [0, 1, 2].map(() => clonefd('sleep', ['0.3'], { stdio: 'ignore' }));
    const userFds = handles.map((h) => h.fd);
    for (const fd of userFds) expect(isPidfd(fd), `user fd ${fd} is a pidfd`).toBe(true);
    // Each child: the user's pidfd plus the library's private one.
    expect(pidfdCount()).toBe(before + 6);

    for (const h of handles) h.close();
    // Synchronously: nothing could have reused the numbers yet.
    for (const fd of userFds) expect(fdTarget(fd), `user fd ${fd} after close()`).toBeNull();
    expect(pidfdCount(), 'only the private pidfds remain').toBe(before + 3);
    for (const h of handles) {
      expect(h.fd).toBe(-1);
      expect(h.pidfd).toBe(-1);
      expect(() => h.close()).not.toThrow(); // idempotent
    }
    for (const h of handles) expect(liveChildren()).toContain(h.pid); // close() never kills

    // kill() after close(), before the reap, goes through the private pidfd.
    expect(handles[2].kill('SIGKILL')).toBe(true);

    const infos: ClonefdInfo[] = await Promise.all(handles.map((h) => h.exited));
    for (const [i, info] of infos.entries()) {
      expect(info.pid).toBe(handles[i].pid);
      if (i < 2) expect({ code: info.code, status: info.status }).toEqual({ code: CLD_EXITED, status: 0 });
      else expect({ code: info.code, status: info.status, signal: info.signal }).toEqual({ code: CLD_KILLED, status: 9, signal: 'SIGKILL' });
    }
    // Reaped: kill() is refused, the private pidfds are gone too.
    for (const h of handles) expect(h.kill('SIGKILL')).toBe(false);
    expect(pidfdCount()).toBe(before);
    for (const h of handles) expect(zombieChildren()).not.toContain(h.pid);
    for (const h of handles) expect(procExists(h.pid)).toBe(false);
  });
});

describe('fds the user never closes', () => {
  it('are closed by the GC finalizer with a process warning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const before = pidfdCount();
      // Handles built in a helper frame; only plain numbers and the
      // promises (which do not reference the handle) escape.
      const make = () => {
        const eager = clonefd('/bin/true', [], { stdio: 'ignore' }); // opens fd/pidfd eagerly
        const lazy = spawn('/bin/true', [], { stdio: 'ignore' });
        const lazyFd = lazy.pidfd; // opened on first access: now the user's
        return {
          fds: [eager.fd, lazyFd],
          pids: [eager.pid, lazy.pid],
          exited: Promise.all([eager.exited, lazy.exited]),
          refs: [new WeakRef(eager), new WeakRef(lazy)],
        };
      };
      const { fds, pids, exited, refs } = make();
      for (const fd of fds) expect(isPidfd(fd), `fd ${fd} is a pidfd`).toBe(true);
      const infos = await exited;
      for (const info of infos) expect(info.exitCode).toBe(0);
      // Exited and reaped, but the user's fds are still open: nobody closed them.
      for (const fd of fds) expect(isPidfd(fd), `fd ${fd} still open before GC`).toBe(true);
      expect(pidfdCount()).toBe(before + 2);

      const warned = (fd: number, pid: number) => warnings.some((w) => w.message.includes(`descriptor ${fd} `) && w.message.includes(`child ${pid}`));
      const done = await waitFor(() => refs.every((r) => r.deref() === undefined) && fds.every((fd, i) => warned(fd, pids[i])) && pidfdCount() === before, 10_000);
      expect(
        refs.map((r) => r.deref() === undefined),
        'handles collected',
      ).toEqual([true, true]);
      for (const [i, fd] of fds.entries()) expect(warned(fd, pids[i]), `warning for fd ${fd}: ${warnings.map((w) => w.message).join(' | ')}`).toBe(true);
      expect(pidfdCount(), 'user pidfds closed by the finalizer').toBe(before);
      expect(done).toBe(true);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('worker threads', () => {
  it('spawn from 4 workers at once: every status and output right', async () => {
    const src = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { spawn } = require(${JSON.stringify(LIB)});
      (async () => {
        const kids = [];
        for (let i = 0; i < 5; i++) {
          const code = (workerData.w * 5 + i) % 11;
          const k = spawn('sh', ['-c', 'echo w' + workerData.w + '-' + i + '; exit ' + code]);
          const out = [];
          k.stdout.on('data', (d) => out.push(d));
          const ended = new Promise((r) => k.stdout.on('close', r));
          kids.push(Promise.all([k.exited, ended]).then(([info]) => ({
            i, pid: k.pid, infoPid: info.pid, code: info.code, status: info.status, out: Buffer.concat(out).toString(),
          })));
        }
        parentPort.postMessage(await Promise.all(kids));
      })().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
    `;
    type Row = { i: number; pid: number; infoPid: number; code: number; status: number; out: string };
    const runs = [0, 1, 2, 3].map(
      (w) =>
        new Promise<{ rows: Row[]; exitCode: number }>((resolve, reject) => {
          const worker = new Worker(src, { eval: true, workerData: { w } });
          let rows: Row[] | undefined;
          worker.on('message', (m) => {
            if (m && m.error) reject(new Error(m.error));
            else rows = m;
          });
          worker.on('error', reject);
          worker.on('exit', (exitCode) => (rows ? resolve({ rows, exitCode }) : reject(new Error(`worker ${w} exited ${exitCode} without results`))));
        }),
    );
    const results = await Promise.all(runs);
    for (const [w, { rows, exitCode }] of results.entries()) {
      expect(exitCode, `worker ${w} exit code`).toBe(0);
      expect(rows).toHaveLength(5);
      for (const r of rows) {
        expect(r.infoPid).toBe(r.pid);
        expect({ code: r.code, status: r.status, out: r.out }).toEqual({ code: CLD_EXITED, status: (w * 5 + r.i) % 11, out: `w${w}-${r.i}\n` });
      }
    }
    expect(await waitFor(() => zombieChildren().length === 0 && fdCount() === baseline, 10_000), fdReport(baselineFds)).toBe(true);
  });

  it('terminating a worker mid-flight hands its children to the reaper: all reaped, fds back', async () => {
    const pendingBefore = binding.reaperPending();
    const src = `
      const { parentPort } = require('node:worker_threads');
      const { spawn, clonefd } = require(${JSON.stringify(LIB)});
      const kids = [spawn('sleep', ['2']), spawn('sleep', ['2'], { stdio: 'ignore' }), spawn('sleep', ['2'], { stdio: 'ignore' })];
      kids[2].unref(); // unref'd children are handed over too
      parentPort.postMessage({ pids: kids.map((k) => k.pid), at: Date.now() });
      setInterval(() => {}, 1000); // stay busy until terminated
    `;
    const worker = new Worker(src, { eval: true });
    const exited = new Promise<number>((r) => worker.on('exit', r));
    const { pids, at } = await new Promise<{ pids: number[]; at: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    expect(pids).toHaveLength(3);
    const live = liveChildren();
    for (const pid of pids) expect(live, `child ${pid} running before terminate()`).toContain(pid);

    await worker.terminate();
    expect(await exited).toBe(1);
    // Still within the children's 2 s: they were live at teardown and are
    // now held by the process-wide reaper (checked only when the VM was not
    // so slow that they could have exited already).
    if (Date.now() - at < 1500) {
      expect(binding.reaperPending() - pendingBefore, 'children adopted by the reaper').toBe(3);
      for (const pid of pids) expect(procExists(pid), `child ${pid} still running after terminate()`).toBe(true);
    }

    const gone = await waitFor(() => pids.every((pid) => !procExists(pid)), 10_000);
    expect(
      pids.filter((pid) => procExists(pid)),
      'children left in /proc (zombies: ' + zombieChildren().join(',') + ')',
    ).toEqual([]);
    expect(gone).toBe(true);
    for (const pid of pids) expect(zombieChildren()).not.toContain(pid);
    expect(await waitFor(() => binding.reaperPending() === pendingBefore, 5_000), 'reaper drained').toBe(true);
    expect(await waitFor(() => fdCount() === baseline, 10_000), fdReport(baselineFds)).toBe(true);
  });
});

describe('ref/unref and the event loop', () => {
  function runNode(script: string): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number } {
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
  }

  it('an unref()ed live child does not keep the process alive', () => {
    const r = runNode(`
      const { spawn } = require(${JSON.stringify(LIB)});
      const c = spawn('sleep', ['5'], { stdio: 'ignore' });
      c.unref();
      c.on('exit', () => console.log('child-exit'));
      console.log('pid ' + c.pid);
      process.on('exit', (code) => console.log('process-exit ' + code));
    `);
    const pid = Number(/pid (\d+)/.exec(r.stdout)?.[1]);
    try {
      expect(r.stderr).toBe('');
      expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
      expect(r.stdout).toContain('process-exit 0'); // a normal exit, not a kill
      expect(r.stdout).not.toContain('child-exit');
      expect(r.ms, 'exited long before the 5 s sleep could finish').toBeLessThan(3000);
    } finally {
      // The orphaned sleep now belongs to PID 1; do not leave it running.
      if (pid > 0) {
        try {
          if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep')) process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });

  it('a ref()ed live child (the default) keeps the process alive until its exit event', () => {
    const r = runNode(`
      const { spawn } = require(${JSON.stringify(LIB)});
      const t0 = Date.now();
      const c = spawn('sleep', ['0.5'], { stdio: 'ignore' });
      c.on('exit', (info) => console.log('child-exit ' + info.exitCode + ' after ' + (Date.now() - t0)));
      process.on('exit', (code) => console.log('process-exit ' + code));
    `);
    expect(r.stderr).toBe('');
    expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
    const m = /child-exit 0 after (\d+)\nprocess-exit 0\n$/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(450);
  });

  it('unref() then ref() again keeps the process alive', () => {
    const r = runNode(`
      const { spawn } = require(${JSON.stringify(LIB)});
      const c = spawn('sleep', ['0.5'], { stdio: 'ignore' });
      c.unref();
      c.ref();
      c.on('exit', (info) => console.log('child-exit ' + info.exitCode));
      process.on('exit', (code) => console.log('process-exit ' + code));
    `);
    expect(r.stderr).toBe('');
    expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
    expect(r.stdout).toBe('child-exit 0\nprocess-exit 0\n');
  });
});

describe('environment exit with live children', () => {
  it('process.exit() right after spawning: no crash, exit code as requested', () => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `
        const { spawn, clonefd } = require(${JSON.stringify(LIB)});
        spawn('sleep', ['0.5']);
        spawn('sleep', ['0.5'], { stdio: 'ignore' }).unref();
        clonefd('sleep', ['0.5'], { stdio: 'ignore' });
        process.exit(7);
      `,
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(r.stderr).toBe('');
    expect({ status: r.status, signal: r.signal }).toEqual({ status: 7, signal: null });
  });

  it('process.exit() from a timer while children run: no crash, exit code as requested', () => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `
        const { spawn } = require(${JSON.stringify(LIB)});
        const kids = [0, 1, 2, 3].map(() => spawn('sleep', ['0.5']));
        kids[0].exited.then(() => console.log('too late'));
        setTimeout(() => { console.log('exiting'); process.exit(5); }, 50);
      `,
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(r.stderr).toBe('');
    expect({ status: r.status, signal: r.signal, stdout: r.stdout }).toEqual({ status: 5, signal: null, stdout: 'exiting\n' });
  });
});
