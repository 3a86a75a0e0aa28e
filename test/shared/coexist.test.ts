// clonefd beside node:child_process, and SIGCHLD engine by engine (docs/ARCHITECTURE.md, "Why a helper").
// The direct engine's honest limits: a child cloned with exit signal 0
// raises no SIGCHLD as long as it never execs; Linux resets the exit signal
// to SIGCHLD at exec. The helper engine's promise: the children are the
// helper's, so this process gets no SIGCHLD for them at all, exec or not.
// The SIGCHLD tests pin `engine:` and run for both engines in every
// project; the child_process tests use the project's default engine.
import * as cp from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLD_EXITED, CLD_KILLED, spawn, type Engine, type Subprocess } from '../../src/index';
import { sleep, useLeakCheck, waitFor, zombieChildren, macrotask } from '../helpers';

useLeakCheck(async () => {
  // Warm-up of both sides (libuv's signal pipe and SIGCHLD watcher for
  // child_process, the addon for clonefd) and of both engines (the helper
  // process and this environment's socket to it, kept for its life); the
  // baseline is taken after.
  await spawn('/bin/true', [], { stdio: 'ignore', engine: 'direct' }).exited;
  await spawn('/bin/true', [], { stdio: 'ignore', engine: 'helper' }).exited;
  await spawn('/bin/true', [], { stdio: 'ignore' }).exited;
  await new Promise((r) => cp.spawn('/bin/true', [], { stdio: 'ignore' }).on('exit', r));
});

// Counts SIGCHLD while `body` runs, plus a macrotask and ~100 ms after.
async function countSigchld(body: () => Promise<void>): Promise<number> {
  let count = 0;
  const onSigchld = () => count++;
  process.on('SIGCHLD', onSigchld);
  try {
    await body();
    await macrotask();
    await sleep(100);
    await macrotask();
    return count;
  } finally {
    process.off('SIGCHLD', onSigchld);
  }
}

for (const engine of ['direct', 'helper'] as Engine[]) {
  describe(`the ${engine} engine and SIGCHLD`, () => {
    it('children that never exec (exec fails: ENOENT) raise no SIGCHLD at all', async () => {
      const errors: unknown[] = [];
      const count = await countSigchld(async () => {
        for (let i = 0; i < 20; i++) {
          try {
            spawn('/nonexistent/clonefd-coexist-test', [String(i)], { stdio: 'ignore', engine });
            errors.push(new Error('spawn did not throw'));
          } catch (err) {
            errors.push(err);
          }
        }
      });
      expect(errors).toHaveLength(20);
      for (const err of errors) expect(err).toMatchObject({ code: 'ENOENT', path: '/nonexistent/clonefd-coexist-test' });
      expect(count, 'SIGCHLD for children that never exec').toBe(0);
      // Each failed child was reaped inside spawn() (by this process or by the helper).
      expect(zombieChildren()).toEqual([]);
    });

    if (engine === 'direct') {
      it('children that exec raise SIGCHLD (Linux resets the exit signal at exec): at least one', async () => {
        let infos: { code: number; status: number }[] = [];
        const count = await countSigchld(async () => {
          const kids: Subprocess[] = [];
          for (let i = 0; i < 20; i++) kids.push(spawn('/bin/true', [], { stdio: 'ignore', engine }));
          infos = await Promise.all(kids.map((k) => k.exited));
        });
        expect(infos.map((i) => [i.code, i.status])).toEqual(Array(20).fill([CLD_EXITED, 0]));
        // Signals coalesce: never assert an exact number.
        expect(count).toBeGreaterThanOrEqual(1);
      });
    } else {
      it('children that exec (and exit, or are killed) raise no SIGCHLD here: they are the helper\'s; child_process still raises it', async () => {
        let infos: { code: number; status: number }[] = [];
        const count = await countSigchld(async () => {
          const kids: Subprocess[] = [];
          for (let i = 0; i < 20; i++) kids.push(spawn('/bin/true', [], { stdio: 'ignore', engine }));
          const killed = spawn('sleep', ['30'], { stdio: 'ignore', engine });
          killed.kill('SIGKILL');
          kids.push(killed);
          infos = await Promise.all(kids.map((k) => k.exited));
        });
        expect(infos.map((i) => [i.code, i.status])).toEqual([...Array(20).fill([CLD_EXITED, 0]), [CLD_KILLED, 9]]);
        // "None at all" is exact: nothing to coalesce.
        expect(count, 'SIGCHLD for helper-engine children').toBe(0);
        // The counter works: a child_process child does raise it.
        const control = await countSigchld(async () => {
          await new Promise((r) => cp.spawn('/bin/true', [], { stdio: 'ignore' }).on('exit', r));
        });
        expect(control, 'SIGCHLD for a node:child_process child').toBeGreaterThanOrEqual(1);
      });
    }

    it('the listener is gone afterwards', () => {
      expect(process.listenerCount('SIGCHLD')).toBe(0);
    });
  });
}

describe('beside node:child_process', () => {
  it('interleaved concurrent spawns: every status and output right on both sides', async () => {
    type Result = { side: string; i: number; code: number | null; signal: string | null; out: string };
    const runs: Promise<Result>[] = [];
    for (let i = 0; i < 20; i++) {
      const script = `echo ${i}; exit ${i % 7}`;
      // child_process side
      runs.push(
        new Promise<Result>((resolve, reject) => {
          const c = cp.spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
          let out = '';
          c.stdout.setEncoding('utf8');
          c.stdout.on('data', (d: string) => (out += d));
          c.on('error', reject);
          c.on('close', (code, signal) => resolve({ side: 'child_process', i, code, signal, out }));
        }),
      );
      // clonefd side
      const k = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      k.stdout!.setEncoding('utf8');
      k.stdout!.on('data', (d: string) => (out += d));
      const closed = new Promise((r) => k.stdout!.on('close', r));
      runs.push(
        Promise.all([k.exited, closed]).then(([info]) => {
          expect(info.pid).toBe(k.pid);
          return { side: 'clonefd', i, code: info.exitCode, signal: info.signal, out };
        }),
      );
    }
    const results = await Promise.all(runs);
    expect(results).toHaveLength(40);
    for (const r of results) {
      expect(r, `${r.side} #${r.i}`).toEqual({ side: r.side, i: r.i, code: r.i % 7, signal: null, out: `${r.i}\n` });
    }
    expect(results.filter((r) => r.side === 'clonefd')).toHaveLength(20);
    expect(await waitFor(() => zombieChildren().length === 0, 5_000)).toBe(true);
  });

  it('child_process keeps reaping its own children while clonefd children run and exit', async () => {
    // Long clonefd children span many child_process exits (libuv's SIGCHLD
    // handler runs waitpid() for its own pids only) and vice versa.
    const long = [0, 1, 2].map((i) => spawn('sh', ['-c', `sleep 0.3; exit ${10 + i}`], { stdio: 'ignore' }));
    const quick: Promise<number | null>[] = [];
    for (let i = 0; i < 10; i++) {
      quick.push(new Promise((resolve) => cp.spawn('sh', ['-c', `exit ${i}`], { stdio: 'ignore' }).on('exit', (code) => resolve(code))));
      await sleep(10);
    }
    expect(await Promise.all(quick)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const cpLong = new Promise<number | null>((resolve) => cp.spawn('sh', ['-c', 'sleep 0.2; exit 42'], { stdio: 'ignore' }).on('exit', (code) => resolve(code)));
    const quickClonefd = await Promise.all([0, 1, 2, 3, 4].map((i) => spawn('sh', ['-c', `exit ${20 + i}`], { stdio: 'ignore' }).exited));
    expect(quickClonefd.map((i) => i.exitCode)).toEqual([20, 21, 22, 23, 24]);
    expect((await Promise.all(long.map((k) => k.exited))).map((i) => i.exitCode)).toEqual([10, 11, 12]);
    expect(await cpLong).toBe(42);
  });
});
