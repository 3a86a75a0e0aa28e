// What the child gets: stdio mapping, nothing else inherited, default
// signal dispositions and an empty mask, cwd/env/argv0/PATH/session/ids.
import { chmodSync, closeSync, readlinkSync, createWriteStream, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clonefd, spawn, O_NONBLOCK } from '../../src/index';
import { collect, fdFlags, probe, procStatus, useLeakCheck, waitFor } from '../helpers';

let dir = '';
beforeAll(() => {
  probe();
  dir = mkdtempSync(path.join(tmpdir(), 'clonefd-stdio-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
useLeakCheck();

describe('pipes', () => {
  it('carry data both ways', async () => {
    const p = spawn('sh', ['-c', 'while read line; do echo "got:$line"; echo "err:$line" >&2; done']);
    const out = collect(p.stdout);
    const err = collect(p.stderr);
    p.stdin!.write('one\n');
    p.stdin!.end('two\n');
    expect(await out).toBe('got:one\ngot:two\n');
    expect(await err).toBe('err:one\nerr:two\n');
    expect((await p.exited).exitCode).toBe(0);
  });

  it('carry a large payload without loss', async () => {
    const payload = Buffer.alloc(4 << 20, 'abcdefgh');
    const p = spawn('cat');
    const chunks: Buffer[] = [];
    p.stdout!.on('data', (c: Buffer) => chunks.push(c));
    p.stdin!.end(payload);
    await once(p.stdout!, 'end');
    expect(Buffer.concat(chunks).equals(payload)).toBe(true);
    await p.exited;
  });

  it('extra fds beyond 2 ("pipe" at index 3)', async () => {
    const p = spawn('sh', ['-c', 'echo extra >&3'], { stdio: ['ignore', 'ignore', 'inherit', 'pipe'] });
    expect(p.stdio.length).toBe(4);
    expect(await collect(p.stdio[3])).toBe('extra\n');
    await p.exited;
  });
});

describe('mapping fds', () => {
  it('an fd number and a swap of 1 and 2', async () => {
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    const fa = openSync(a, 'w');
    const fb = openSync(b, 'w');
    // The child's stdout is fb and stderr fa: "out" lands in b.
    const p = spawn('sh', ['-c', 'echo out; echo err >&2'], { stdio: ['ignore', fb, fa] });
    await p.exited;
    closeSync(fa);
    closeSync(fb);
    expect(readFileSync(b, 'utf8')).toBe('out\n');
    expect(readFileSync(a, 'utf8')).toBe('err\n');
  });

  it('fds that collide with their targets: stdio [2, 0, 1]', async () => {
    // The parent's 0, 1, 2 rotated: each target slot is another slot's source.
    const p = spawn('sleep', ['5'], { stdio: [2, 0, 1] });
    await waitFor(() => readFileSync(`/proc/${p.pid}/comm`, 'utf8').trim() === 'sleep', 5000);
    const child = [0, 1, 2].map((fd) => readlinkSync(`/proc/${p.pid}/fd/${fd}`));
    const self = [0, 1, 2].map((fd) => readlinkSync(`/proc/self/fd/${fd}`));
    expect(child).toEqual([self[2], self[0], self[1]]);
    p.kill('SIGKILL');
    await p.exited;
  });

  it("a Node-owned non-blocking stream given as stdin reaches the child blocking, as libuv does (no EAGAIN for cat)", async () => {
    const a = spawn('sh', ['-c', 'sleep 0.5']);
    const fd = (a.stdout as unknown as { _handle: { fd: number } })._handle.fd;
    expect(fdFlags(fd).nonblock, 'precondition: libuv made it non-blocking').toBe(true);
    const b = spawn('sh', ['-c', 'grep ^flags /proc/self/fdinfo/0'], { stdio: [a.stdout!, 'pipe', 'inherit'] });
    const flags = parseInt((await collect(b.stdout)).trim().split(/\s+/)[1], 8);
    expect(flags & 0o4000, `fd 0 flags of the child: 0${flags.toString(8)}`).toBe(0);
    await b.exited;
    a.kill('SIGKILL');
    await a.exited;
    // Handed to b, a's stdout is no longer read here (as Node): ours to close.
    a.stdout!.destroy();
  });

  it('a Node stream with an fd', async () => {
    const file = path.join(dir, 'stream');
    const ws = createWriteStream(file);
    await once(ws, 'open');
    const p = spawn('sh', ['-c', 'echo via-stream'], { stdio: ['ignore', ws, 'inherit'] });
    await p.exited;
    ws.close();
    await once(ws, 'close');
    expect(readFileSync(file, 'utf8')).toBe('via-stream\n');
  });

  it('"ignore" is /dev/null', async () => {
    const p = spawn(probe(), ['fds'], { stdio: ['ignore', 'pipe', 'ignore'] });
    await collect(p.stdout);
    await p.exited;
    const q = spawn('sh', ['-c', 'readlink /proc/$$/fd/0; cat; echo done'], { stdio: ['ignore', 'pipe', 'inherit'] });
    expect(await collect(q.stdout)).toBe('/dev/null\ndone\n');
    await q.exited;
  });

  it('the child gets fds 0-2 plus the mapped ones, nothing else', async () => {
    // Keep an inheritable fd open in this process to prove it is not passed.
    const leaky = clonefd('sleep', ['1'], { flags: 0, stdio: 'ignore' });
    const extra = openSync(path.join(dir, 'extra'), 'w');
    const p = spawn(probe(), ['fds'], { stdio: ['ignore', 'pipe', 'inherit', 'ignore', extra] });
    const fds = (await collect(p.stdout)).trim().split('\n').map(Number);
    expect(fds).toEqual([0, 1, 2, 4]);
    closeSync(extra);
    leaky.kill('SIGKILL');
    await leaky.exited;
    leaky.close();
  });
});

describe('signals in the child', () => {
  it('SigIgn and SigBlk are 0 although Node ignores SIGPIPE', async () => {
    expect(procStatus(process.pid, 'SigIgn')).not.toBe('0000000000000000');
    const p = spawn('sleep', ['2'], { stdio: 'ignore' });
    // Wait until the exec happened (comm becomes "sleep").
    expect(await waitFor(() => readFileSync(`/proc/${p.pid}/comm`, 'utf8').trim() === 'sleep', 5000)).toBe(true);
    expect(procStatus(p.pid, 'SigIgn')).toBe('0000000000000000');
    expect(procStatus(p.pid, 'SigBlk')).toBe('0000000000000000');
    p.kill('SIGKILL');
    await p.exited;
  });

  it('every disposition is default although the parent ignores and catches some (only those are reset)', async () => {
    // The child resets just the signals its own /proc status lists as ignored
    // or caught. A Node that ignores SIGPIPE and SIGXFSZ and handles SIGUSR1
    // and SIGTERM must still give a child all defaults, with every engine
    // and clone path (legacy clone() copies the handlers: CLONE_CLEAR_SIGHAND
    // is clone3's). The engine comes from CLONEFD_ENGINE, inherited.
    const lib = path.resolve(__dirname, '../../lib/index.js');
    const script = [
      `const { spawn } = require(${JSON.stringify(lib)});`,
      "process.on('SIGUSR1', () => {}); process.on('SIGTERM', () => {});",
      "const fs = require('fs');",
      "const st = (pid, k) => fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\\n').find((l) => l.startsWith(k + ':')).slice(k.length + 1).trim();",
      "const p = spawn('sleep', ['5'], { stdio: 'ignore' });",
      "const t = setInterval(() => {",
      "  if (fs.readFileSync(`/proc/${p.pid}/comm`, 'utf8').trim() !== 'sleep') return;",
      "  clearInterval(t);",
      "  console.log(JSON.stringify({ parent: [st(process.pid, 'SigIgn'), st(process.pid, 'SigCgt')], child: [st(p.pid, 'SigIgn'), st(p.pid, 'SigCgt'), st(p.pid, 'SigBlk')] }));",
      "  p.kill('SIGKILL');",
      "}, 5);",
    ].join('\n');
    const file = path.join(dir, 'dispositions.js');
    writeFileSync(file, script);
    const sh = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
    const out = collect(sh.stdout);
    expect((await sh.exited).exitCode).toBe(0);
    const r = JSON.parse(await out) as { parent: string[]; child: string[] };
    const bit = (mask: string, sig: number) => (BigInt(`0x${mask}`) >> BigInt(sig - 1)) & 1n;
    // The positive control: the parent really ignores PIPE (13), XFSZ (25) and catches USR1 (10), TERM (15).
    expect([bit(r.parent[0]!, 13), bit(r.parent[0]!, 25), bit(r.parent[1]!, 10), bit(r.parent[1]!, 15)]).toEqual([1n, 1n, 1n, 1n]);
    expect(r.child).toEqual(['0000000000000000', '0000000000000000', '0000000000000000']);
  });

  it('a child writing to a closed pipe dies of SIGPIPE (default disposition)', async () => {
    const p = spawn('sh', ['-c', 'sleep 0.2; exec yes'], { stdio: ['ignore', 'pipe', 'ignore'] });
    p.stdout!.destroy();
    const info = await p.exited;
    expect(info.signal).toBe('SIGPIPE');
  });
});

describe('options', () => {
  it('cwd and env', async () => {
    const p = spawn('sh', ['-c', 'pwd; echo "$FOO"; echo "${HOME-unset}"'], { cwd: dir, env: { FOO: 'bar' } });
    expect(await collect(p.stdout)).toBe(`${dir}\nbar\nunset\n`);
    await p.exited;
  });

  it('cwd as a file: URL', async () => {
    const p = spawn('pwd', [], { cwd: new URL(`file://${dir}`) });
    expect((await collect(p.stdout)).trim()).toBe(dir);
    await p.exited;
  });

  it('argv0', async () => {
    const p = spawn('sleep', ['1'], { argv0: 'custom-name', stdio: 'ignore' });
    // The exec's close-on-exec fds (how spawn() learns of the exec) close a
    // moment before the kernel has set up the new argv: wait for it.
    await waitFor(() => readFileSync(`/proc/${p.pid}/cmdline`, 'utf8') !== '', 5000);
    expect(readFileSync(`/proc/${p.pid}/comm`, 'utf8').trim()).toBe('sleep');
    expect(readFileSync(`/proc/${p.pid}/cmdline`, 'utf8')).toBe('custom-name\u00001\u0000');
    p.kill('SIGKILL');
    await p.exited;
  });

  it("PATH is searched with the child's env.PATH", async () => {
    const bin = path.join(dir, 'bin');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(bin, { recursive: true });
    writeFileSync(path.join(bin, 'clonefd-tool'), '#!/bin/sh\necho found "$0"\n');
    chmodSync(path.join(bin, 'clonefd-tool'), 0o755);
    const p = spawn('clonefd-tool', [], { env: { PATH: `/nonexistent:${bin}` } });
    expect(await collect(p.stdout)).toBe(`found ${bin}/clonefd-tool\n`);
    await p.exited;
    expect(() => spawn('clonefd-tool', [], { stdio: 'ignore' })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('detached: a new session led by the child', async () => {
    const p = spawn('sleep', ['1'], { detached: true, stdio: 'ignore' });
    const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    expect(Number(fields[3])).toBe(p.pid); // session id (field 6)
    const q = spawn('sleep', ['1'], { stdio: 'ignore' });
    const qfields = readFileSync(`/proc/${q.pid}/stat`, 'utf8');
    expect(Number(qfields.slice(qfields.lastIndexOf(')') + 2).split(' ')[3])).not.toBe(q.pid);
    p.kill('SIGKILL');
    q.kill('SIGKILL');
    await Promise.all([p.exited, q.exited]);
  });

  it.runIf(process.getuid?.() === 0)('uid and gid', async () => {
    const p = spawn('sh', ['-c', 'id -u; id -g; id -G'], { uid: 65534, gid: 65534 });
    expect(await collect(p.stdout)).toBe('65534\n65534\n65534\n');
    await p.exited;
  });

  it('the handle of a non-blocking clonefd child has pipes too', async () => {
    const h = clonefd('sh', ['-c', 'echo hi'], { flags: O_NONBLOCK, stdio: ['ignore', 'pipe', 'inherit'] });
    expect(await collect(h.stdout)).toBe('hi\n');
    await h.exited;
    h.close();
  });
});
