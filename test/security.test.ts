// Security (issue 8 §2): no fd of the parent ever reaches a child (many
// open handles, some without FD_CLOEXEC, up to high fd numbers); arguments
// arrive byte for byte; a reused PID is never signalled through an old
// handle. Both engines.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from '../src/index';
import { probe } from './helpers';

const LIB = JSON.stringify(path.resolve(__dirname, '..', 'lib', 'index.js'));
const ENGINES = ['helper', 'direct'] as const;

let dir = '';
let fdtool = '';
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'clonefd-security-'));
  fdtool = path.join(dir, 'fdtool');
  execFileSync('cc', ['-O2', '-Wall', '-o', fdtool, path.join(__dirname, 'fixtures', 'fdtool.c')]);
});
let usedProbe = '';
const probeBin = () => (usedProbe = probe());
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  // helpers.probe() compiles into a temp dir it never removes.
  if (usedProbe) rmSync(path.dirname(usedProbe), { recursive: true, force: true });
});

function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('CLONEFD_')) delete env[k];
  return env;
}

function lastJson(r: ReturnType<typeof spawnSync>): any {
  expect(String(r.stderr)).toBe('');
  expect(r.status).toBe(0);
  const lines = String(r.stdout).trim().split('\n');
  const out = JSON.parse(lines[lines.length - 1]);
  expect(out.fatal).toBeUndefined();
  return out;
}

describe('fds are never inherited', () => {
  // Inherited without FD_CLOEXEC by the Node below (fdtool opens them and execs it).
  const HIGH = [17, 64, 100, 255, 256, 1000, 1023, 1024, 2047, 3000, 4000];

  it('many open handles (some without FD_CLOEXEC, up to fd 4000): the child sees only what stdio asked for', () => {
    const script = `
      const { spawn, clonefd, O_NONBLOCK } = require(${LIB});
      const fs = require('fs'); const net = require('net'); const os = require('os'); const path = require('path');
      const probe = process.argv[1];
      const list = (p) => new Promise((resolve) => { let t = ''; p.stdout.setEncoding('utf8'); p.stdout.on('data', (d) => (t += d)); p.stdout.on('end', () => resolve(t.trim().split('\\n').filter(Boolean).map(Number))); });
      (async () => {
        // CLOEXEC handles of every kind Node makes.
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'clonefd-fds-'));
        const files = []; for (let i = 0; i < 50; i++) files.push(fs.openSync(path.join(tmp, 'f' + i), 'w'));
        const server = net.createServer().listen(0, '127.0.0.1');
        await new Promise((r) => server.on('listening', r));
        const client = net.connect(server.address().port, '127.0.0.1');
        await new Promise((r) => client.on('connect', r));
        // A handle without FD_CLOEXEC made by clonefd itself (flags without O_CLOEXEC).
        const open = clonefd('sleep', ['30'], { flags: O_NONBLOCK, stdio: 'ignore' });
        const nonCloexec = [];
        for (const fd of fs.readdirSync('/proc/self/fd').map(Number)) {
          try { if ((parseInt(fs.readFileSync('/proc/self/fdinfo/' + fd, 'utf8').match(/flags:\\s+(\\d+)/)[1], 8) & 0o2000000) === 0) nonCloexec.push(fd); } catch {}
        }
        const maxFd = Math.max(...fs.readdirSync('/proc/self/fd').map(Number));
        const out = { nonCloexec, maxFd, openFd: open.fd, seen: {} };
        for (const engine of ['helper', 'direct']) {
          for (const [name, stdio, want] of [
            ['pipe', 'pipe', [0, 1, 2]],
            ['inherit + pipe', ['inherit', 'pipe', 'inherit'], [0, 1, 2]],
            ['ignore + pipe + extra', ['ignore', 'pipe', 'ignore', 'pipe', 'ignore', 'pipe'], [0, 1, 2, 3, 5]],
          ]) {
            const p = spawn(probe, ['fds'], { engine, stdio });
            const fds = await list(p);
            await p.exited;
            for (const s of p.stdio) if (s) s.destroy();
            out.seen[engine + ' ' + name] = { fds, want };
          }
        }
        open.kill('SIGKILL'); await open.exited; open.close();
        client.destroy(); server.close();
        for (const f of files) fs.closeSync(f);
        fs.rmSync(tmp, { recursive: true, force: true });
        console.log(JSON.stringify(out));
      })().catch((e) => console.log(JSON.stringify({ fatal: String(e && e.stack) })));
    `;
    const r = spawnSync('sh', ['-c', 'ulimit -n 8192 && exec "$@"', 'sh', fdtool, 'open', ...HIGH.map(String), '--', process.execPath, '-e', script, probeBin()], {
      encoding: 'utf8',
      timeout: 40_000,
      env: cleanEnv(),
    });
    const out = lastJson(r);
    // The setup really is hostile: every HIGH fd and clonefd's own fd are open without FD_CLOEXEC.
    for (const fd of HIGH) expect(out.nonCloexec).toContain(fd);
    expect(out.maxFd).toBeGreaterThanOrEqual(4000);
    expect(out.nonCloexec).toContain(out.openFd);
    expect(Object.keys(out.seen)).toHaveLength(6);
    for (const [name, { fds, want }] of Object.entries<any>(out.seen)) expect(fds, name).toEqual(want);
  });
});

describe('arguments arrive byte for byte', () => {
  const lone = ['\ud800', '\udfff', 'a\ud83dz', '\ude00b'];
  const args: string[] = [
    '',
    ...Array.from({ length: 255 }, (_, i) => String.fromCharCode(i + 1)), // every code unit 1..255 alone
    Array.from({ length: 255 }, (_, i) => String.fromCharCode(i + 1)).join(''), // and all in one
    '',
    ' leading and trailing ',
    "quotes ' \" ` $HOME $(id) ; | & * ? [a] ~ \\ \n\t\r",
    '\u0100\u07ff', // 2-byte UTF-8
    '\u0800\uffff\ufeff\u200b\u202e', // 3-byte, BOM, zero width, RTL override
    '\ud800\udc00\u{1f600}\u{10ffff}', // 4-byte (surrogate pairs)
    ...lone, // lone surrogates: encoded as U+FFFD, as Buffer.from() does
    'x'.repeat(100_000), // long (under MAX_ARG_STRLEN)
    '\u{1f600}'.repeat(20_000),
    '',
  ];
  const expected = Buffer.concat(args.flatMap((a) => [Buffer.from(a, 'utf8'), Buffer.from([0])]));

  for (const engine of ENGINES) {
    it(`${engine} engine: every byte 1..255, empty, long, multi-byte and invalid UTF-16 round-trip`, async () => {
      const p = spawn(fdtool, ['argv', ...args], { engine, stdio: ['ignore', 'pipe', 'inherit'] });
      const chunks: Buffer[] = [];
      p.stdout!.on('data', (d: Buffer) => chunks.push(d));
      const ended = new Promise((r) => p.stdout!.on('end', r));
      expect((await p.exited).status).toBe(0);
      await ended;
      const got = Buffer.concat(chunks);
      expect(got.length).toBe(expected.length);
      expect(got.equals(expected)).toBe(true);
      // argv0 too (the name the program sees), and env values.
      const q = spawn('sh', ['-c', 'printf "%s|%s" "$0" "$V"'], { engine, argv0: 'näme\u{1f600}', env: { V: '\u00ff\u0001x\ud800' }, stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      q.stdout!.setEncoding('utf8');
      q.stdout!.on('data', (d) => (text += d));
      const qEnded = new Promise((r) => q.stdout!.on('end', r));
      await q.exited;
      await qEnded;
      expect(text).toBe('näme\u{1f600}|\u00ff\u0001x\ufffd');
    });

    it(`${engine} engine: a NUL byte in an argument, argv0 or env is refused with a code, nothing spawned`, () => {
      for (const f of [
        () => spawn(fdtool, ['argv', 'a\0b'], { engine, stdio: 'ignore' }),
        () => spawn('a\0b', [], { engine, stdio: 'ignore' }),
        () => spawn(fdtool, ['argv'], { engine, stdio: 'ignore', env: { A: 'x\0y' } }),
        () => spawn(fdtool, ['argv'], { engine, stdio: 'ignore', argv0: 'x\0' }),
      ]) {
        expect(f).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
      }
    });
  }
});

function canUnshare(): boolean {
  if (process.getuid?.() !== 0) return false;
  return spawnSync('unshare', ['-p', '-f', '--mount-proc', 'sh', '-c', 'echo 1 > /proc/sys/kernel/ns_last_pid'], { encoding: 'utf8' }).status === 0;
}

describe.runIf(canUnshare())('PID reuse (private pid namespace, ns_last_pid)', () => {
  it('kill() on the handle of a reaped child returns false and never signals the decoy that got its pid', () => {
    const script = `
      const { spawn, clonefd } = require(${LIB});
      const cp = require('child_process'); const fs = require('fs');
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const state = (pid) => { try { const s = fs.readFileSync('/proc/' + pid + '/stat', 'utf8'); return s.slice(s.lastIndexOf(')') + 2).split(' ')[0]; } catch { return null; } };
      (async () => {
        const out = [];
        for (const engine of ['helper', 'direct']) {
          for (const api of ['spawn', 'clonefd']) {
            for (const signal of ['SIGKILL', 'SIGTERM', 0]) {
              const old = api === 'spawn' ? spawn('true', [], { engine, stdio: 'ignore' }) : clonefd('true', [], { engine, stdio: 'ignore' });
              const info = await old.exited;
              let decoy, tries = 0;
              // Reuse the pid: the next pid the kernel gives is ns_last_pid + 1.
              for (;;) {
                tries++;
                fs.writeFileSync('/proc/sys/kernel/ns_last_pid', String(old.pid - 1));
                decoy = cp.spawn('sleep', ['30'], { stdio: 'ignore' });
                if (decoy.pid === old.pid || tries >= 20) break;
                decoy.kill('SIGKILL');
                await new Promise((r) => decoy.on('exit', r));
              }
              await sleep(20);
              const r = { engine, api, signal, status: info.status, pid: old.pid, decoy: decoy.pid, tries };
              r.killed = old.kill(signal);
              await sleep(150);
              r.decoyState = state(decoy.pid);
              r.decoyExit = [decoy.exitCode, decoy.signalCode];
              if (api === 'clonefd') old.close();
              decoy.kill('SIGKILL');
              await new Promise((res) => (decoy.exitCode !== null || decoy.signalCode !== null ? res() : decoy.on('exit', res)));
              out.push(r);
            }
          }
        }
        console.log(JSON.stringify(out));
      })().catch((e) => console.log(JSON.stringify({ fatal: String(e && e.stack) })));
    `;
    const r = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, '-e', script], {
      encoding: 'utf8',
      timeout: 40_000,
      env: cleanEnv(),
    });
    const out = lastJson(r);
    expect(out).toHaveLength(12);
    for (const c of out) {
      const label = JSON.stringify(c);
      expect(c.status, label).toBe(0);
      expect(c.decoy, label).toBe(c.pid); // the pid really was reused
      expect(c.killed, label).toBe(false);
      expect(['S', 'R'], label).toContain(c.decoyState);
      expect(c.decoyExit, label).toEqual([null, null]);
    }
  });
});
