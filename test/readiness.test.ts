// Readiness notification (the `readiness` option, src/readiness.ts): s6's
// notification fd and systemd's sd_notify, with real children: a shell,
// Debian's systemd-notify and a C sender (test/fixtures/notify.c). Every
// test also checks what it leaves: this file's os.tmpdir() is a private
// directory that must be empty again after each spawn's exit, and the
// leak check (fds, zombies) runs over the whole file.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { ClonefdInfo, spawn, type Engine, type NotifyMessage } from '../src/index';
import { collect, openFds, useLeakCheck, waitFor } from './helpers';

const root = path.resolve(__dirname, '..');
const LIB = JSON.stringify(path.join(root, 'lib', 'index.js'));
const engines: Engine[] = ['helper', 'direct'];

// The fixture is built in the real temporary directory; the sockets go to
// a private one (os.tmpdir() follows TMPDIR at each call).
const fixtureDir = mkdtempSync(path.join(tmpdir(), 'clonefd-notify-fixture-'));
const notify = path.join(fixtureDir, 'notify');
execFileSync('cc', ['-O2', '-Wall', '-o', notify, path.join(__dirname, 'fixtures', 'notify.c')]);
const savedTmp = process.env.TMPDIR;
const privateTmp = mkdtempSync(path.join(tmpdir(), 'clonefd-readiness-'));
process.env.TMPDIR = privateTmp;

afterAll(() => {
  if (savedTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmp;
  rmSync(fixtureDir, { recursive: true, force: true });
  const left = readdirSync(privateTmp);
  rmSync(privateTmp, { recursive: true, force: true }); // before the assertion: a failed run leaves nothing either
  expect(left, 'sd_notify directories left behind').toEqual([]);
});

const leak = useLeakCheck();

/** What is left in this file's os.tmpdir(). */
const leftovers = () => readdirSync(privateTmp);

/** The child's NOTIFY_SOCKET, from its environment as the kernel has it. */
function notifySocketOf(pid: number): string | undefined {
  const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  return env.find((kv) => kv.startsWith('NOTIFY_SOCKET='))?.slice('NOTIFY_SOCKET='.length);
}

/** fds of this process that point to /dev/null. */
const devNullFds = () => [...openFds().values()].filter((t) => t === '/dev/null').length;

async function rejection(p: Promise<unknown> | null): Promise<Error & { code?: string; info?: ClonefdInfo | null }> {
  expect(p).not.toBeNull();
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

describe.each(engines)('engine %s', (engine) => {
  describe('s6 notification fd', () => {
    it('ready resolves at the newline, while the child still runs; fd N is a pipe, not a stdio stream', async () => {
      const p = spawn('sh', ['-c', 'readlink /proc/$$/fd/3; sleep 0.2; echo >&3; exec sleep 5'], { readiness: { fd: 3 }, engine, stdio: ['ignore', 'pipe', 'inherit'] });
      const out = collect(p.stdout);
      const info = await p.ready;
      expect(p.exitCode).toBe(null);
      expect(p.info).toBe(null);
      expect(info?.readyMs).toBeGreaterThan(0);
      expect(p.stdio).toHaveLength(4);
      expect(p.stdio[3]).toBe(null);
      expect(p.kill()).toBe(true);
      expect((await p.exited).signal).toBe('SIGTERM');
      expect(await out).toMatch(/^pipe:\[\d+\]\n$/);
    });

    it('a higher fd pads stdio with ignore; an explicit ignore at N is allowed', async () => {
      const p = spawn('sh', ['-c', 'echo >&7; exec 7>&-; sleep 5'], { readiness: { fd: 7 }, engine, stdio: ['ignore', 'ignore', 'inherit', 'ignore', null, undefined, 'ignore', 'ignore'] });
      await p.ready;
      expect(p.stdio).toHaveLength(8);
      p.kill('SIGKILL');
      await p.exited;
    });

    it('a newline written just before exit still counts (read at the exit)', async () => {
      const p = spawn('sh', ['-c', 'printf "x\\n" >&3; exit 0'], { readiness: { fd: 3 }, engine, stdio: 'ignore' });
      await expect(p.ready).resolves.toMatchObject({ readyMs: expect.any(Number) });
      expect((await p.exited).exitCode).toBe(0);
    });

    it('closing fd N without a newline means never ready: the exit rejects with the info', async () => {
      const p = spawn('sh', ['-c', 'printf "not yet" >&3; exec 3>&-; sleep 0.1; exit 4'], { readiness: { fd: 3 }, engine, stdio: 'ignore' });
      const err = await rejection(p.ready);
      expect(err.code).toBe('ERR_CLONEFD_NOT_READY');
      expect(err.info).toBeInstanceOf(ClonefdInfo);
      expect(err.info?.exitCode).toBe(4);
      expect(err.message).toContain(`child ${p.pid} exited with code 4`);
      expect(err.info).toBe(await p.exited);
    });

    it('with timeout: a child that never gets ready is killed and ready rejects', async () => {
      const p = spawn('sleep', ['30'], { readiness: { fd: 3 }, engine, stdio: 'ignore', timeout: 300 });
      const err = await rejection(p.ready);
      expect(err.code).toBe('ERR_CLONEFD_NOT_READY');
      expect(err.info?.signal).toBe('SIGTERM');
      expect(err.message).toContain('was killed by SIGTERM');
    });
  });

  describe('sd_notify', () => {
    it('systemd-notify --ready: ready resolves, STATUS= arrives, and its BARRIER=1 is answered (it exits 0)', async () => {
      const notifyBin = '/usr/bin/systemd-notify';
      expect(existsSync(notifyBin), 'systemd-notify (Debian package systemd; .ci/run installs it)').toBe(true);
      const p = spawn(notifyBin, ['--ready', '--status=up'], { readiness: 'sd_notify', engine, stdio: ['ignore', 'ignore', 'pipe'] });
      const stderr = collect(p.stderr);
      const messages: NotifyMessage[] = [];
      const statuses: string[] = [];
      p.on('notify', (m) => messages.push(m));
      p.on('status', (s) => statuses.push(s));
      const info = await p.ready;
      expect(info).toMatchObject({ status: 'up', readyMs: expect.any(Number) });
      // systemd-notify (v252, privileged) sends on behalf of its parent: the helper or this process.
      expect(info?.senderPid).toBeGreaterThan(0);
      // The barrier: systemd-notify waits until its fd, sent with BARRIER=1, is closed; we close it at once.
      expect((await p.exited).exitCode).toBe(0);
      expect(await stderr).toBe('');
      expect(statuses).toEqual(['up']);
      expect(messages.map((m) => ({ ...m.fields }))).toEqual([{ READY: '1', STATUS: 'up' }, { BARRIER: '1' }]);
      expect(leftovers()).toEqual([]);
    });

    it('a C sender: STATUS=starting, then READY=1 with STATUS=up and MAINPID=<its pid>', async () => {
      const p = spawn(notify, ['send:STATUS=starting', 'sleep:100', 'send:READY=1\\nSTATUS=up\\nMAINPID=%p', 'pause'], { readiness: 'sd_notify', engine, stdio: ['ignore', 'ignore', 'inherit'] });
      const statuses: string[] = [];
      const messages: NotifyMessage[] = [];
      p.on('status', (s) => statuses.push(s));
      p.on('notify', (m) => messages.push(m));
      expect(p.mainPid).toBe(null);
      const info = await p.ready;
      expect(info).toEqual({ readyMs: expect.any(Number), senderPid: p.pid, mainPid: p.pid, status: 'up' });
      expect(p.mainPid).toBe(p.pid);
      expect(statuses).toEqual(['starting', 'up']);
      expect(messages).toEqual([
        { fields: { STATUS: 'starting' }, pid: p.pid },
        { fields: { READY: '1', STATUS: 'up', MAINPID: String(p.pid) }, pid: p.pid },
      ]);
      expect(Object.getPrototypeOf(messages[0].fields)).toBe(null);
      // The socket: absolute (not abstract), in a 0700 directory of os.tmpdir(), while the child runs.
      const sock = notifySocketOf(p.pid);
      expect(sock).toMatch(new RegExp(`^${privateTmp}/clonefd-notify-[^/]+/notify$`));
      expect(statSync(path.dirname(sock!)).mode & 0o777).toBe(0o700);
      expect(statSync(sock!).isSocket()).toBe(true);
      p.kill();
      await p.exited;
      expect(existsSync(path.dirname(sock!))).toBe(false);
    });

    it('a child that exits before READY=1 rejects with ERR_CLONEFD_NOT_READY and the info; what it sent first is delivered', async () => {
      const p = spawn(notify, ['send:STATUS=failing', 'exit:3'], { readiness: 'sd_notify', engine, stdio: 'ignore' });
      const statuses: string[] = [];
      p.on('status', (s) => statuses.push(s));
      const err = await rejection(p.ready);
      expect(err.code).toBe('ERR_CLONEFD_NOT_READY');
      expect(err.info).toBeInstanceOf(ClonefdInfo);
      expect(err.info?.exitCode).toBe(3);
      expect(err.message).toBe(`child ${p.pid} exited with code 3 before it sent READY=1`);
      expect(statuses).toEqual(['failing']);
      expect(leftovers()).toEqual([]);
    });

    it('READY=1 sent just before exit still resolves (read at the exit)', async () => {
      const p = spawn(notify, ['send:READY=1', 'exit:0'], { readiness: 'sd_notify', engine, stdio: 'ignore' });
      await expect(p.ready).resolves.toMatchObject({ senderPid: p.pid });
      await p.exited;
      expect(leftovers()).toEqual([]);
    });

    it('with timeout: never ready → killed, ready rejects, the socket and directory are gone', async () => {
      const p = spawn(notify, ['send:STATUS=thinking', 'pause'], { readiness: 'sd_notify', engine, stdio: 'ignore', timeout: 300 });
      const err = await rejection(p.ready);
      expect(err.code).toBe('ERR_CLONEFD_NOT_READY');
      expect(err.info?.signal).toBe('SIGTERM');
      expect(leftovers()).toEqual([]);
    });

    it('malformed lines are ignored; a datagram without a valid line emits nothing; MAINPID must be a pid', async () => {
      const p = spawn(notify, ['send:garbage\\n=novalue\\nlower_ok=1\\nREADY=0\\nMAINPID=12abc\\nSTATUS=x', 'send:nothing valid here', 'send:', 'send:MAINPID=0', 'send:READY=1', 'pause'], { readiness: 'sd_notify', engine, stdio: 'ignore' });
      const messages: NotifyMessage[] = [];
      p.on('notify', (m) => messages.push(m));
      const info = await p.ready;
      expect(messages.map((m) => ({ ...m.fields }))).toEqual([{ lower_ok: '1', READY: '0', MAINPID: '12abc', STATUS: 'x' }, { MAINPID: '0' }, { READY: '1' }]);
      expect(info?.mainPid).toBe(undefined);
      expect(p.mainPid).toBe(null);
      p.kill('SIGKILL');
      await p.exited;
    });

    it("NOTIFY_SOCKET overrides the caller's; the rest of the environment is the child's as without the option", async () => {
      process.env.CLONEFD_READINESS_MARK = 'inherited';
      try {
        const script = `test "$CLONEFD_READINESS_MARK" = "$1" || exit 7; exec "$2" send:READY=1 pause`;
        const a = spawn('sh', ['-c', script, 'sh', 'inherited', notify], { readiness: 'sd_notify', engine, stdio: 'ignore' });
        const b = spawn('sh', ['-c', script, 'sh', 'given', notify], { readiness: 'sd_notify', engine, stdio: 'ignore', env: { PATH: process.env.PATH, CLONEFD_READINESS_MARK: 'given', NOTIFY_SOCKET: '/nonexistent' } });
        await Promise.all([a.ready, b.ready]);
        expect(notifySocketOf(b.pid)).not.toBe('/nonexistent');
        a.kill();
        b.kill();
        await Promise.all([a.exited, b.exited]);
      } finally {
        delete process.env.CLONEFD_READINESS_MARK;
      }
    });

    it('fds attached to datagrams (SCM_RIGHTS) are closed, not kept', async () => {
      const before = devNullFds();
      const p = spawn(notify, ['fds:253:STATUS=with fds', 'flood:50:X=1', 'fds:8:X=1', 'fds:253:READY=1', 'pause'], { readiness: 'sd_notify', engine, stdio: 'ignore' });
      const statuses: string[] = [];
      p.on('status', (s) => statuses.push(s));
      await p.ready;
      expect(statuses).toEqual(['with fds']);
      expect(devNullFds()).toBe(before);
      p.kill();
      await p.exited;
    });

    it('datagrams up to 64 KiB are read; longer ones (truncated) are ignored', async () => {
      const p = spawn(notify, ['big:65536', 'big:65537', 'big:300000', 'send:READY=1', 'pause'], { readiness: 'sd_notify', engine, stdio: 'ignore' });
      const messages: NotifyMessage[] = [];
      p.on('notify', (m) => messages.push(m));
      await p.ready;
      expect(messages.map((m) => Object.keys(m.fields).join())).toEqual(['X', 'READY']);
      expect(messages[0].fields.X).toHaveLength(65534);
      p.kill();
      await p.exited;
    });

    it('a flood of 20,000 datagrams: every one is delivered, the loop keeps turning, then READY=1', async () => {
      const p = spawn(notify, ['flood:20000:X=1', 'send:READY=1', 'pause'], { readiness: 'sd_notify', engine, stdio: 'ignore' });
      let count = 0;
      let turns = 0;
      let turnsDuringFlood = 0;
      let spinning = true;
      const spin = () => {
        turns++;
        if (spinning) setImmediate(spin);
      };
      setImmediate(spin);
      let firstTurn = -1;
      p.on('notify', () => {
        if (count++ === 0) firstTurn = turns;
        turnsDuringFlood = turns - firstTurn;
      });
      await p.ready;
      spinning = false;
      expect(count).toBe(20001);
      // At most 16 datagrams per wake-up: 20,000 of them take many loop turns.
      expect(turnsDuringFlood).toBeGreaterThan(100);
      p.kill();
      await p.exited;
    });

    it('a spawn that fails leaves no socket, directory or fd', async () => {
      const fds = openFds().size;
      expect(() => spawn('/nonexistent/program', [], { readiness: 'sd_notify', engine })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
      expect(() => spawn('/nonexistent/program', [], { readiness: { fd: 3 }, engine })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
      expect(leftovers()).toEqual([]);
      expect(openFds().size).toBe(fds);
    });

    it('ready is null without the option; an ignored rejection is no unhandled rejection', async () => {
      const unhandled: unknown[] = [];
      const onUnhandled = (r: unknown) => unhandled.push(r);
      process.on('unhandledRejection', onUnhandled);
      try {
        const plain = spawn('/bin/true', [], { engine, stdio: 'ignore' });
        expect(plain.ready).toBe(null);
        expect(plain.mainPid).toBe(null);
        const p = spawn('/bin/false', [], { readiness: 'sd_notify', engine, stdio: 'ignore' });
        const q = spawn('/bin/false', [], { readiness: { fd: 3 }, engine, stdio: 'ignore' });
        await Promise.all([plain.exited, p.exited, q.exited]);
        await new Promise((r) => setTimeout(r, 50));
        expect(unhandled).toEqual([]);
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    });
  });
});

// With a cgroup the tree, not only the child, may still say it is ready:
// a forking daemon (the shell exits at once) sends READY=1 later.
const cgroupOk = (() => {
  try {
    spawn('/bin/true', [], { cgroup: true, stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!cgroupOk).each(engines)('readiness of a tree (cgroup: true), engine %s', (engine) => {
  it("sd_notify: a daemon's READY=1 after the child exited resolves ready; STATUS= keeps coming", async () => {
    const p = spawn('sh', ['-c', '(sleep 0.3; systemd-notify --ready --status=up; sleep 0.2) & exit 0'], { cgroup: true, readiness: 'sd_notify', engine, stdio: 'ignore' });
    expect((await p.exited).exitCode).toBe(0);
    const info = await p.ready!;
    expect(info.status).toBe('up');
    expect(info.readyMs).toBeGreaterThan(250);
    await p.treeExited;
  });

  it('an fd: the tree ends without a newline: ready rejects then, with the child\'s info, saying the tree ended', async () => {
    const p = spawn('sh', ['-c', '(sleep 0.3) & exit 5'], { cgroup: true, readiness: { fd: 3 }, engine, stdio: 'ignore' });
    const info = await p.exited;
    const t0 = Date.now();
    const err = await rejection(p.ready);
    expect(Date.now() - t0).toBeGreaterThan(150); // at the tree's end, not the child's
    expect(err.code).toBe('ERR_CLONEFD_NOT_READY');
    expect(err.info).toBe(info);
    expect(err.message).toContain('exited with code 5, and its tree ended, before it wrote a newline');
  });

  it('a pending ready keeps the event loop alive after the child exited (a Node script that only awaits ready)', () => {
    const code = `
      const { spawn } = require(${LIB});
      const p = spawn('sh', ['-c', '(sleep 0.3; echo >&3) & exit 0'], { cgroup: true, readiness: { fd: 3 }, engine: '${engine}', stdio: 'ignore' });
      p.ready.then(() => console.log('ready'));`;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stdout).toBe('ready\n');
  });
});

describe('bad options are coded errors, nothing is created', () => {
  const cases: [string, unknown, Record<string, unknown>, string][] = [
    ['fd below 3', { fd: 2 }, {}, 'ERR_INVALID_ARG_VALUE'],
    ['fd 0', { fd: 0 }, {}, 'ERR_INVALID_ARG_VALUE'],
    ['a stdio slot in use', { fd: 3 }, { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] }, 'ERR_INVALID_ARG_VALUE'],
    ['a stdio slot inherited', { fd: 4 }, { stdio: ['ignore', 'ignore', 'ignore', 'ignore', 'inherit'] }, 'ERR_INVALID_ARG_VALUE'],
    ['fd beyond the helper limit', { fd: 60 }, { engine: 'helper' }, 'ERR_OUT_OF_RANGE'],
    ['fd beyond the direct limit', { fd: 256 }, { engine: 'direct' }, 'ERR_OUT_OF_RANGE'],
    ['a fractional fd', { fd: 3.5 }, {}, 'ERR_INVALID_ARG_TYPE'],
    ['a string fd', { fd: '3' }, {}, 'ERR_INVALID_ARG_TYPE'],
    ['an extra key', { fd: 3, name: 'x' }, {}, 'ERR_INVALID_ARG_VALUE'],
    ['an unknown mode', 'sd-notify', {}, 'ERR_INVALID_ARG_VALUE'],
    ['a number', 3, {}, 'ERR_INVALID_ARG_VALUE'],
    ['true', true, {}, 'ERR_INVALID_ARG_VALUE'],
  ];
  it.each(cases)('%s', (_name, readiness, extra, code) => {
    const fds = openFds().size;
    expect(() => spawn('/bin/true', [], { stdio: 'ignore', ...extra, readiness } as never)).toThrow(expect.objectContaining({ code }));
    expect(openFds().size).toBe(fds);
    expect(leftovers()).toEqual([]);
  });

  it('fd 59 works with the helper engine, 200 with the direct engine', async () => {
    const a = spawn('bash', ['-c', 'echo >&59'], { readiness: { fd: 59 }, engine: 'helper', stdio: 'ignore' });
    const b = spawn('bash', ['-c', 'echo >&200'], { readiness: { fd: 200 }, engine: 'direct', stdio: 'ignore' });
    await Promise.all([a.ready, b.ready]);
    await Promise.all([a.exited, b.exited]);
  });
});

describe('worker threads', () => {
  it.each(engines)('a worker terminated with ready pending (%s) leaves no fd, socket, directory or child', async (engine) => {
    const w = new Worker(
      `const { spawn } = require(${LIB});
       const { parentPort } = require('node:worker_threads');
       const opts = { engine: ${JSON.stringify(engine)}, stdio: 'ignore', killWithParent: true };
       const a = spawn(${JSON.stringify(notify)}, ['send:STATUS=waiting', 'pause'], { ...opts, readiness: 'sd_notify' });
       const b = spawn('sleep', ['30'], { ...opts, readiness: { fd: 3 } });
       a.on('status', () => parentPort.postMessage({ pids: [a.pid, b.pid] }));
       setInterval(() => {}, 1000);`,
      { eval: true },
    );
    const { pids } = await new Promise<{ pids: number[] }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    expect(leftovers()).toHaveLength(1);
    await w.terminate();
    const gone = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z');
      } catch {
        return true; // reaped (also between a check and the read)
      }
    };
    expect(await waitFor(() => leftovers().length === 0 && pids.every(gone), 10_000), `left: ${leftovers().join()}, ${leak.report()}`).toBe(true);
  });
});

describe('process.exit()', () => {
  it('removes the sockets and directories of children still running', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'exit-'));
    const script = `const { spawn } = require(${LIB});
      const p = spawn('sleep', ['30'], { readiness: 'sd_notify', stdio: 'ignore', killWithParent: true });
      const q = spawn('sleep', ['30'], { readiness: 'sd_notify', stdio: 'ignore', engine: 'direct', killWithParent: true });
      console.log(require('node:fs').readdirSync(process.env.TMPDIR).length);
      setTimeout(() => process.exit(0), 100);`;
    const out = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, TMPDIR: dir }, encoding: 'utf8' });
    expect(out).toBe('2\n');
    expect(readdirSync(dir)).toEqual([]);
    rmSync(dir, { recursive: true });
  });
});
