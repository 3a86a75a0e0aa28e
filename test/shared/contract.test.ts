// The seed's contract: clonefd(flags) → an fd readable at exit; read()
// yields struct clonefd_info once, then EOF; EAGAIN / blocking; EINVAL flags.
import { spawn as cpSpawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { clonefd, spawn, ClonefdInfo, CLD_EXITED, CLD_KILLED, O_CLOEXEC, O_NONBLOCK, CLONEFD_INFO_SIZE } from '../../src/index';
import { collect, fdFlags, liveChildren, probe, useLeakCheck, zombieChildren } from '../helpers';

beforeAll(() => void probe());
useLeakCheck();

/** The process has exited: a zombie (direct engine) or already reaped (by the helper). */
function hasExited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z';
  } catch {
    return true;
  }
}

describe('read()', () => {
  it('O_NONBLOCK: EAGAIN before exit, then the record, then null (EOF)', async () => {
    const h = clonefd('sleep', ['0.3'], { flags: O_CLOEXEC | O_NONBLOCK });
    expect(() => h.read()).toThrow(expect.objectContaining({ code: 'EAGAIN', syscall: 'read' }));
    const exited = await h.exited;
    const info = h.read();
    expect(info).toBeInstanceOf(ClonefdInfo);
    expect(info).toBe(exited);
    expect(info!.code).toBe(CLD_EXITED);
    expect(info!.status).toBe(0);
    expect(h.read()).toBeNull();
    expect(h.read()).toBeNull();
    h.close();
  });

  it('blocking handle: read() blocks the thread until exit', () => {
    const h = clonefd('sleep', ['0.3'], { flags: O_CLOEXEC });
    const t0 = process.hrtime.bigint();
    const info = h.read();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    expect(ms).toBeGreaterThan(150);
    expect(info!.code).toBe(CLD_EXITED);
    expect(h.read()).toBeNull();
    h.close();
  });

  it('read() after the child has exited returns the record, never EAGAIN, even before the loop noticed', async () => {
    const h = clonefd('/bin/true', [], { flags: O_CLOEXEC | O_NONBLOCK });
    const deadline = Date.now() + 5000;
    while (!hasExited(h.pid) && Date.now() < deadline); // no loop turn: only a synchronous read can see it
    let exitEvents = 0;
    h.on('exit', () => exitEvents++);
    const info = h.read();
    expect(info!.status).toBe(0);
    expect(await h.exited).toBe(info);
    await new Promise((r) => setImmediate(r));
    expect(exitEvents).toBe(1);
    expect(h.read()).toBeNull();
    h.close();
  });

  it('exited and the exit event do not consume the record', async () => {
    const h = spawn('sh', ['-c', 'exit 7'], { stdio: 'ignore' });
    const fromEvent = await new Promise<ClonefdInfo>((r) => h.once('exit', r));
    expect(await h.exited).toBe(fromEvent);
    expect(h.read()!.status).toBe(7);
    expect(h.read()).toBeNull();
  });

  it('readAsync(): the first gets the record, later ones null', async () => {
    const h = clonefd('sh', ['-c', 'exit 5'], { flags: O_CLOEXEC });
    const [a, b] = await Promise.all([h.readAsync(), h.readAsync()]);
    expect(a!.status).toBe(5);
    expect(b).toBeNull();
    expect(h.read()).toBeNull();
    h.close();
  });

  it('readAsync() never blocks the loop', async () => {
    const h = clonefd('sleep', ['0.3'], { flags: O_CLOEXEC });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const info = await h.readAsync();
    clearInterval(timer);
    expect(info!.status).toBe(0);
    expect(ticks).toBeGreaterThan(5);
    h.close();
  });
});

describe('flags', () => {
  it('anything beyond O_CLOEXEC | O_NONBLOCK is EINVAL and spawns nothing', () => {
    const before = liveChildren().length + zombieChildren().length;
    for (const flags of [1, 0o100, O_CLOEXEC | 0o1000, -1, 2 ** 32, 2 ** 40 + O_NONBLOCK]) {
      expect(() => clonefd('/bin/true', [], { flags })).toThrow(expect.objectContaining({ code: 'EINVAL', errno: -22, syscall: 'clonefd' }));
    }
    expect(liveChildren().length + zombieChildren().length).toBe(before);
  });

  it.each([
    [0, false, false],
    [O_CLOEXEC, true, false],
    [O_NONBLOCK, false, true],
    [O_CLOEXEC | O_NONBLOCK, true, true],
  ])('flags %o → FD_CLOEXEC %s, O_NONBLOCK %s on fd and pidfd', async (flags, cloexec, nonblock) => {
    const h = clonefd('sleep', ['0.2'], { flags });
    for (const fd of [h.fd, h.pidfd]) {
      expect(fdFlags(fd)).toEqual({ cloexec, nonblock });
    }
    await h.exited;
    h.close();
  });

  it('without O_CLOEXEC the fd really is inherited across exec (a child_process child sees it)', async () => {
    for (const [flags, inherited] of [
      [0, true],
      [O_CLOEXEC, false],
    ] as const) {
      const h = clonefd('sleep', ['0.3'], { flags });
      // libuv (node:child_process) does not close inheritable fds: only
      // FD_CLOEXEC decides whether the exec'd shell gets it.
      const sh = cpSpawnSync('sh', ['-c', `test -e /proc/self/fd/${h.fd} && echo yes || echo no`], { stdio: ['ignore', 'pipe', 'inherit'] });
      expect((await collect(sh.stdout)).trim()).toBe(inherited ? 'yes' : 'no');
      await h.exited;
      h.close();
    }
  });
});

describe('the fd is a real kernel fd', () => {
  it('poll(2) in a C program sees it become readable at exit', async () => {
    const h = clonefd('sleep', ['0.5'], { flags: O_CLOEXEC });
    // The probe gets the fd as its fd 3; first a 0 ms poll (still running),
    // then a blocking one that returns at exit.
    const early = spawn(probe(), ['poll', '3', '0'], { stdio: ['ignore', 'pipe', 'inherit', h.fd] });
    expect((await collect(early.stdout)).trim()).toBe('timeout');
    const late = spawn(probe(), ['poll', '3', '10000'], { stdio: ['ignore', 'pipe', 'inherit', h.fd] });
    const out = collect(late.stdout);
    const info = await h.exited;
    expect((await out).trim()).toBe('ready');
    expect(info.status).toBe(0);
    await late.exited;
    h.close();
  });
});

describe('ClonefdInfo ⇄ struct clonefd_info', () => {
  it('toBuffer(): 24 bytes, s32 code @0, s32 status @4, u64 utime @8, u64 stime @16', async () => {
    const p = spawn('sh', ['-c', 'exit 42'], { stdio: 'ignore' });
    const info = await p.exited;
    const buf = info.toBuffer();
    expect(buf.length).toBe(CLONEFD_INFO_SIZE);
    expect(buf.length).toBe(24);
    expect(buf.readInt32LE(0)).toBe(CLD_EXITED);
    expect(buf.readInt32LE(4)).toBe(42);
    expect(buf.readBigUInt64LE(8)).toBe(BigInt(info.utime!));
    expect(buf.readBigUInt64LE(16)).toBe(BigInt(info.stime!));
    const back = ClonefdInfo.fromBuffer(buf);
    expect([back.code, back.status, back.utime, back.stime]).toEqual([info.code, info.status, info.utime, info.stime]);
  });

  it('unknown times are UINT64_MAX in bytes and null in JavaScript, both ways', () => {
    const info = new ClonefdInfo({ code: CLD_KILLED, status: 9, utime: null, stime: null });
    const buf = info.toBuffer();
    expect(buf.readBigUInt64LE(8)).toBe(0xffffffffffffffffn);
    expect(buf.readBigUInt64LE(16)).toBe(0xffffffffffffffffn);
    const back = ClonefdInfo.fromBuffer(buf);
    expect(back.utime).toBeNull();
    expect(back.stime).toBeNull();
    expect(back.signal).toBe('SIGKILL');
  });

  it('fromBuffer() rejects a wrong size', () => {
    for (const n of [0, 23, 25, 48]) {
      expect(() => ClonefdInfo.fromBuffer(Buffer.alloc(n))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    }
    expect(() => ClonefdInfo.fromBuffer('x'.repeat(24) as unknown as Buffer)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

describe('kill, timeout, AbortSignal', () => {
  it('timeout kills with killSignal', async () => {
    const p = spawn('sleep', ['30'], { stdio: 'ignore', timeout: 100, killSignal: 'SIGINT' });
    const info = await p.exited;
    expect(info.code).toBe(CLD_KILLED);
    expect(info.signal).toBe('SIGINT');
  });

  it('timeout defaults to SIGTERM', async () => {
    const p = spawn('sleep', ['30'], { stdio: 'ignore', timeout: 50 });
    expect((await p.exited).signal).toBe('SIGTERM');
  });

  it('aborting the signal kills with killSignal', async () => {
    const ac = new AbortController();
    const p = spawn('sleep', ['30'], { stdio: 'ignore', signal: ac.signal, killSignal: 'SIGKILL' });
    setTimeout(() => ac.abort(), 50);
    expect((await p.exited).signal).toBe('SIGKILL');
  });

  it('an already-aborted signal throws AbortError and spawns nothing', () => {
    const before = liveChildren().length;
    expect(() => spawn('sleep', ['30'], { signal: AbortSignal.abort() })).toThrow(expect.objectContaining({ name: 'AbortError', code: 'ABORT_ERR' }));
    expect(liveChildren().length).toBe(before);
  });

  it('a child that exits before the timeout is not signalled', async () => {
    const p = spawn('sh', ['-c', 'exit 2'], { stdio: 'ignore', timeout: 5000 });
    expect((await p.exited).exitCode).toBe(2);
  });

  it('asyncDispose kills and waits for the exit', async () => {
    let p: ReturnType<typeof spawn>;
    {
      await using q = spawn('sleep', ['30'], { stdio: 'ignore' });
      p = q;
    }
    expect(p.info?.signal).toBe('SIGTERM');
  });
});
