// Exit records: codes, signals, core dumps, and the seed's CPU times.
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawn, CLD_DUMPED, CLD_EXITED, CLD_KILLED, CLK_TCK } from '../../src/index';
import { binding } from '../../src/binding';
import { useLeakCheck } from '../helpers';

useLeakCheck();

describe('exit codes', () => {
  it.each([0, 3, 255])('exit %i', async (code) => {
    const p = spawn('sh', ['-c', `exit ${code}`], { stdio: 'ignore' });
    const info = await p.exited;
    expect(info.code).toBe(CLD_EXITED);
    expect(info.status).toBe(code);
    expect(info.exitCode).toBe(code);
    expect(info.signal).toBeNull();
    expect(info.coreDumped).toBe(false);
    expect(info.pid).toBe(p.pid);
    expect(p.exitCode).toBe(code);
    expect(p.signalCode).toBeNull();
  });

  it('uses clone3 unless the legacy path is forced', () => {
    expect(binding.clonePath()).toBe(process.env.CLONEFD_LEGACY_CLONE === '1' ? 'clone' : 'clone3');
  });
});

describe('signals', () => {
  it.each([
    ['SIGKILL', 9],
    ['SIGTERM', 15],
  ] as const)('killed by %s', async (name, num) => {
    const p = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exitEvent = new Promise((r) => p.once('exit', r));
    expect(p.kill(name)).toBe(true);
    const info = await p.exited;
    expect(info.code).toBe(CLD_KILLED);
    expect(info.status).toBe(num);
    expect(info.signal).toBe(name);
    expect(info.exitCode).toBeNull();
    expect(p.signalCode).toBe(name);
    expect(await exitEvent).toBe(info);
  });

  it('kill() takes numbers and defaults to SIGTERM', async () => {
    const a = spawn('sleep', ['30'], { stdio: 'ignore' });
    a.kill();
    expect((await a.exited).status).toBe(15);
    const b = spawn('sleep', ['30'], { stdio: 'ignore' });
    b.kill(2);
    expect((await b.exited).signal).toBe('SIGINT');
  });

  it('kill() after the reap returns false', async () => {
    const p = spawn('/bin/true', [], { stdio: 'ignore' });
    await p.exited;
    expect(p.kill('SIGKILL')).toBe(false);
  });

  it('a core dump is CLD_DUMPED', async (ctx) => {
    const pattern = readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim();
    const hard = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max core file size'));
    if (pattern.startsWith('|') || hard?.split(/\s{2,}/)[2] === '0') {
      ctx.skip(); // no core can be written here: a pipe handler or a hard limit of 0
    }
    const dir = mkdtempSync(path.join(tmpdir(), 'clonefd-core-'));
    try {
      // The child raises its own soft limit, then kills itself with SIGSEGV.
      const p = spawn('sh', ['-c', 'ulimit -c unlimited; kill -SEGV $$'], { cwd: dir, stdio: 'ignore' });
      const info = await p.exited;
      expect(info.code).toBe(CLD_DUMPED);
      expect(info.status).toBe(11);
      expect(info.coreDumped).toBe(true);
      expect(info.signal).toBe('SIGSEGV');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('CPU times (the seed: the child\'s own, in clock ticks)', () => {
  // Burns until the child's own CPU clock reaches the target, reading the
  // clock only every million iterations (docs/ARCHITECTURE.md, "Tests that hold on a shared VM").
  const burn = (ms: number) =>
    `let x=0; const t=${ms * 1000}; for(;;){ for(let i=0;i<1e6;i++) x+=i; const u=process.cpuUsage(); if(u.user+u.system>=t) break; }`;

  it('utime + stime of a child burning 0.5 s of CPU', async () => {
    const p = spawn(process.execPath, ['-e', burn(500)], { stdio: 'ignore' });
    const info = await p.exited;
    expect(info.exitCode).toBe(0);
    const ticks = info.utime! + info.stime!;
    const expected = 0.5 * CLK_TCK;
    // Node's own startup adds CPU time on top of the burn.
    expect(ticks).toBeGreaterThanOrEqual(expected - 2 - expected * 0.1);
    expect(ticks).toBeLessThanOrEqual(expected * 3 + 2);
    expect(info.rusage).not.toBeNull();
    const rusageTicks = ((info.rusage!.userCPUTime + info.rusage!.systemCPUTime) / 1e6) * CLK_TCK;
    expect(Math.abs(rusageTicks - ticks)).toBeLessThanOrEqual(2 + ticks * 0.1);
  });

  it('a waiting parent does not count its reaped grandchild (rusage does)', async () => {
    // sh waits for the burning node; "; exit 0" keeps sh from exec'ing it.
    const p = spawn('sh', ['-c', `"${process.execPath}" -e '${burn(500)}'; exit 0`], { stdio: 'ignore' });
    const info = await p.exited;
    expect(info.exitCode).toBe(0);
    expect(info.utime).not.toBeNull();
    expect(info.utime!).toBeLessThan(5);
    expect(info.rusage!.userCPUTime + info.rusage!.systemCPUTime).toBeGreaterThanOrEqual(0.45e6);
  });
});

describe('delivery', () => {
  it("'exit' runs in the spawner's async context (AsyncLocalStorage)", async () => {
    const { AsyncLocalStorage } = await import('node:async_hooks');
    const als = new AsyncLocalStorage<string>();
    const seen = await als.run(
      'spawner',
      () =>
        new Promise<string | undefined>((resolve) => {
          spawn('/bin/true', [], { stdio: 'ignore' }).on('exit', () => resolve(als.getStore()));
        }),
    );
    expect(seen).toBe('spawner');
  });

  it("an exception thrown by an 'exit' listener is an uncaught exception, not swallowed", async () => {
    const { spawnSync } = await import('node:child_process');
    const lib = JSON.stringify(path.resolve(__dirname, '..', '..'));
    const script = `
      process.on('uncaughtException', (e) => { console.log('caught:' + e.message); });
      const { spawn } = require(${lib});
      const p = spawn('/bin/true', [], { stdio: 'ignore' });
      p.on('exit', () => { throw new Error('boom'); });
      p.exited.then(() => setTimeout(() => console.log('alive'), 10));`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(r.stdout).toBe('caught:boom\nalive\n');
    expect(r.status).toBe(0);
  });
});

describe('environments that stop running JavaScript', () => {
  it('process.exit() from an exit listener in a worker, with more exits pending, does not crash', async () => {
    const { spawnSync } = await import('node:child_process');
    const lib = JSON.stringify(path.resolve(__dirname, '..', '..'));
    // Eight children exit together; the first 'exit' listener ends the
    // worker while the other pidfds are ready in the same loop turn.
    const script = `
      const { Worker } = require('node:worker_threads');
      const w = new Worker(\`
        const { spawn } = require(${lib.replace(/\\/g, '\\\\')});
        const kids = [];
        for (let i = 0; i < 8; i++) kids.push(spawn('/bin/true', [], { stdio: 'ignore' }));
        const t = Date.now(); while (Date.now() - t < 100); // all eight exit: one loop turn sees them all
        for (const k of kids) k.on('exit', () => process.exit(0));
      \`, { eval: true });
      w.on('exit', (code) => console.log('worker exit ' + code));`;
    for (let round = 0; round < 3; round++) {
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
      expect(r.signal).toBeNull();
      expect(r.status).toBe(0);
      expect(r.stdout).toBe('worker exit 0\n');
    }
  });
});

// The child's grandchild PTRACE_SEIZEs it and never waits for it, so the
// child's zombie is held (its pidfd readable, no reap possible) until the
// tracer exits after `holdS`; the child exits 3 right after the seize.
const TRACED = (holdS: number) => [
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
  `    time.sleep(${holdS})`,
  '    os._exit(0)',
  'os.close(w)',
  'os.read(r, 1)',
  'os._exit(3)',
].join('\n');

describe('a child whose zombie a tracer holds', () => {
  it('its exit comes, exact, once the tracer lets go, and nothing spins meanwhile (the readable pidfd is not polled on)', async () => {
    const t0 = Date.now();
    const cpu0 = process.cpuUsage();
    const info = await spawn('python3', ['-c', TRACED(2)], { stdio: 'ignore' }).exited;
    const wall = Date.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    expect(info.code).toBe(CLD_EXITED);
    expect(info.status).toBe(3);
    expect(wall).toBeGreaterThanOrEqual(1500);
    // Spinning on the pidfd took all of one CPU (~100% of wall time).
    expect((cpu.user + cpu.system) / 1000 / wall, `CPU ${(cpu.user + cpu.system) / 1000} ms in ${wall} ms`).toBeLessThan(0.4);
  });

  it('handed over at a worker\'s exit, it is waited for without spinning either (the reaper thread)', async () => {
    const { spawnSync } = await import('node:child_process');
    const lib = JSON.stringify(path.resolve(__dirname, '..', '..'));
    const script = `
      const { Worker } = require('node:worker_threads');
      const w = new Worker(\`
        const { spawn } = require(${lib.replace(/\\/g, '\\\\')});
        const { parentPort } = require('node:worker_threads');
        const c = spawn('python3', ['-c', ${JSON.stringify(TRACED(3)).replace(/\\/g, '\\\\')}], { stdio: 'ignore' });
        parentPort.postMessage(c.pid);
        setInterval(() => {}, 1000);
      \`, { eval: true });
      w.once('message', async (pid) => {
        await new Promise((r) => setTimeout(r, 700)); // exited by now; its tracer holds it
        await w.terminate();
        const cpu0 = process.cpuUsage();
        const t0 = Date.now();
        while (Date.now() - t0 < 1500) await new Promise((r) => setTimeout(r, 100));
        const cpu = process.cpuUsage(cpu0);
        console.log(JSON.stringify({ cpuMs: (cpu.user + cpu.system) / 1000, wallMs: Date.now() - t0 }));
      });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    const { cpuMs, wallMs } = JSON.parse(r.stdout);
    expect(cpuMs / wallMs, `CPU ${cpuMs} ms in ${wallMs} ms`).toBeLessThan(0.4);
  });
});
