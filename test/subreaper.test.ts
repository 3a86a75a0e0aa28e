// The helper as subreaper (PR_SET_CHILD_SUBREAPER): what a child of the
// helper leaves behind (a double-forked daemon, a job its shell
// backgrounded) is reparented to the helper, not to PID 1, and the helper
// reaps it when it exits, without ever taking the exit of one of its own
// children (those are reaped through their pidfds, with their records).
import { spawnSync as cpSpawnSync, spawn as cpSpawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { binding } from '../src/binding';
import { spawn } from '../src/index';
import { collect, procStat, useLeakCheck, waitFor, zombieChildren } from './helpers';

const lib = path.resolve(__dirname, '..', 'lib', 'index.js');


/** Spawns `sh -c script` with the helper engine and returns the pids it prints. */
async function orphanPids(script: string): Promise<number[]> {
  const c = spawn('sh', ['-c', script], { engine: 'helper', stdio: ['ignore', 'pipe', 'inherit'] });
  const [out, info] = await Promise.all([collect(c.stdout), c.exited]);
  expect(info.status).toBe(0);
  return out.split('\n').filter(Boolean).map(Number);
}

describe('the helper as subreaper', () => {
  useLeakCheck();

  it('orphans of helper children are reparented to the helper (not to PID 1) and reaped when they exit', async () => {
    // Each shell backgrounds a sleeper and exits at once: the sleeper's
    // parent is gone while it still runs.
    const pids = await orphanPids('for i in 1 2 3 4 5 6 7 8 9 10; do (exec sleep 2 >/dev/null) & echo $!; done');
    expect(pids).toHaveLength(10);
    const helper = binding.helperPid();
    expect(helper).toBeGreaterThan(0);
    for (const pid of pids) expect(procStat(pid)?.ppid, `orphan ${pid}`).toBe(helper);
    // Reaped: gone from /proc altogether, not left as zombies.
    expect(await waitFor(() => pids.every((pid) => procStat(pid) === null), 10_000), `left: ${JSON.stringify(pids.map(procStat))}`).toBe(true);
    expect(zombieChildren()).toEqual([]);
  });

  it('a double-forked, setsid daemon is the helper\'s too; killed by pid, it is reaped', async () => {
    const [daemon] = await orphanPids('(setsid sh -c \'echo $$; exec sleep 60 >/dev/null\' &)');
    expect(procStat(daemon)?.ppid).toBe(binding.helperPid());
    process.kill(daemon, 'SIGKILL');
    expect(await waitFor(() => procStat(daemon) === null, 10_000), `daemon ${daemon}: ${JSON.stringify(procStat(daemon))}`).toBe(true);
  });

  it('own children keep their records while their orphans die around them', async () => {
    // The orphan dies as its parent does (no sleep), so the helper's
    // SIGCHLD scan meets zombies of both kinds in the same batches.
    const children = Array.from({ length: 40 }, (_, i) =>
      spawn('sh', ['-c', `(exit 7) & (exec true) & exit ${i}`], { engine: 'helper', stdio: 'ignore' }),
    );
    const infos = await Promise.all(children.map((c) => c.exited));
    infos.forEach((info, i) => {
      expect(info.code, `child ${i}`).toBe(1); // CLD_EXITED
      expect(info.status, `child ${i}`).toBe(i);
    });
    expect(await waitFor(() => zombieChildren().length === 0, 10_000)).toBe(true);
  });

  it('orphans whose SIGCHLD merged into an own child\'s are reaped too (SIGCHLD does not queue)', async () => {
    // The helper is stopped while first its own child exits, then the
    // orphans do: all their SIGCHLDs make one pending signal, whose
    // siginfo names the own child. That one alone would not start a scan.
    const helper = binding.helperPid();
    expect(helper).toBeGreaterThan(0);
    const orphans = (await Promise.all(Array.from({ length: 10 }, () => orphanPids('(exec sleep 2 >/dev/null) & echo $!')))).flat();
    expect(orphans).toHaveLength(10);
    const own = spawn('sleep', ['0.2'], { engine: 'helper', stdio: 'ignore' });
    process.kill(helper, 'SIGSTOP');
    try {
      expect(await waitFor(() => procStat(own.pid)?.state === 'Z', 10_000)).toBe(true);
      // The premise: the own child's SIGCHLD came first.
      expect(orphans.map((pid) => procStat(pid)?.state)).not.toContain('Z');
      expect(await waitFor(() => orphans.every((pid) => procStat(pid)?.state === 'Z'), 10_000)).toBe(true);
    } finally {
      process.kill(helper, 'SIGCONT');
    }
    expect((await own.exited).signal).toBeNull();
    expect(await waitFor(() => orphans.every((pid) => procStat(pid) === null), 5_000), `left: ${JSON.stringify(orphans.map((pid) => [pid, procStat(pid)]).filter(([, st]) => st !== null))}`).toBe(true);
  });

  it('a child whose zombie a ptracer holds does not stop the helper: other spawns and exits go on; its record comes once the tracer lets go', async () => {
    // The child's own grandchild PTRACE_SEIZEs it, never waits for it, and
    // exits after 2 s; the child exits 3 meanwhile.
    const py = [
      'import os, ctypes, time',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'r, w = os.pipe()',
      'me = os.getpid()',
      // Yama (ptrace_scope 1): any process may trace us, set before the fork so the seize cannot come first.
      'libc.prctl(0x59616d61, ctypes.c_ulong(2**64 - 1), 0, 0, 0)',
      'g = os.fork()',
      'if g == 0:',
      '    os.close(r)',
      '    if libc.ptrace(0x4206, me, None, None) != 0: os._exit(1)',
      '    os.write(w, b"x"); os.close(w)',
      '    time.sleep(2)',
      '    os._exit(0)',
      'os.close(w)',
          'os.read(r, 1)',
      'os._exit(3)',
    ].join('\n');
    const traced = spawn('python3', ['-c', py], { engine: 'helper', stdio: 'ignore' });
    let tracedDone = false;
    const tracedInfo = traced.exited.then((i) => ((tracedDone = true), i));
    await new Promise((r) => setTimeout(r, 500)); // it has exited; its tracer holds it
    const t0 = Date.now();
    const info = await spawn('sh', ['-c', 'exit 9'], { engine: 'helper', stdio: 'ignore' }).exited;
    expect(Date.now() - t0, 'a spawn and exit while the zombie is held').toBeLessThan(1000);
    expect(info.status).toBe(9);
    expect(tracedDone).toBe(false);
    const t = await tracedInfo;
    expect(t.code).toBe(1); // CLD_EXITED
    expect(t.status).toBe(3);
  });

  it('the helper leaves once Node is gone even while an orphan still runs (the orphan then goes to PID 1 or the next subreaper)', async () => {
    const code = `
      const { spawn } = require(${JSON.stringify(lib)});
      const { binding } = require(${JSON.stringify(path.resolve(__dirname, '..', 'lib', 'binding.js'))});
      const c = spawn('sh', ['-c', 'sleep 30 >/dev/null & echo $!'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      c.stdout.on('data', (d) => (out += d));
      c.exited.then(() => setTimeout(() => { console.log(binding.helperPid(), out.trim()); process.exit(0); }, 100));`;
    const parent = cpSpawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await collect(parent.stdout);
    const [helper, orphan] = line.trim().split(' ').map(Number);
    expect(orphan).toBeGreaterThan(0);
    try {
      expect(await waitFor(() => procStat(helper) === null || procStat(helper)?.state === 'Z', 10_000), 'the helper stayed for an orphan').toBe(true);
      const after = procStat(orphan);
      expect(after?.state).not.toBe('Z');
      expect(after?.ppid).not.toBe(helper);
    } finally {
      process.kill(orphan, 'SIGKILL');
    }
  });
});

// Node as PID 1 of a PID namespace, as in a container: orphans of its
// children reparent to it, and Node never reaps a process it did not
// spawn. With clonefd's helper engine they go to the helper instead.
function pid1Run(useClonefd: boolean): { zombies: number; stderr: string } | string {
  const code = `
    const fs = require('fs');
    const spawn = ${useClonefd ? `require(${JSON.stringify(lib)}).spawn` : 'require("child_process").spawn'};
    let left = 10;
    for (let i = 0; i < 10; i++) {
      const c = spawn('sh', ['-c', '(exec true) & exit 0'], { stdio: 'ignore' });
      ${useClonefd ? 'c.exited.then(done);' : "c.on('exit', done);"}
    }
    function done() {
      if (--left > 0) return;
      setTimeout(() => {
        let zombies = 0;
        for (const d of fs.readdirSync('/proc')) {
          if (!/^\\d+$/.test(d)) continue;
          try { if (/^State:\\s+Z/m.test(fs.readFileSync('/proc/' + d + '/status', 'utf8'))) zombies++; } catch {}
        }
        console.log(zombies);
        process.exit(0);
      }, 500);
    }`;
  const r = cpSpawnSync('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, '-e', code], { encoding: 'utf8', timeout: 20_000 });
  if (r.error) return String(r.error);
  if (r.status !== 0) return `unshare exited ${r.status}: ${r.stderr}`;
  return { zombies: Number(r.stdout.trim()), stderr: r.stderr };
}

const pid1 = pid1Run(false);
describe.skipIf(typeof pid1 === 'string')(`Node as PID 1 of a PID namespace${typeof pid1 === 'string' ? ` (skipped: no private PID namespace here: ${pid1})` : ''}`, () => {
  it('node:child_process leaves every orphan a zombie under Node (positive control); clonefd leaves none', () => {
    expect(typeof pid1 === 'object' && pid1.zombies).toBeGreaterThanOrEqual(10);
    const ours = pid1Run(true);
    expect(ours).toEqual({ zombies: 0, stderr: '' });
  });
});
