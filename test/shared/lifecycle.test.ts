// Lifecycle: handles dropped and collected, close() before exit, the GC
// finalizer for fds the user never closed, worker threads (concurrent and
// terminated mid-flight), ref/unref and the event loop, environment exit
// with live children. Every child must be reaped exactly once and every fd
// released, whatever the caller does with the handle.
//
// Runs in every engine's project and uses the project's default engine
// (`defaultEngine`). Where the engines differ, the test says so:
// - the user's `fd`: the pidfd itself (direct), or the record pipe's read
//   end beside a separate user `pidfd` (helper);
// - a worker torn down with live children: the direct engine hands them to
//   the process-wide reaper thread (`reaperPending()`), the helper engine
//   keeps them in the helper (the reaper then only holds the helper itself).
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { binding } from '../../src/binding';
import { CLD_EXITED, CLD_KILLED, clonefd, spawn, type ClonefdInfo } from '../../src/index';
import { defaultEngine, fdCount, liveChildren, openFds, pidfdCount, waitFor, zombieChildren, useLeakCheck } from '../helpers';

const LIB = path.resolve(__dirname, '..', '..', 'lib', 'index.js');


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

function isPipe(fd: number): boolean {
  return fdTarget(fd)?.startsWith('pipe:') ?? false;
}

/** True while `pid` exists at all (running or zombie). */
function procExists(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

/** The parent pid of `pid` (from /proc/<pid>/stat), or -1 when it is gone. */
function ppidOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return -1;
  }
}

/**
 * The user's fds of a handle, checked against the engine: with the direct
 * engine `fd` is the pidfd; with the helper engine `fd` is the record
 * pipe's read end and `pidfd` a separate pidfd.
 */
function expectUserFds(h: { fd: number; pidfd: number }, what: string): number[] {
  expect(isPidfd(h.pidfd), `${what}: pidfd ${h.pidfd} is a pidfd`).toBe(true);
  if (defaultEngine === 'direct') {
    expect(h.fd, `${what}: direct engine, fd is the pidfd`).toBe(h.pidfd);
    return [h.fd];
  }
  expect(isPipe(h.fd), `${what}: helper engine, fd ${h.fd} is the record pipe (${fdTarget(h.fd)})`).toBe(true);
  expect(h.fd).not.toBe(h.pidfd);
  return [h.fd, h.pidfd];
}

// Warm-up: loads the addon, probes pidfds, lets libuv and vitest open
// whatever they open lazily; the baseline is taken after it.
const leaks = useLeakCheck(async () => {
  // With the helper engine this starts the helper and opens this
  // environment's socket to it (one fd, kept for the environment's life).
  const warm = spawn('/bin/true', [], { stdio: 'ignore' });
  await warm.exited;
  const warmFd = clonefd('/bin/true', [], { stdio: 'ignore' });
  await warmFd.exited;
  warmFd.close();
  // The process-wide reaper opens its epoll fd once, at its first adoption,
  // and keeps it for the life of the process: start it now (a worker torn
  // down with a live child) so that fd belongs to the baseline. (With the
  // helper engine the reaper adopted the helper itself above; the worker
  // then warms up a worker's own connection to the helper.)
  const warmWorker = new Worker(
    `const { spawn } = require(${JSON.stringify(LIB)});
     const k = spawn('sleep', ['30'], { stdio: 'ignore' });
     require('node:worker_threads').parentPort.postMessage(k.pid);
     setInterval(() => {}, 1000);`,
    { eval: true },
  );
  const warmPid = await new Promise<number>((r) => warmWorker.once('message', r));
  await warmWorker.terminate();
  // Still an unreaped child (of this process, held by the reaper, or of the
  // helper, which keeps it), so the pid is safe to signal.
  process.kill(warmPid, 'SIGKILL');
  await waitFor(() => (defaultEngine === 'helper' || binding.reaperPending() === 0) && !procExists(warmPid), 10_000);
});

/**
 * Counts collected objects. (Polling WeakRef.deref() would keep the target
 * alive until the end of the job, across the gc() that waitFor runs next.)
 */
function collectionTracker() {
  const collected = new Set<number>();
  const registry = new FinalizationRegistry<number>((i) => collected.add(i));
  return { registry, collected };
}

describe('unreferenced handles', () => {
  // Spawns without keeping the handles; only the stdio sockets are tracked
  // (weakly), for cleanup should the library leave them open.
  function spawnAndDrop(stdio: 'ignore' | undefined, registry: FinalizationRegistry<number>, sockets: WeakRef<object>[]): void {
    for (let i = 0; i < 50; i++) {
      const child = i % 10 === 9 ? spawn('sleep', ['0.2'], stdio ? { stdio } : {}) : spawn('/bin/true', [], stdio ? { stdio } : {});
      registry.register(child, i);
      for (const s of child.stdio) if (s) sockets.push(new WeakRef(s));
    }
  }

  for (const stdio of ['ignore', undefined] as const) {
    it(`are reaped and collected: no zombie, fds back to baseline (stdio ${stdio ?? 'default: pipes'})`, async () => {
      const { registry, collected } = collectionTracker();
      const sockets: WeakRef<object>[] = [];
      spawnAndDrop(stdio, registry, sockets);
      try {
        const done = await waitFor(() => zombieChildren().length === 0 && liveChildren().length === 0 && fdCount() === leaks.baseline && collected.size === 50, 10_000);
        expect(zombieChildren()).toEqual([]);
        expect(liveChildren()).toEqual([]);
        expect(fdCount(), leaks.report()).toBe(leaks.baseline);
        expect(collected.size, 'handles collected after exit and gc()').toBe(50);
        expect(done).toBe(true);
      } finally {
        // Cleanup only, after the assertions: sockets the library left open.
        for (const s of sockets) (s.deref() as { destroy(): void } | undefined)?.destroy();
      }
    });
  }
});

describe('close() before exit', () => {
  it('releases the user fds at once; exited still settles, kill() still works, no zombie', async () => {
    const before = pidfdCount();
    const fdsBefore = fdCount();
    const handles = [0, 1, 2].map(() => clonefd('sleep', ['0.3'], { stdio: 'ignore' }));
    // Direct: fd === pidfd. Helper: fd is the record pipe, pidfd separate.
    const userFds = handles.flatMap((h, i) => expectUserFds(h, `handle ${i}`));
    // Each child: the user's pidfd plus the library's private one.
    expect(pidfdCount()).toBe(before + 6);
    // Helper engine: plus the record pipe's read end (its write end is the helper's).
    expect(fdCount(), 'fds per child').toBe(fdsBefore + (defaultEngine === 'direct' ? 6 : 9));

    for (const h of handles) h.close();
    // Synchronously: nothing could have reused the numbers yet.
    for (const fd of userFds) expect(fdTarget(fd), `user fd ${fd} after close()`).toBeNull();
    expect(pidfdCount(), 'only the private pidfds remain').toBe(before + 3);
    expect(fdCount(), 'only the private pidfds remain').toBe(fdsBefore + 3);
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
      const { registry, collected } = collectionTracker();
      // Handles built in a helper frame; only plain numbers and the
      // promises (which do not reference the handle) escape.
      const make = () => {
        const eager = clonefd('/bin/true', [], { stdio: 'ignore' }); // opens fd/pidfd eagerly
        const lazy = spawn('/bin/true', [], { stdio: 'ignore' });
        const lazyPidfd = lazy.pidfd; // opened on first access: now the user's (fd too)
        registry.register(eager, 0);
        registry.register(lazy, 1);
        // Every user fd with its child: [fd, pid]. Direct: the pidfd only;
        // helper: the record pipe and the pidfd.
        const owned = [
          ...expectUserFds(eager, 'eager clonefd()').map((fd) => [fd, eager.pid]),
          ...expectUserFds({ fd: lazy.fd, pidfd: lazyPidfd }, 'lazy spawn()').map((fd) => [fd, lazy.pid]),
        ];
        return {
          owned,
          exited: Promise.all([eager.exited, lazy.exited]),
        };
      };
      const { owned, exited } = make();
      const targets = new Map(owned.map(([fd]) => [fd, fdTarget(fd)]));
      const pidfds = owned.filter(([fd]) => isPidfd(fd)).length;
      expect(pidfds, 'one user pidfd per handle').toBe(2);
      expect(owned.length).toBe(defaultEngine === 'direct' ? 2 : 4);
      const infos = await exited;
      for (const info of infos) expect(info.exitCode).toBe(0);
      // Exited and reaped, but the user's fds are still open: nobody closed them.
      for (const [fd] of owned) expect(fdTarget(fd), `fd ${fd} still open before GC`).toBe(targets.get(fd));
      expect(pidfdCount()).toBe(before + 2);

      // A pipe's target names its inode: closed once it no longer points there.
      const released = (fd: number) => (targets.get(fd)!.startsWith('pipe:') ? fdTarget(fd) !== targets.get(fd) : true);
      const warned = (fd: number, pid: number) => warnings.some((w) => w.message.includes(`descriptor ${fd} `) && w.message.includes(`child ${pid}`));
      const done = await waitFor(
        () => collected.size === 2 && owned.every(([fd, pid]) => warned(fd, pid) && released(fd)) && pidfdCount() === before,
        10_000,
      );
      expect(collected.size, 'handles collected').toBe(2);
      for (const [fd, pid] of owned) expect(warned(fd, pid), `warning for fd ${fd}: ${warnings.map((w) => w.message).join(' | ')}`).toBe(true);
      expect(pidfdCount(), 'user pidfds closed by the finalizer').toBe(before);
      for (const [fd] of owned) expect(released(fd), `user fd ${fd} (${targets.get(fd)}) closed by the finalizer`).toBe(true);
      expect(done).toBe(true);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('worker threads', () => {
  /** Runs `src` in a worker; resolves with its messages, exit code and stderr. */
  function runWorker(src: string, workerData?: unknown): Promise<{ messages: unknown[]; exitCode: number; stderr: string }> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(src, { eval: true, workerData, stderr: true });
      const messages: unknown[] = [];
      let stderr = '';
      worker.stderr.setEncoding('utf8');
      worker.stderr.on('data', (d: string) => (stderr += d));
      worker.on('message', (m) => messages.push(m));
      worker.on('error', reject);
      // The stderr stream ends after 'exit': wait for it so nothing is lost.
      worker.on('exit', (exitCode) => worker.stderr.once('end', () => resolve({ messages, exitCode, stderr })).resume());
    });
  }

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
    const results = await Promise.all([0, 1, 2, 3].map((w) => runWorker(src, { w })));
    for (const [w, { messages, exitCode }] of results.entries()) {
      expect(exitCode, `worker ${w} exit code`).toBe(0);
      expect(messages).toHaveLength(1);
      const rows = messages[0] as Row[];
      expect(rows).toHaveLength(5);
      for (const r of rows) {
        expect(r.infoPid).toBe(r.pid);
        expect({ code: r.code, status: r.status, out: r.out }).toEqual({ code: CLD_EXITED, status: (w * 5 + r.i) % 11, out: `w${w}-${r.i}\n` });
      }
    }
    expect(await waitFor(() => zombieChildren().length === 0 && fdCount() === leaks.baseline, 10_000), leaks.report()).toBe(true);
  });

  it('spawning and closing in a worker prints no warnings', async () => {
    // Node tracks the fds a worker opens through fs; closing fds the addon
    // opened through fs.closeSync() makes it warn "closed but not opened in
    // unmanaged mode". None of that may reach the user.
    const { messages, exitCode, stderr } = await runWorker(`
      const { parentPort } = require('node:worker_threads');
      const { spawn, clonefd } = require(${JSON.stringify(LIB)});
      (async () => {
        const a = spawn('/bin/true'); // default stdio: pipes
        const b = clonefd('/bin/true', [], { stdio: 'ignore' });
        const infos = await Promise.all([a.exited, b.exited]);
        b.close();
        parentPort.postMessage(infos.map((i) => i.exitCode));
      })();
    `);
    expect(exitCode).toBe(0);
    expect(messages).toEqual([[0, 0]]);
    expect(stderr).toBe('');
  });

  it('terminating a worker mid-flight: its children are still reaped (direct: by the process-wide reaper; helper: by the helper), fds back', async () => {
    const pendingBefore = binding.reaperPending();
    const fdsBefore = openFds();
    try {
      const src = `
        const { parentPort } = require('node:worker_threads');
        const { spawn } = require(${JSON.stringify(LIB)});
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
      // Whose children they are: this process's (direct) or the helper's.
      const parent = defaultEngine === 'direct' ? process.pid : binding.helperPid();
      expect(parent).toBeGreaterThan(0);
      for (const pid of pids) expect(ppidOf(pid), `parent of child ${pid}`).toBe(parent);

      await worker.terminate();
      expect(await exited).toBe(1);
      // Still within the children's 2 s: they were live at teardown (checked
      // only when the VM was not so slow that they could have exited already).
      // Direct: now held by the process-wide reaper. Helper: the helper keeps
      // them (no killWithParent: they run on) and the reaper gets none.
      if (Date.now() - at < 1500) {
        const adopted = binding.reaperPending() - pendingBefore;
        if (defaultEngine === 'direct') expect(adopted, 'children adopted by the reaper').toBe(3);
        else expect(adopted, 'children adopted by the reaper (the helper keeps them)').toBe(0);
        for (const pid of pids) expect(procExists(pid), `child ${pid} still running after terminate()`).toBe(true);
        if (defaultEngine === 'helper') for (const pid of pids) expect(ppidOf(pid), `child ${pid} still the helper's`).toBe(parent);
      }

      const gone = await waitFor(() => pids.every((pid) => !procExists(pid)), 10_000);
      expect(
        pids.filter((pid) => procExists(pid)),
        'children left in /proc (zombies: ' + zombieChildren().join(',') + ')',
      ).toEqual([]);
      expect(gone).toBe(true);
      for (const pid of pids) expect(zombieChildren()).not.toContain(pid);
      expect(await waitFor(() => binding.reaperPending() === pendingBefore, 5_000), 'reaper drained').toBe(true);
      expect(await waitFor(() => fdCount() === leaks.baseline, 10_000), leaks.report()).toBe(true);
    } finally {
      // Cleanup only, after the assertions: close pidfds the library left
      // behind, so later tests measure their own fds.
      for (const [n, target] of openFds()) if (target.includes('pidfd') && fdsBefore.get(n) !== target) closeSync(n);
    }
  });

  it('terminating a worker that never closed its clonefd() handle releases that fd', async () => {
    const before = openFds();
    const worker = new Worker(
      `const { clonefd } = require(${JSON.stringify(LIB)});
       const h = clonefd('sleep', ['0.3'], { stdio: 'ignore' });
       require('node:worker_threads').parentPort.postMessage({ pid: h.pid, fd: h.fd, pidfd: h.pidfd });
       setInterval(() => {}, 1000);`,
      { eval: true },
    );
    const { pid, fd, pidfd } = await new Promise<{ pid: number; fd: number; pidfd: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    // Direct: fd is the pidfd. Helper: fd is the record pipe, pidfd separate.
    const userFds = expectUserFds({ fd, pidfd }, "the worker's handle");
    const targets = new Map(userFds.map((n) => [n, fdTarget(n)]));
    // Released: a pidfd number no longer names a pidfd; a pipe number no
    // longer names that pipe (its target carries the inode).
    const isReleased = (n: number) => (targets.get(n)!.startsWith('pipe:') ? fdTarget(n) !== targets.get(n) : !isPidfd(n));
    await worker.terminate();
    try {
      expect(await waitFor(() => !procExists(pid), 10_000), `child ${pid} reaped`).toBe(true);
      const released = await waitFor(() => userFds.every(isReleased) && fdCount() === leaks.baseline, 5_000);
      for (const n of userFds) expect(isReleased(n), `the worker's user fd ${n} (${targets.get(n)}) after the worker is gone`).toBe(true);
      expect(released, leaks.report()).toBe(true);
    } finally {
      // Cleanup only, after the assertions: close pidfds and the record
      // pipe the library left behind, so later tests measure their own fds.
      for (const [n, target] of openFds()) {
        if (before.get(n) === target) continue;
        if (target.includes('pidfd') || (targets.get(n) === target && target.startsWith('pipe:'))) closeSync(n);
      }
    }
  });

  it('a process whose main thread never loaded clonefd survives a worker torn down with live children', () => {
    // Only the worker loads the addon. When the worker goes, Node may unload
    // the addon, while the reaper thread it started still runs its code.
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `
        const { Worker } = require('node:worker_threads');
        const fs = require('node:fs');
        const w = new Worker(\`
          const { spawn } = require(${JSON.stringify(LIB)});
          const k = spawn('sleep', ['0.3'], { stdio: 'ignore' });
          require('node:worker_threads').parentPort.postMessage(k.pid);
          setInterval(() => {}, 1000);
        \`, { eval: true });
        w.once('message', async (pid) => {
          await w.terminate();
          console.log('terminated');
          const end = Date.now() + 10000;
          while (fs.existsSync('/proc/' + pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
          console.log(fs.existsSync('/proc/' + pid) ? 'child left behind' : 'child reaped');
        });
      `,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect({ status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr }).toEqual({
      status: 0,
      signal: null,
      stdout: 'terminated\nchild reaped\n',
      stderr: '',
    });
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
