// Drop-in parity with node:child_process (docs/ARCHITECTURE.md, "The drop-in").
//
// Every scenario is a function of a module shaped like `node:child_process`
// that returns a plain observation object. `both()` runs it against Node's
// module and then against `clonefd/child_process` (../src/child_process) and
// asserts the two observations are equal; an optional `check` makes absolute
// assertions on Node's observation first (so a scenario that observes nothing
// can't pass), then on ours.
//
// Only documented, deterministic behaviour is observed: 'spawn' first,
// 'exit' before 'close', 'close' last (never 'exit' against stdout 'end'),
// the signal of a timeout (never the elapsed time). Every scenario runs under
// its own deadline, so a child that never closes yields a '<deadline>' marker
// in the observation instead of a hung test.
import * as node from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { finished, Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withDeadline as deadline } from './helpers';

type CP = typeof import('node:child_process');
type Obs = unknown;

const ours = (await import('../src/child_process')) as unknown as CP;

const isRoot = process.getuid?.() === 0;
const DEADLINE_MS = 20_000;
const TEST_TIMEOUT_MS = 60_000;
// Long enough that nothing ends it but us; a timeout or kill ends it in ms.
const LONG = '20';

let dir = '';
let noShebang = ''; // 0755, `echo from-sh`, no #! line
let notExecutable = ''; // 0644
const spawned: node.ChildProcess[] = [];

beforeAll(() => {
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'clonefd-dropin-')));
  noShebang = path.join(dir, 'no-shebang');
  writeFileSync(noShebang, 'echo from-sh\necho "args:$*"\n');
  chmodSync(noShebang, 0o755);
  notExecutable = path.join(dir, 'not-executable');
  writeFileSync(notExecutable, '#!/bin/sh\necho never\n');
  chmodSync(notExecutable, 0o644);
});

afterAll(() => {
  // A scenario that hit its deadline may leave a child behind.
  for (const c of spawned) {
    try {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    } catch {
      // not ours to worry about
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- helpers

/** Buffers and strings stay distinguishable in observations and diffs. */
function show(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return { Buffer: v.toString('utf8') };
  if (v instanceof Uint8Array) return { Uint8Array: Buffer.from(v).toString('utf8') };
  if (Array.isArray(v)) return v.map(show);
  return v;
}

function errClass(e: unknown): string {
  if (e instanceof RangeError) return 'RangeError';
  if (e instanceof TypeError) return 'TypeError';
  if (e instanceof Error) return 'Error';
  return typeof e;
}

const ERR_FIELDS = [
  'code', 'errno', 'syscall', 'path', 'spawnargs', 'cmd', 'killed', 'signal', 'status',
  'stdout', 'stderr', 'output',
] as const;

/** Everything a caller can see on an error, except the stack. */
function errObs(e: unknown): Record<string, unknown> {
  if (!(e instanceof Error)) return { notAnError: show(e) };
  const o: Record<string, unknown> = {
    class: errClass(e),
    name: e.name,
    message: e.message,
    keys: Object.keys(e).sort(),
  };
  const r = e as unknown as Record<string, unknown>;
  for (const k of ERR_FIELDS) if (k in r) o[k] = show(r[k]);
  if ('cause' in r) o.cause = r.cause instanceof Error ? errObs(r.cause) : show(r.cause);
  return o;
}

/** The part of an argument-validation error that must match: code and class. */
function argErrObs(e: unknown): Record<string, unknown> {
  if (!(e instanceof Error)) return { notAnError: show(e) };
  return { class: errClass(e), name: e.name, code: (e as NodeJS.ErrnoException).code };
}

const withDeadline = <T>(p: Promise<T>, ms = DEADLINE_MS) => deadline(p, ms);

async function observe(cp: CP, scenario: (cp: CP) => unknown): Promise<Obs> {
  try {
    return await withDeadline(Promise.resolve().then(() => scenario(cp)));
  } catch (e) {
    return { scenarioThrew: errObs(e) };
  }
}

interface BothOptions {
  skip?: boolean;
}

/**
 * Runs `scenario` on Node, checks Node's observation, runs it on clonefd,
 * and asserts the observations are equal.
 */
function both(
  name: string,
  scenario: (cp: CP) => unknown,
  // Observations are plain data: checks read them loosely.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  check?: (obs: any) => void,
  opts: BothOptions = {},
): void {
  it.skipIf(!!opts.skip)(
    name,
    async () => {
      const expected = await observe(node, scenario);
      check?.(expected);
      const actual = await observe(ours, scenario);
      expect(actual, `clonefd vs node: ${name}`).toEqual(expected);
    },
    TEST_TIMEOUT_MS,
  );
}

/** Collects a readable stream as utf8 (or null when there is no stream). */
function collect(s: Readable | null | undefined): Promise<string | null> {
  if (!s) return Promise.resolve(null);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer | string) => chunks.push(Buffer.from(d)));
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    s.on('end', finish);
    s.on('close', finish);
    s.on('error', finish);
  });
}

type Event = [string, ...unknown[]];

/** Records the child's own events; resolves on 'close' with them in order. */
function events(child: node.ChildProcess, also?: (name: string) => void): Promise<Event[]> {
  spawned.push(child);
  const ev: Event[] = [];
  child.on('spawn', () => {
    ev.push(['spawn']);
    also?.('spawn');
  });
  child.on('exit', (code, signal) => {
    ev.push(['exit', code, signal]);
    also?.('exit');
  });
  child.on('error', (e) => {
    ev.push(['error', errObs(e)]);
    also?.('error');
  });
  child.on('disconnect', () => ev.push(['disconnect']));
  return new Promise((resolve) =>
    child.on('close', (code, signal) => {
      ev.push(['close', code, signal]);
      resolve(ev);
    }),
  );
}

/** Spawns, records events and all of stdout/stderr, waits for 'close'. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function run(child: node.ChildProcess): Promise<Record<string, any>> {
  const [ev, stdout, stderr] = await Promise.all([events(child), collect(child.stdout), collect(child.stderr)]);
  return {
    events: ev,
    stdout,
    stderr,
    exitCode: child.exitCode,
    signalCode: child.signalCode,
    killed: child.killed,
  };
}

/**
 * execFile/exec with a callback, as an observation: the callback's arguments,
 * and the child's state once it has closed (an abort calls back before the
 * child is gone, so the child is read at 'close', not at the callback).
 */
function callbackObs(
  start: (cb: (err: unknown, stdout: unknown, stderr: unknown) => void) => node.ChildProcess,
): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    let args: [unknown, unknown, unknown] | undefined;
    let closed = false;
    let child: node.ChildProcess | undefined = undefined;
    const settle = () => {
      if (!args || !closed) return;
      const [err, stdout, stderr] = args;
      resolve({
        err: err === null ? null : errObs(err),
        stdout: show(stdout),
        stderr: show(stderr),
        stdoutType: Buffer.isBuffer(stdout) ? 'Buffer' : typeof stdout,
        childKilled: child?.killed,
        childExitCode: child?.exitCode,
        childSignalCode: child?.signalCode,
      });
    };
    child = start((err, stdout, stderr) => {
      args = [err, stdout, stderr];
      settle();
    });
    spawned.push(child);
    child.on('close', () => {
      closed = true;
      setImmediate(settle);
    });
  });
}

function syncResult(r: node.SpawnSyncReturns<Buffer | string>): Record<string, unknown> {
  return {
    keys: Object.keys(r).sort(),
    status: r.status,
    signal: r.signal,
    stdout: show(r.stdout),
    stderr: show(r.stderr),
    output: show(r.output),
    pidIsPositiveInt: Number.isInteger(r.pid) && r.pid > 0,
    pid0: r.pid === 0,
    error: r.error === undefined ? undefined : errObs(r.error),
  };
}

function syncThrow(f: () => unknown): Record<string, unknown> {
  try {
    return { returned: show(f()) };
  } catch (e) {
    const o = errObs(e);
    const r = e as Record<string, unknown>;
    o.pidIsPositiveInt = Number.isInteger(r.pid) && (r.pid as number) > 0;
    return { threw: o };
  }
}

/** Replaces process.stderr.write while `f` runs; returns what went there. */
function captureStderr<T>(f: () => T): { value: T | undefined; threw?: unknown; written: string } {
  const orig = process.stderr.write;
  let written = '';
  (process.stderr as unknown as { write: unknown }).write = (chunk: unknown) => {
    written += Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);
    return true;
  };
  try {
    return { value: f(), written };
  } catch (e) {
    return { value: undefined, threw: e, written };
  } finally {
    process.stderr.write = orig;
  }
}

function streamShape(s: unknown): unknown {
  if (s === null || s === undefined) return s;
  const x = s as { readable?: boolean; writable?: boolean };
  return {
    readable: x.readable,
    writable: x.writable,
    isReadable: s instanceof Readable,
    isWritable: s instanceof Writable,
    isSocket: s instanceof net.Socket,
  };
}

function stdioShape(c: node.ChildProcess): unknown {
  return {
    length: c.stdio.length,
    entries: c.stdio.map(streamShape),
    aliases: [c.stdio[0] === c.stdin, c.stdio[1] === c.stdout, c.stdio[2] === c.stderr],
  };
}

const sha = (s: string | null) => (s === null ? null : createHash('sha256').update(s).digest('hex'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fields of /proc/<pid>/stat after the comm: [state, ppid, pgrp, session, ...]. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ');
}

// ---------------------------------------------------------------- spawn

describe('spawn: the ChildProcess', () => {
  both(
    'events in the documented order, exit and close arguments (exit 0)',
    async (cp) => run(cp.spawn('true')),
    (o) => {
      expect(o.events).toEqual([['spawn'], ['exit', 0, null], ['close', 0, null]]);
      expect(o.exitCode).toBe(0);
    },
  );

  both(
    'exit code 3 in exit and close, stdout and stderr captured',
    async (cp) => run(cp.spawn('sh', ['-c', 'echo out; echo err >&2; exit 3'])),
    (o) => {
      expect(o.events).toEqual([['spawn'], ['exit', 3, null], ['close', 3, null]]);
      expect(o).toMatchObject({ stdout: 'out\n', stderr: 'err\n', exitCode: 3, signalCode: null, killed: false });
    },
  );

  both(
    'a child that kills itself: exit(null, SIGTERM), killed stays false',
    async (cp) => run(cp.spawn('sh', ['-c', 'kill -TERM $$'])),
    (o) => {
      expect(o.events).toEqual([['spawn'], ['exit', null, 'SIGTERM'], ['close', null, 'SIGTERM']]);
      expect(o).toMatchObject({ exitCode: null, signalCode: 'SIGTERM', killed: false });
    },
  );

  both(
    'pid is a positive integer; instanceof ChildProcess and EventEmitter; connected false',
    async (cp) => {
      const c = cp.spawn('true', { stdio: 'ignore' });
      const r = run(c);
      const o = {
        pidType: typeof c.pid,
        pidPositive: Number.isInteger(c.pid) && (c.pid as number) > 0,
        instanceofChildProcess: c instanceof cp.ChildProcess,
        instanceofEventEmitter: c instanceof (await import('node:events')).EventEmitter,
        connected: c.connected,
        send: typeof c.send,
        disconnect: typeof c.disconnect,
        channel: (c as { channel?: unknown }).channel,
        ref: typeof c.ref,
        unref: typeof c.unref,
        kill: typeof c.kill,
        disposeOnPrototype: typeof (cp.ChildProcess.prototype as unknown as Record<symbol, unknown>)[Symbol.dispose],
        disposeOnChild: typeof (c as unknown as Record<symbol, unknown>)[Symbol.dispose],
        exitCodeBefore: c.exitCode,
        signalCodeBefore: c.signalCode,
        killedBefore: c.killed,
      };
      await r;
      return { ...o, exitCodeAfter: c.exitCode, pidAfterExitStillSame: typeof c.pid };
    },
    (o) => {
      expect(o).toMatchObject({ pidType: 'number', pidPositive: true, instanceofChildProcess: true, connected: false });
      expect(o.ref).toBe('function');
      expect(o.unref).toBe('function');
    },
  );

  both(
    'ref() and unref() return nothing and do not disturb the child',
    async (cp) => {
      const c = cp.spawn('sh', ['-c', 'echo x']);
      const r1 = c.unref();
      const r2 = c.ref();
      return { r1, r2, ...(await run(c)) };
    },
    (o) => expect(o.stdout).toBe('x\n'),
  );

  both(
    'spawnfile and spawnargs',
    (cp) => {
      const a = cp.spawn('echo', ['a', 'b'], { stdio: 'ignore' });
      const b = cp.spawn('echo', { stdio: 'ignore' });
      const c = cp.spawn('echo', ['a b'], { stdio: 'ignore', argv0: 'zero' });
      const d = cp.spawn('echo a b', { stdio: 'ignore', shell: true });
      const e = cp.spawn('echo', ['a', 'b'], { stdio: 'ignore', shell: '/bin/sh' });
      for (const x of [a, b, c, d, e]) spawned.push(x);
      return Promise.all([a, b, c, d, e].map((x) => events(x))).then(() =>
        [a, b, c, d, e].map((x) => ({ spawnfile: x.spawnfile, spawnargs: x.spawnargs })),
      );
    },
    (o) => {
      expect(o[0]).toEqual({ spawnfile: 'echo', spawnargs: ['echo', 'a', 'b'] });
      expect(o[3]).toEqual({ spawnfile: '/bin/sh', spawnargs: ['/bin/sh', '-c', 'echo a b'] });
    },
  );

  both(
    "kill('SIGKILL'): true, killed at once, exit(null, SIGKILL), then kill() is false",
    async (cp) => {
      const c = cp.spawn('sleep', [LONG]);
      const before: Record<string, unknown> = {};
      const ev = events(c, (name) => {
        if (name !== 'spawn') return;
        before.killResult = c.kill('SIGKILL');
        before.killedAfterKill = c.killed;
        before.exitCodeAfterKill = c.exitCode;
        before.signalCodeAfterKill = c.signalCode;
      });
      const list = await ev;
      return {
        ...before,
        events: list,
        exitCode: c.exitCode,
        signalCode: c.signalCode,
        killed: c.killed,
        killAfterExit: c.kill('SIGKILL'),
        killDefaultAfterExit: c.kill(),
      };
    },
    (o) => {
      expect(o).toMatchObject({ killResult: true, killedAfterKill: true, killAfterExit: false, signalCode: 'SIGKILL', exitCode: null });
      expect(o.events).toEqual([['spawn'], ['exit', null, 'SIGKILL'], ['close', null, 'SIGKILL']]);
    },
  );

  both(
    'kill() defaults to SIGTERM; kill(9) and kill(0)',
    async (cp) => {
      const a = cp.spawn('sleep', [LONG], { stdio: 'ignore' });
      const b = cp.spawn('sleep', [LONG], { stdio: 'ignore' });
      const out: Record<string, unknown> = {};
      const ea = events(a, (n) => {
        if (n === 'spawn') out.a = a.kill();
      });
      const eb = events(b, (n) => {
        if (n !== 'spawn') return;
        out.zero = b.kill(0); // probes only
        out.killedAfterZero = b.killed;
        out.nine = b.kill(9);
      });
      out.eventsA = await ea;
      out.eventsB = await eb;
      out.signalA = a.signalCode;
      out.signalB = b.signalCode;
      return out;
    },
    (o) => {
      expect(o).toMatchObject({ a: true, zero: true, nine: true, signalA: 'SIGTERM', signalB: 'SIGKILL' });
    },
  );

  both(
    '[Symbol.dispose]() kills a live child (SIGTERM) and is a no-op after exit',
    async (cp) => {
      const c = cp.spawn('sleep', [LONG], { stdio: 'ignore' }) as node.ChildProcess & { [Symbol.dispose]?: () => void };
      const out: Record<string, unknown> = { has: typeof c[Symbol.dispose] };
      const ev = events(c, (n) => {
        if (n === 'spawn') out.returned = c[Symbol.dispose]?.();
      });
      out.events = await ev;
      out.killed = c.killed;
      c[Symbol.dispose]?.(); // after exit: nothing happens, nothing thrown
      return out;
    },
    (o) => {
      expect(o.has).toBe('function');
      expect(o.events).toEqual([['spawn'], ['exit', null, 'SIGTERM'], ['close', null, 'SIGTERM']]);
    },
  );

  both(
    'kill() with an unknown signal throws ERR_UNKNOWN_SIGNAL',
    async (cp) => {
      const c = cp.spawn('sleep', [LONG], { stdio: 'ignore' });
      const ev = events(c);
      let thrown: unknown;
      try {
        c.kill('SIGBOGUS' as NodeJS.Signals);
      } catch (e) {
        thrown = argErrObs(e);
      }
      c.kill('SIGKILL');
      return { thrown, events: await ev };
    },
    (o) => expect(o.thrown).toMatchObject({ code: 'ERR_UNKNOWN_SIGNAL' }),
  );

  both(
    'stdin to stdout round trip through cat, 256 KiB',
    async (cp) => {
      const c = cp.spawn('cat');
      const payload = 'x'.repeat(1024).concat('\n').repeat(256);
      const r = run(c);
      c.stdin!.end(payload);
      const o = await r;
      return { ...o, stdout: (o.stdout as string).length, sha: sha(o.stdout as string), expectSha: sha(payload) };
    },
    (o) => {
      expect(o.sha).toBe(o.expectSha);
      expect(o.events).toEqual([['spawn'], ['exit', 0, null], ['close', 0, null]]);
    },
  );

  both(
    "stdin 'end' without data: cat exits 0 with nothing",
    async (cp) => {
      const c = cp.spawn('cat');
      const r = run(c);
      c.stdin!.end();
      return r;
    },
    (o) => expect(o.stdout).toBe(''),
  );

  both(
    'setEncoding on stdout yields strings',
    async (cp) => {
      const c = cp.spawn('echo', ['héllo']);
      spawned.push(c);
      c.stdout!.setEncoding('utf8');
      const types: string[] = [];
      let text = '';
      c.stdout!.on('data', (d) => {
        types.push(typeof d);
        text += d;
      });
      await new Promise((r) => c.on('close', r));
      return { types: [...new Set(types)], text };
    },
    (o) => expect(o).toEqual({ types: ['string'], text: 'héllo\n' }),
  );
});

describe('spawn: stdio shapes', () => {
  const cases: [string, node.StdioOptions][] = [
    ['pipe', 'pipe'],
    ['ignore', 'ignore'],
    ['inherit', 'inherit'],
    ['default', undefined as unknown as node.StdioOptions],
    ["['pipe', 'ignore', 'inherit']", ['pipe', 'ignore', 'inherit']],
    ["['ignore', 'pipe', 'pipe']", ['ignore', 'pipe', 'pipe']],
    ["[null, undefined, 'ignore']", [null, undefined, 'ignore']],
    ["['pipe', 'pipe', 'pipe', 'pipe']", ['pipe', 'pipe', 'pipe', 'pipe']],
    ["['ignore', 'ignore', 'ignore', 'ignore', 'pipe']", ['ignore', 'ignore', 'ignore', 'ignore', 'pipe']],
    ["['inherit', 'inherit', 'inherit']", ['inherit', 'inherit', 'inherit']],
    ['[0, 1, 2] (fd numbers)', [0, 1, 2]],
    ["['overlapped', 'pipe', 'pipe']", ['overlapped', 'pipe', 'pipe']],
  ];
  for (const [label, stdio] of cases) {
    both(
      `stdio ${label}`,
      async (cp) => {
        // `true` writes nothing, so inherited fds stay quiet.
        const c = cp.spawn('true', stdio === undefined ? {} : { stdio });
        const shape = stdioShape(c);
        for (const s of c.stdio) if (s && 'resume' in s) (s as Readable).resume();
        c.stdin?.end();
        const ev = await events(c);
        return { shape, events: ev };
      },
      (o) => expect((o.shape as { length: number }).length).toBeGreaterThanOrEqual(3),
    );
  }

  both(
    'an extra pipe at fd 3 carries data both ways',
    async (cp) => {
      const c = cp.spawn('sh', ['-c', 'read line <&3; echo "got:$line" >&3'], {
        stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
      });
      const fd3 = c.stdio[3] as unknown as Readable & Writable;
      const got = collect(fd3);
      fd3.write('ping\n');
      const ev = await events(c);
      return { ev, got: await got };
    },
    (o) => expect(o.got).toBe('got:ping\n'),
  );

  both(
    "a Stream with an fd in stdio (a socket of our own) is passed through",
    async (cp) => {
      // An fs-backed file via its fd number: the child writes to it.
      const file = path.join(dir, `fd-${cp === node ? 'node' : 'ours'}.txt`);
      const fs = await import('node:fs');
      const fd = fs.openSync(file, 'w');
      const c = cp.spawn('sh', ['-c', 'echo to-file'], { stdio: ['ignore', fd, 'ignore'] });
      const ev = await events(c);
      fs.closeSync(fd);
      return { ev, stdout: c.stdout, content: fs.readFileSync(file, 'utf8') };
    },
    (o) => expect(o.content).toBe('to-file\n'),
  );
});

// ---------------------------------------------------------------- exec errors

describe('spawn: a program that cannot run', () => {
  both(
    "missing program: 'error' (ENOENT) then close(-2, null); no 'spawn'; no throw",
    async (cp) => {
      const c = cp.spawn('nonexistent-xyz', ['a', 'b']);
      const o = { pid: c.pid, shape: stdioShape(c) };
      const ev = await events(c);
      return { ...o, events: ev, exitCode: c.exitCode, signalCode: c.signalCode, killed: c.killed, kill: c.kill() };
    },
    (o) => {
      expect(o.events[0][0]).toBe('error');
      expect(o.events[0][1]).toMatchObject({
        code: 'ENOENT',
        errno: -2,
        syscall: 'spawn nonexistent-xyz',
        path: 'nonexistent-xyz',
        spawnargs: ['a', 'b'],
      });
      expect(o.events.map((e: Event) => e[0])).not.toContain('spawn');
      expect(o.events.at(-1)[0]).toBe('close');
      expect(o.pid).toBeUndefined();
    },
  );

  both(
    'missing absolute path: ENOENT',
    async (cp) => events(cp.spawn('/nonexistent/dir/prog', { stdio: 'ignore' })),
    (o) => expect(o[0][1]).toMatchObject({ code: 'ENOENT', path: '/nonexistent/dir/prog' }),
  );

  both(
    'a file without the execute bit: EACCES',
    async (cp) => events(cp.spawn(notExecutable, ['x'], { stdio: 'ignore' })),
    (o) => expect(o[0][1]).toMatchObject({ code: 'EACCES', errno: -13, syscall: `spawn ${notExecutable}` }),
  );

  both(
    'a directory as the program: EACCES',
    async (cp) => events(cp.spawn(dir, { stdio: 'ignore' })),
    (o) => expect(o[0][0]).toBe('error'),
  );

  both(
    'a cwd that does not exist: an error event',
    async (cp) => events(cp.spawn('true', { stdio: 'ignore', cwd: path.join(dir, 'no-such-dir') })),
    (o) => expect(o[0][1]).toMatchObject({ code: 'ENOENT' }),
  );

  both(
    'PATH is taken from options.env: a PATH without sh gives ENOENT',
    async (cp) => events(cp.spawn('sh', ['-c', 'true'], { stdio: 'ignore', env: { PATH: dir } })),
    (o) => expect(o.length).toBeGreaterThan(0),
  );

  both(
    'an executable file without a #! line runs through /bin/sh (spawn)',
    async (cp) => run(cp.spawn(noShebang, ['p', 'q'])),
    (o) => {
      expect(o.stdout).toBe('from-sh\nargs:p q\n');
      expect(o.events).toEqual([['spawn'], ['exit', 0, null], ['close', 0, null]]);
    },
  );

  both(
    'an executable file without a #! line runs through /bin/sh (execFile, spawnSync, execFileSync)',
    async (cp) => ({
      execFile: await callbackObs((cb) => cp.execFile(noShebang, ['r'], cb)),
      spawnSync: syncResult(cp.spawnSync(noShebang, ['s'], { encoding: 'utf8' })),
      execFileSync: syncThrow(() => cp.execFileSync(noShebang, { encoding: 'utf8' })),
    }),
    (o) => {
      expect(o.execFile.stdout).toBe('from-sh\nargs:r\n');
      expect(o.spawnSync.stdout).toBe('from-sh\nargs:s\n');
      expect(o.execFileSync.returned).toBe('from-sh\nargs:\n');
    },
  );

  both(
    'execFile of a missing program: callback error with ENOENT fields and cmd',
    async (cp) => callbackObs((cb) => cp.execFile('nonexistent-xyz', ['a'], cb)),
    (o) => expect(o.err).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'spawn nonexistent-xyz', cmd: 'nonexistent-xyz a' }),
  );

  both(
    'exec of a missing command: the shell says 127',
    async (cp) => callbackObs((cb) => cp.exec('nonexistent-xyz', cb)),
    (o) => expect(o.err).toMatchObject({ code: 127, killed: false, signal: null }),
  );
});

// ---------------------------------------------------------------- shell

describe('shell option', () => {
  both(
    "spawn('echo $HOME', { shell: true })",
    async (cp) => run(cp.spawn('echo $HOME', { shell: true, env: { ...process.env, HOME: '/home/dropin' } })),
    (o) => expect(o.stdout).toBe('/home/dropin\n'),
  );

  both(
    "spawn with shell: '/bin/sh' and args joined",
    async (cp) => {
      const c = cp.spawn('echo', ['a', '$((1+2))'], { shell: '/bin/sh' });
      return { spawnfile: c.spawnfile, spawnargs: c.spawnargs, ...(await run(c)) };
    },
    (o) => expect(o.stdout).toBe('a 3\n'),
  );

  both(
    "exec('echo a && echo b'): stdout, spawnfile /bin/sh",
    async (cp) => {
      let child: node.ChildProcess | undefined;
      const o = await callbackObs((cb) => (child = cp.exec('echo a && echo b', cb)));
      return { ...o, spawnfile: child!.spawnfile, spawnargs: child!.spawnargs };
    },
    (o) => {
      expect(o).toMatchObject({ err: null, stdout: 'a\nb\n', stderr: '', stdoutType: 'string' });
      expect(o.spawnargs).toEqual(['/bin/sh', '-c', 'echo a && echo b']);
    },
  );

  both(
    "exec with shell: '/bin/sh' and an env",
    async (cp) => callbackObs((cb) => cp.exec('echo "$X-$Y"', { shell: '/bin/sh', env: { X: 'x1', Y: 'y1' } }, cb)),
    (o) => expect(o.stdout).toBe('x1-y1\n'),
  );

  both(
    'execFile with shell: true expands',
    async (cp) => callbackObs((cb) => cp.execFile('echo', ['$((2*3))', '$FOO'], { shell: true, env: { FOO: 'foo' } }, cb)),
    (o) => expect(o.stdout).toBe('6 foo\n'),
  );

  both(
    'execFile with shell: true, failing: err.cmd is the joined command',
    async (cp) => callbackObs((cb) => cp.execFile('exit', ['5'], { shell: true }, cb)),
    (o) => expect(o.err).toMatchObject({ code: 5, cmd: 'exit 5' }),
  );
});

// ---------------------------------------------------------------- execFile / exec callbacks

describe('execFile and exec callbacks', () => {
  both(
    'execFile: (null, stdout, stderr) as utf8 strings',
    async (cp) => callbackObs((cb) => cp.execFile('sh', ['-c', 'echo out; echo err >&2'], cb)),
    (o) => expect(o).toMatchObject({ err: null, stdout: 'out\n', stderr: 'err\n', stdoutType: 'string' }),
  );

  both(
    'execFile without args, with options only',
    async (cp) => callbackObs((cb) => cp.execFile('pwd', { cwd: dir }, cb)),
    (o) => expect(o.stdout).toBe(`${dir}\n`),
  );

  both(
    "execFile encoding 'buffer': Buffers",
    async (cp) => callbackObs((cb) => cp.execFile('sh', ['-c', 'echo out; echo err >&2'], { encoding: 'buffer' }, cb)),
    (o) => expect(o).toMatchObject({ err: null, stdout: { Buffer: 'out\n' }, stderr: { Buffer: 'err\n' }, stdoutType: 'Buffer' }),
  );

  both(
    "execFile encoding 'hex' and encoding null",
    async (cp) => ({
      hex: await callbackObs((cb) => cp.execFile('echo', ['ab'], { encoding: 'hex' }, cb)),
      nul: await callbackObs((cb) => cp.execFile('echo', ['ab'], { encoding: null }, cb)),
    }),
    (o) => expect(o.hex.stdout).toBe('61620a'),
  );

  both(
    'execFile non-zero exit: err.code is the exit code, killed false, signal null, cmd, message',
    async (cp) => callbackObs((cb) => cp.execFile('sh', ['-c', 'echo o; echo e >&2; exit 3'], cb)),
    (o) => {
      expect(o.err).toMatchObject({ code: 3, killed: false, signal: null, cmd: 'sh -c echo o; echo e >&2; exit 3' });
      expect(o).toMatchObject({ stdout: 'o\n', stderr: 'e\n' });
    },
  );

  both(
    'exec non-zero exit: err.code, cmd, message with stderr',
    async (cp) => callbackObs((cb) => cp.exec('echo o; echo e >&2; exit 7', cb)),
    (o) => expect(o.err).toMatchObject({ code: 7, cmd: 'echo o; echo e >&2; exit 7', message: 'Command failed: echo o; echo e >&2; exit 7\ne\n' }),
  );

  both(
    'execFile, a child that kills itself: err.signal, err.code null, killed false',
    async (cp) => callbackObs((cb) => cp.execFile('sh', ['-c', 'kill -KILL $$'], cb)),
    (o) => expect(o.err).toMatchObject({ code: null, signal: 'SIGKILL', killed: false }),
  );

  both(
    'execFile returns the ChildProcess; writing its stdin reaches the program',
    async (cp) => {
      let child: node.ChildProcess | undefined;
      const p = callbackObs((cb) => {
        child = cp.execFile('cat', cb);
        return child;
      });
      const isCP = child instanceof cp.ChildProcess;
      child!.stdin!.end('fed-in');
      return { isCP, ...(await p) };
    },
    (o) => expect(o).toMatchObject({ isCP: true, stdout: 'fed-in' }),
  );

  both(
    'exec and execFile without a callback still run (no throw)',
    async (cp) => {
      const a = cp.exec('exit 2');
      const b = cp.execFile('sh', ['-c', 'exit 4']);
      const [ea, eb] = [events(a), events(b)];
      return { a: await ea, b: await eb };
    },
    (o) => expect(o.a.at(-1)).toEqual(['close', 2, null]),
  );
});

describe('maxBuffer', () => {
  both(
    'exec: stdout longer than maxBuffer → ERR_CHILD_PROCESS_STDIO_MAXBUFFER, child killed',
    async (cp) =>
      callbackObs((cb) => cp.exec('printf %s 0123456789abcdefghij; exec sleep ' + LONG, { maxBuffer: 10 }, cb)),
    (o) => {
      expect(o.err).toMatchObject({ code: 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER', message: 'stdout maxBuffer length exceeded' });
      expect(o).toMatchObject({ childKilled: true, childSignalCode: 'SIGTERM' });
    },
  );

  both(
    'execFile: stderr longer than maxBuffer, killSignal honoured',
    async (cp) =>
      callbackObs((cb) =>
        cp.execFile('sh', ['-c', 'printf %s 0123456789abcdefghij >&2; exec sleep ' + LONG], { maxBuffer: 5, killSignal: 'SIGKILL' }, cb),
      ),
    (o) => {
      expect(o.err).toMatchObject({ code: 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER', message: 'stderr maxBuffer length exceeded' });
      expect(o).toMatchObject({ childKilled: true, childSignalCode: 'SIGKILL' });
    },
  );

  both(
    "execFile: maxBuffer with encoding 'buffer'",
    async (cp) =>
      callbackObs((cb) =>
        cp.execFile('sh', ['-c', 'printf %s 0123456789abcdefghij; exec sleep ' + LONG], { maxBuffer: 4, encoding: 'buffer' }, cb),
      ),
    (o) => expect(o.err).toMatchObject({ code: 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER' }),
  );

  both(
    'maxBuffer: Infinity and output exactly at the limit succeed',
    async (cp) => ({
      inf: await callbackObs((cb) => cp.execFile('printf', ['%s', '0123456789'], { maxBuffer: Infinity }, cb)),
      exact: await callbackObs((cb) => cp.execFile('printf', ['%s', '0123456789'], { maxBuffer: 10 }, cb)),
    }),
    (o) => expect(o.exact).toMatchObject({ err: null, stdout: '0123456789' }),
  );
});

describe('timeout and killSignal', () => {
  both(
    "execFile('sleep', [LONG], { timeout: 100 }): killed, SIGTERM",
    async (cp) => callbackObs((cb) => cp.execFile('sleep', [LONG], { timeout: 100 }, cb)),
    (o) => {
      expect(o.err).toMatchObject({ killed: true, signal: 'SIGTERM', code: null, cmd: `sleep ${LONG}` });
      expect(o.childKilled).toBe(true);
    },
  );

  both(
    "execFile timeout with killSignal 'SIGKILL'",
    async (cp) => callbackObs((cb) => cp.execFile('sleep', [LONG], { timeout: 100, killSignal: 'SIGKILL' }, cb)),
    (o) => expect(o.err).toMatchObject({ killed: true, signal: 'SIGKILL' }),
  );

  both(
    'execFile timeout with a numeric killSignal (9)',
    async (cp) => callbackObs((cb) => cp.execFile('sleep', [LONG], { timeout: 100, killSignal: 9 }, cb)),
    (o) => expect(o.err).toMatchObject({ killed: true, signal: 'SIGKILL' }),
  );

  both(
    'exec timeout',
    async (cp) => callbackObs((cb) => cp.exec(`exec sleep ${LONG}`, { timeout: 100 }, cb)),
    (o) => expect(o.err).toMatchObject({ killed: true, signal: 'SIGTERM' }),
  );

  both(
    'spawn timeout: the child is killed with killSignal, exit(null, signal)',
    async (cp) => ({
      term: await run(cp.spawn('sleep', [LONG], { timeout: 100 })),
      kill: await run(cp.spawn('sleep', [LONG], { timeout: 100, killSignal: 'SIGKILL' })),
    }),
    (o) => {
      expect(o.term).toMatchObject({ signalCode: 'SIGTERM', killed: true });
      expect(o.kill).toMatchObject({ signalCode: 'SIGKILL', killed: true });
    },
  );

  both(
    'a timeout that does not fire leaves a normal result',
    async (cp) => callbackObs((cb) => cp.execFile('echo', ['quick'], { timeout: 15_000 }, cb)),
    (o) => expect(o).toMatchObject({ err: null, stdout: 'quick\n' }),
  );
});

describe('AbortSignal', () => {
  both(
    "spawn with signal: abort → 'error' AbortError, child killed with SIGTERM",
    async (cp) => {
      const ac = new AbortController();
      const c = cp.spawn('sleep', [LONG], { signal: ac.signal });
      const r = run(c); // its listeners first, so 'spawn' is recorded before the abort
      c.once('spawn', () => ac.abort());
      return r;
    },
    (o) => {
      const names = o.events.map((e: Event) => e[0]);
      expect(names[0]).toBe('spawn');
      expect(names).toContain('error');
      expect(o.events.find((e: Event) => e[0] === 'error')[1]).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
      expect(o).toMatchObject({ signalCode: 'SIGTERM', killed: true });
    },
  );

  both(
    'spawn with signal and killSignal SIGKILL; abort(reason) → cause',
    async (cp) => {
      const ac = new AbortController();
      const c = cp.spawn('sleep', [LONG], { signal: ac.signal, killSignal: 'SIGKILL' });
      const r = run(c);
      c.once('spawn', () => ac.abort('my-reason'));
      return r;
    },
    (o) => {
      expect(o.signalCode).toBe('SIGKILL');
      expect(o.events.find((e: Event) => e[0] === 'error')[1]).toMatchObject({ name: 'AbortError', cause: 'my-reason' });
    },
  );

  both(
    'spawn with an already-aborted signal',
    async (cp) => run(cp.spawn('sleep', [LONG], { signal: AbortSignal.abort() })),
    (o) => expect(o.events.map((e: Event) => e[0])).toContain('error'),
  );

  both(
    'abort after the child exited does nothing',
    async (cp) => {
      const ac = new AbortController();
      const o = await run(cp.spawn('true', { signal: ac.signal }));
      ac.abort();
      await sleep(20);
      return o;
    },
    (o) => expect(o.events).toEqual([['spawn'], ['exit', 0, null], ['close', 0, null]]),
  );

  both(
    'execFile with signal: callback gets an AbortError',
    async (cp) => {
      const ac = new AbortController();
      const p = callbackObs((cb) => {
        const c = cp.execFile('sleep', [LONG], { signal: ac.signal }, cb);
        c.once('spawn', () => ac.abort());
        return c;
      });
      return p;
    },
    (o) => expect(o.err).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' }),
  );

  both(
    'exec with signal: callback gets an AbortError',
    async (cp) => {
      const ac = new AbortController();
      return callbackObs((cb) => {
        const c = cp.exec(`exec sleep ${LONG}`, { signal: ac.signal }, cb);
        c.once('spawn', () => ac.abort());
        return c;
      });
    },
    (o) => expect(o.err).toMatchObject({ name: 'AbortError' }),
  );
});

// ---------------------------------------------------------------- promisified

describe('util.promisify', () => {
  both(
    "promisify(execFile)('echo', ['hi']) → { stdout, stderr }",
    async (cp) => {
      const p = promisify(cp.execFile)('echo', ['hi']);
      const child = (p as unknown as { child: unknown }).child;
      const v = await p;
      return { value: show(v), keys: Object.keys(v).sort(), childIsCP: child instanceof cp.ChildProcess };
    },
    (o) => expect(o).toEqual({ value: { stdout: 'hi\n', stderr: '' }, keys: ['stderr', 'stdout'], childIsCP: true }),
  );

  both(
    "promisify(exec)('echo a >&2') with encoding 'buffer'",
    async (cp) => {
      const v = await promisify(cp.exec)('echo a >&2; echo b', { encoding: 'buffer' });
      return { stdout: show(v.stdout), stderr: show(v.stderr) };
    },
    (o) => expect(o).toEqual({ stdout: { Buffer: 'b\n' }, stderr: { Buffer: 'a\n' } }),
  );

  both(
    'promisify(execFile) rejects with stdout/stderr/code/signal/killed/cmd',
    async (cp) => {
      try {
        await promisify(cp.execFile)('sh', ['-c', 'echo o; echo e >&2; exit 4']);
        return 'resolved';
      } catch (e) {
        return errObs(e);
      }
    },
    (o) => expect(o).toMatchObject({ code: 4, signal: null, killed: false, stdout: 'o\n', stderr: 'e\n', cmd: 'sh -c echo o; echo e >&2; exit 4' }),
  );

  both(
    'promisify(exec) rejects on timeout with killed and signal',
    async (cp) => {
      try {
        await promisify(cp.exec)(`exec sleep ${LONG}`, { timeout: 100 });
        return 'resolved';
      } catch (e) {
        return errObs(e);
      }
    },
    (o) => expect(o).toMatchObject({ killed: true, signal: 'SIGTERM', stdout: '', stderr: '' }),
  );

  both(
    'promisify(execFile) of a missing program rejects with ENOENT',
    async (cp) => {
      try {
        await promisify(cp.execFile)('nonexistent-xyz');
        return 'resolved';
      } catch (e) {
        return errObs(e);
      }
    },
    (o) => expect(o).toMatchObject({ code: 'ENOENT', stdout: '', stderr: '' }),
  );

  both(
    'the promisify.custom functions exist',
    (cp) => ({
      execFile: typeof (cp.execFile as unknown as Record<symbol, unknown>)[promisify.custom],
      exec: typeof (cp.exec as unknown as Record<symbol, unknown>)[promisify.custom],
    }),
    (o) => expect(o).toEqual({ execFile: 'function', exec: 'function' }),
  );
});

// ---------------------------------------------------------------- sync

describe('spawnSync', () => {
  both(
    'status, signal, Buffers, output, pid',
    (cp) => syncResult(cp.spawnSync('sh', ['-c', 'echo o; echo e >&2; exit 2'])),
    (o) => {
      expect(o).toMatchObject({ status: 2, signal: null, stdout: { Buffer: 'o\n' }, stderr: { Buffer: 'e\n' }, pidIsPositiveInt: true });
      expect(o.output).toEqual([null, { Buffer: 'o\n' }, { Buffer: 'e\n' }]);
      expect(o.error).toBeUndefined();
    },
  );

  both(
    "encoding 'utf8': strings in stdout, stderr and output",
    (cp) => syncResult(cp.spawnSync('sh', ['-c', 'echo o; echo e >&2'], { encoding: 'utf8' })),
    (o) => expect(o.output).toEqual([null, 'o\n', 'e\n']),
  );

  both(
    'input feeds stdin: string, Buffer, Uint8Array, DataView',
    (cp) => ({
      string: syncResult(cp.spawnSync('cat', { input: 'abc' })),
      buffer: syncResult(cp.spawnSync('cat', [], { input: Buffer.from('def') })),
      u8: syncResult(cp.spawnSync('cat', [], { input: new Uint8Array([0x67, 0x68]) })),
      dv: syncResult(cp.spawnSync('cat', [], { input: new DataView(new Uint8Array([0x69]).buffer) })),
      big: (() => {
        const r = cp.spawnSync('cat', [], { input: 'z'.repeat(1 << 20), maxBuffer: 4 << 20 });
        return { status: r.status, length: r.stdout.length };
      })(),
    }),
    (o) => {
      expect(o.string.stdout).toEqual({ Buffer: 'abc' });
      expect(o.u8.stdout).toEqual({ Buffer: 'gh' });
      expect(o.big).toEqual({ status: 0, length: 1 << 20 });
    },
  );

  both(
    "timeout: error.code 'ETIMEDOUT', signal SIGTERM (or killSignal)",
    (cp) => ({
      term: syncResult(cp.spawnSync('sleep', [LONG], { timeout: 100 })),
      kill: syncResult(cp.spawnSync('sleep', [LONG], { timeout: 100, killSignal: 'SIGKILL' })),
    }),
    (o) => {
      expect(o.term).toMatchObject({ status: null, signal: 'SIGTERM' });
      expect(o.term.error).toMatchObject({ code: 'ETIMEDOUT', syscall: 'spawnSync sleep', path: 'sleep', spawnargs: [LONG] });
      expect(o.kill).toMatchObject({ signal: 'SIGKILL' });
    },
  );

  both(
    "maxBuffer: error.code 'ENOBUFS'",
    (cp) => {
      const r = cp.spawnSync('sh', ['-c', `printf %s 0123456789abcdefghij; exec sleep ${LONG}`], { maxBuffer: 4 });
      return { status: r.status, signal: r.signal, error: r.error && errObs(r.error) };
    },
    (o) => {
      expect(o.error).toMatchObject({ code: 'ENOBUFS', syscall: 'spawnSync sh' });
      expect(o.signal).toBe('SIGTERM');
    },
  );

  both(
    "missing program: error.code 'ENOENT' in the result, not thrown",
    (cp) => syncResult(cp.spawnSync('nonexistent-xyz', ['a'])),
    (o) => {
      expect(o.error).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'spawnSync nonexistent-xyz', path: 'nonexistent-xyz', spawnargs: ['a'] });
      expect(o.status).toBeNull();
    },
  );

  both(
    'a child that kills itself: status null, signal',
    (cp) => syncResult(cp.spawnSync('sh', ['-c', 'kill -TERM $$'])),
    (o) => expect(o).toMatchObject({ status: null, signal: 'SIGTERM' }),
  );

  both(
    'stdio pieces: inherit/ignore leave null in output',
    (cp) => ({
      inherit: syncResult(cp.spawnSync('true', { stdio: 'inherit' })),
      ignore: syncResult(cp.spawnSync('true', { stdio: 'ignore' })),
      mixed: syncResult(cp.spawnSync('sh', ['-c', 'echo e >&2'], { stdio: ['pipe', 'inherit', 'pipe'] })),
    }),
    (o) => expect(o.mixed.output).toEqual([null, null, { Buffer: 'e\n' }]),
  );

  both(
    'shell: true and cwd',
    (cp) => syncResult(cp.spawnSync('echo $((3+4)); pwd', { shell: true, cwd: dir, encoding: 'utf8' })),
    (o) => expect(o.stdout).toBe(`7\n${dir}\n`),
  );
});

describe('spawnSync: maxBuffer over all outputs, kills that close the pipes, input never read', () => {
  const brief = (r: node.SpawnSyncReturns<Buffer | string>) => ({
    status: r.status,
    signal: r.signal,
    errorCode: (r.error as NodeJS.ErrnoException | undefined)?.code,
    output: r.output && r.output.map((b) => (b === null ? null : typeof b === 'string' ? b : b.length)),
  });

  both(
    'maxBuffer counts stdout and stderr together',
    (cp) => {
      // The child lives on after writing, so the kill always finds it.
      const { status, signal, errorCode } = brief(cp.spawnSync('sh', ['-c', 'head -c 600 /dev/zero; head -c 600 /dev/zero >&2; sleep 5'], { maxBuffer: 1000 }));
      return { status, signal, errorCode };
    },
    (o) => expect(o).toEqual({ errorCode: 'ENOBUFS', signal: 'SIGTERM', status: null }),
  );

  both(
    'a child that ignores the kill signal and keeps writing: SIGPIPE, no hang',
    (cp) => {
      const r = cp.spawnSync('sh', ['-c', 'trap "" TERM; while :; do echo x; done'], { maxBuffer: 1000 });
      return { signal: r.signal, errorCode: (r.error as NodeJS.ErrnoException | undefined)?.code };
    },
    (o) => expect(o).toEqual({ signal: 'SIGPIPE', errorCode: 'ENOBUFS' }),
  );

  both(
    'input the child never reads: EPIPE beside the exit status',
    (cp) => brief(cp.spawnSync('sh', ['-c', 'exit 0'], { input: Buffer.alloc(1 << 20) })),
    (o) => expect(o).toMatchObject({ status: 0, errorCode: 'EPIPE' }),
  );

  both(
    'null at stdio[3] is ignore, not a pipe',
    (cp) => brief(cp.spawnSync('sh', ['-c', 'echo x >&3; echo $?'], { stdio: ['pipe', 'pipe', 'pipe', null], encoding: 'utf8' })),
    (o) => expect(o.output[3]).toBeNull(),
  );

  both(
    'an unknown encoding throws ERR_UNKNOWN_ENCODING',
    (cp) => syncThrow(() => cp.spawnSync('echo', ['x'], { encoding: 'bogus' as BufferEncoding })),
  );

  both(
    "execFileSync's message names argv0",
    (cp) => syncThrow(() => cp.execFileSync('sh', ['-c', 'exit 1'], { argv0: 'myname', stdio: 'pipe' } as import('node:child_process').ExecFileSyncOptions)),
  );
});

describe('execFileSync and execSync', () => {
  both(
    'execFileSync returns stdout (Buffer, or string with encoding)',
    (cp) => ({
      buf: syncThrow(() => cp.execFileSync('echo', ['hi'])),
      str: syncThrow(() => cp.execFileSync('echo', ['hi'], { encoding: 'utf8' })),
      noArgs: syncThrow(() => cp.execFileSync('pwd', { cwd: dir, encoding: 'utf8' })),
    }),
    (o) => expect(o).toEqual({ buf: { returned: { Buffer: 'hi\n' } }, str: { returned: 'hi\n' }, noArgs: { returned: `${dir}\n` } }),
  );

  both(
    'execFileSync throws on non-zero exit with status, stdout, stderr, output',
    (cp) => syncThrow(() => cp.execFileSync('sh', ['-c', 'echo o; echo e >&2; exit 3'], { stdio: 'pipe' })),
    (o) => {
      expect(o.threw).toMatchObject({ status: 3, signal: null, stdout: { Buffer: 'o\n' }, stderr: { Buffer: 'e\n' } });
      expect(o.threw.message).toContain('Command failed: sh -c echo o; echo e >&2; exit 3');
    },
  );

  both(
    'execFileSync default stdio: stderr goes to the parent and is on the error',
    (cp) => {
      const c = captureStderr(() => cp.execFileSync('sh', ['-c', 'echo to-parent >&2; exit 1']));
      return { written: c.written, threw: c.threw === undefined ? undefined : errObs(c.threw) };
    },
    (o) => {
      expect(o.written).toBe('to-parent\n');
      expect(o.threw).toMatchObject({ status: 1 });
    },
  );

  both(
    'execFileSync default stdio, success: stderr still reaches the parent',
    (cp) => {
      const c = captureStderr(() => cp.execFileSync('sh', ['-c', 'echo warn >&2; echo out'], { encoding: 'utf8' }));
      return { written: c.written, value: c.value };
    },
    (o) => expect(o).toEqual({ written: 'warn\n', value: 'out\n' }),
  );

  both(
    'execFileSync timeout: throws ETIMEDOUT with signal',
    (cp) => syncThrow(() => cp.execFileSync('sleep', [LONG], { timeout: 100, stdio: 'pipe' })),
    (o) => expect(o.threw).toMatchObject({ code: 'ETIMEDOUT', signal: 'SIGTERM' }),
  );

  both(
    'execFileSync of a missing program throws ENOENT',
    (cp) => syncThrow(() => cp.execFileSync('nonexistent-xyz', ['a'], { stdio: 'pipe' })),
    (o) => expect(o.threw).toMatchObject({ code: 'ENOENT', syscall: 'spawnSync nonexistent-xyz' }),
  );

  both(
    'execSync returns stdout; input option; throws with status',
    (cp) => ({
      ok: syncThrow(() => cp.execSync('echo a && echo b')),
      input: syncThrow(() => cp.execSync('tr a-z A-Z', { input: 'shout', encoding: 'utf8' })),
      fail: syncThrow(() => cp.execSync('echo x; exit 9', { stdio: 'pipe' })),
      shell: syncThrow(() => cp.execSync('echo $0', { shell: '/bin/sh', encoding: 'utf8' })),
    }),
    (o) => {
      expect(o.ok).toEqual({ returned: { Buffer: 'a\nb\n' } });
      expect(o.input).toEqual({ returned: 'SHOUT' });
      expect(o.fail.threw).toMatchObject({ status: 9, stdout: { Buffer: 'x\n' } });
    },
  );

  both(
    "stdio 'inherit' pieces: execFileSync returns null stdout",
    (cp) => ({
      inherit: syncThrow(() => cp.execFileSync('true', { stdio: 'inherit' })),
      ignoreOut: syncThrow(() => cp.execFileSync('sh', ['-c', 'echo hidden'], { stdio: ['pipe', 'ignore', 'pipe'] })),
      execSync: syncThrow(() => cp.execSync('true', { stdio: 'inherit' })),
    }),
    (o) => expect(o.inherit).toEqual({ returned: null }),
  );
});

// ---------------------------------------------------------------- options

describe('options', () => {
  both(
    'cwd',
    async (cp) => ({
      spawn: (await run(cp.spawn('pwd', { cwd: dir }))).stdout,
      url: (await run(cp.spawn('pwd', { cwd: new URL(`file://${dir}`) }))).stdout,
    }),
    (o) => expect(o).toEqual({ spawn: `${dir}\n`, url: `${dir}\n` }),
  );

  both(
    'env replaces the environment; undefined values are dropped',
    async (cp) =>
      run(cp.spawn('/bin/sh', ['-c', 'echo "$FOO|${HOME-unset}|${DROP-unset}|$NUM"'], { env: { FOO: 'bar', DROP: undefined, NUM: 42 as unknown as string } })),
    (o) => expect(o.stdout).toBe('bar|unset|unset|42\n'),
  );

  both(
    'default env is process.env at spawn time',
    async (cp) => {
      process.env.CLONEFD_DROPIN_VAR = 'v1';
      try {
        return await run(cp.spawn('sh', ['-c', 'echo $CLONEFD_DROPIN_VAR']));
      } finally {
        delete process.env.CLONEFD_DROPIN_VAR;
      }
    },
    (o) => expect(o.stdout).toBe('v1\n'),
  );

  both(
    "argv0: sh sees it as $0; /proc/self/cmdline",
    async (cp) => ({
      dollar0: (await run(cp.spawn('sh', ['-c', 'echo $0'], { argv0: 'custom0' }))).stdout,
      cmdline: JSON.stringify((await run(cp.spawn('cat', ['/proc/self/cmdline'], { argv0: 'xyz' }))).stdout),
    }),
    (o) => expect(o).toEqual({ dollar0: 'custom0\n', cmdline: JSON.stringify('xyz\0/proc/self/cmdline\0') }),
  );

  both(
    'detached: the child leads a new session and process group',
    async (cp) => {
      const stat = async (detached: boolean) => {
        const c = cp.spawn('cat', ['/proc/self/stat'], { detached });
        const o = await run(c);
        const f = statFields(o.stdout as string);
        const [pgrp, session] = [Number(f[2]), Number(f[3])];
        return {
          pgrpIsPid: pgrp === c.pid,
          sessionIsPid: session === c.pid,
          pgrpIsOurs: pgrp === Number(statFields(readFileSync('/proc/self/stat', 'utf8'))[2]),
        };
      };
      return { detached: await stat(true), attached: await stat(false) };
    },
    (o) =>
      expect(o).toEqual({
        detached: { pgrpIsPid: true, sessionIsPid: true, pgrpIsOurs: false },
        attached: { pgrpIsPid: false, sessionIsPid: false, pgrpIsOurs: true },
      }),
  );

  both(
    'uid and gid (as root): id reports them, supplementary groups dropped',
    async (cp) => ({
      both: (await run(cp.spawn('id', [], { uid: 65534, gid: 65534 }))).stdout,
      uidOnly: (await run(cp.spawn('id', ['-u'], { uid: 65534 }))).stdout,
      gidOnly: (await run(cp.spawn('id', ['-g'], { gid: 65534 }))).stdout,
      sync: cp.spawnSync('id', ['-u'], { uid: 65534, encoding: 'utf8' }).stdout,
    }),
    (o) => {
      expect(o.both).toMatch(/^uid=65534\(.*\) gid=65534\(/);
      expect(o.uidOnly).toBe('65534\n');
      expect(o.gidOnly).toBe('65534\n');
    },
    { skip: !isRoot },
  );

  both(
    'windowsHide and windowsVerbatimArguments are accepted',
    async (cp) => ({
      spawn: (await run(cp.spawn('echo', ['w'], { windowsHide: true, windowsVerbatimArguments: true }))).stdout,
      execFile: await callbackObs((cb) => cp.execFile('echo', ['w'], { windowsHide: true }, cb)),
      sync: cp.spawnSync('echo', ['w'], { windowsHide: false, encoding: 'utf8' }).stdout,
    }),
    (o) => expect(o.spawn).toBe('w\n'),
  );

  both(
    'serialization option is accepted without ipc',
    async (cp) => (await run(cp.spawn('echo', ['s'], { serialization: 'json' }))).stdout,
    (o) => expect(o).toBe('s\n'),
  );

  both(
    'signals are reset to default and unblocked in the child',
    async (cp) => {
      const o = await run(cp.spawn('grep', ['-E', '^Sig(Blk|Ign)', '/proc/self/status']));
      return o.stdout;
    },
    (o) => expect(o).toBe('SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n'),
  );
});

// ---------------------------------------------------------------- invalid arguments

describe('invalid arguments throw the same coded errors', () => {
  const bad: [string, (cp: CP) => unknown][] = [
    ['spawn(123)', (cp) => cp.spawn(123 as unknown as string)],
    ["spawn('')", (cp) => cp.spawn('')],
    ['spawn(undefined)', (cp) => cp.spawn(undefined as unknown as string)],
    ["spawn('ec\\0ho')", (cp) => cp.spawn('ec\0ho')],
    ["spawn('echo', 'notarray')", (cp) => cp.spawn('echo', 'notarray' as unknown as string[])],
    ["spawn('echo', ['a\\0b'])", (cp) => cp.spawn('echo', ['a\0b'])],
    ["spawn('echo', [], 'opts')", (cp) => cp.spawn('echo', [], 'opts' as unknown as object)],
    ["spawn('echo', { stdio: 'bogus' })", (cp) => cp.spawn('echo', { stdio: 'bogus' as 'pipe' })],
    ["spawn('echo', { stdio: ['pipe', 'bogus'] })", (cp) => cp.spawn('echo', { stdio: ['pipe', 'bogus' as 'pipe'] })],
    ["spawn('echo', { stdio: 42 })", (cp) => cp.spawn('echo', { stdio: 42 as unknown as 'pipe' })],
    ["spawn('echo', { timeout: -1 })", (cp) => cp.spawn('echo', { timeout: -1 })],
    ["spawn('echo', { timeout: 1.5 })", (cp) => cp.spawn('echo', { timeout: 1.5 })],
    ["spawn('echo', { timeout: 'x' })", (cp) => cp.spawn('echo', { timeout: 'x' as unknown as number })],
    ["spawn('echo', { killSignal: 'SIGBOGUS' })", (cp) => cp.spawn('echo', { killSignal: 'SIGBOGUS' as NodeJS.Signals })],
    ["spawn('echo', { killSignal: 1000 })", (cp) => cp.spawn('echo', { killSignal: 1000 })],
    ["spawn('echo', { cwd: 42 })", (cp) => cp.spawn('echo', { cwd: 42 as unknown as string })],
    ["spawn('echo', { cwd: 'a\\0b' })", (cp) => cp.spawn('echo', { cwd: 'a\0b' })],
    ["spawn('echo', { env: 'x' })", (cp) => cp.spawn('echo', { env: 'x' as unknown as NodeJS.ProcessEnv })],
    ["spawn('echo', { env: { A: 'a\\0b' } })", (cp) => cp.spawn('echo', { env: { A: 'a\0b' } })],
    ["spawn('echo', { uid: 'x' })", (cp) => cp.spawn('echo', { uid: 'x' as unknown as number })],
    ["spawn('echo', { uid: -1 })", (cp) => cp.spawn('echo', { uid: -1 })],
    ["spawn('echo', { gid: 1.5 })", (cp) => cp.spawn('echo', { gid: 1.5 })],
    ["spawn('echo', { shell: 42 })", (cp) => cp.spawn('echo', { shell: 42 as unknown as string })],
    ["spawn('echo', { argv0: 42 })", (cp) => cp.spawn('echo', { argv0: 42 as unknown as string })],
    ["spawn('echo', { detached: 'yes' })", (cp) => cp.spawn('echo', { detached: 'yes' as unknown as boolean })],
    ["spawn('echo', { windowsHide: 'yes' })", (cp) => cp.spawn('echo', { windowsHide: 'yes' as unknown as boolean })],
    ["spawn('echo', { signal: 'nope' })", (cp) => cp.spawn('echo', { signal: 'nope' as unknown as AbortSignal })],
    ["spawn('echo', { serialization: 'bogus' })", (cp) => cp.spawn('echo', { serialization: 'bogus' as 'json' })],
    ["execFile(123)", (cp) => cp.execFile(123 as unknown as string)],
    ["execFile('echo', [], {}, 'notfn')", (cp) => cp.execFile('echo', [], {}, 'notfn' as unknown as () => void)],
    ["execFile('echo', { maxBuffer: -1 })", (cp) => cp.execFile('echo', { maxBuffer: -1 })],
    ["execFile('echo', { timeout: -5 })", (cp) => cp.execFile('echo', { timeout: -5 })],
    ["execFile('echo', { killSignal: 'SIGNOPE' })", (cp) => cp.execFile('echo', { killSignal: 'SIGNOPE' as NodeJS.Signals })],
    ['exec(42)', (cp) => cp.exec(42 as unknown as string)],
    ["exec('true', { shell: 42 })", (cp) => cp.exec('true', { shell: 42 as unknown as string })],
    ['spawnSync(123)', (cp) => cp.spawnSync(123 as unknown as string)],
    ["spawnSync('echo', { input: 42 })", (cp) => cp.spawnSync('echo', { input: 42 as unknown as string })],
    ["spawnSync('echo', { timeout: -1 })", (cp) => cp.spawnSync('echo', { timeout: -1 })],
    ["spawnSync('echo', { killSignal: 'SIGBOGUS' })", (cp) => cp.spawnSync('echo', { killSignal: 'SIGBOGUS' as NodeJS.Signals })],
    ["spawnSync('echo', { maxBuffer: -1 })", (cp) => cp.spawnSync('echo', { maxBuffer: -1 })],
    ['execFileSync(123)', (cp) => cp.execFileSync(123 as unknown as string)],
    ["execSync(42)", (cp) => cp.execSync(42 as unknown as string)],
  ];
  for (const [label, f] of bad) {
    both(
      label,
      async (cp) => {
        let result: unknown;
        try {
          const r = f(cp);
          // Didn't throw: let whatever started finish, and say so.
          if (r instanceof node.ChildProcess || (r && typeof (r as node.ChildProcess).kill === 'function')) {
            const c = r as node.ChildProcess;
            c.on('error', () => {});
            c.kill('SIGKILL');
            result = { returned: 'ChildProcess' };
          } else {
            result = { returned: typeof r };
          }
        } catch (e) {
          result = { threw: argErrObs(e) };
        }
        await sleep(10); // an asynchronous error event would have fired by now
        return result;
      },
    );
  }

  both(
    'execFile with an undefined options argument runs normally',
    async (cp) => {
      const c = cp.execFile('echo', ['ok'], undefined as unknown as object);
      return events(c);
    },
    (o) => expect(o.at(-1)).toEqual(['close', 0, null]),
  );
});

// ---------------------------------------------------------------- clonefd only

describe("IPC in the sync forms, as Node: refused", () => {
  it("'ipc' in spawnSync's stdio is ERR_IPC_SYNC_FORK, as Node's", () => {
    const take = (cp: typeof node) => {
      try {
        const r = cp.spawnSync('true', { stdio: ['pipe', 'pipe', 'pipe', 'ipc'] });
        return r.error as NodeJS.ErrnoException;
      } catch (x) {
        return x as NodeJS.ErrnoException;
      }
    };
    const theirs = take(node);
    const mine = take(ours as unknown as typeof node);
    expect(mine).toBeInstanceOf(Error);
    expect(mine.code).toBe('ERR_IPC_SYNC_FORK');
    expect([mine.code, mine.message]).toEqual([theirs.code, theirs.message]);
  });
});

describe('clonefd only: the extras on its ChildProcess', () => {
  it('fd is a number and exited resolves with code/status/utime/stime/rusage', async () => {
    const c = ours.spawn('sh', ['-c', 'exit 3'], { stdio: 'ignore' }) as node.ChildProcess & {
      fd: unknown;
      exited: Promise<Record<string, unknown>>;
    };
    expect(typeof c.fd).toBe('number');
    expect(Number.isInteger(c.fd) && (c.fd as number) >= 0).toBe(true);
    expect(c.exited).toBeInstanceOf(Promise);
    const info = await c.exited;
    expect(info).toMatchObject({ code: 1, status: 3 }); // CLD_EXITED, exit status 3
    expect(typeof info.utime === 'number' || info.utime === null).toBe(true);
    expect(typeof info.stime === 'number' || info.stime === null).toBe(true);
    expect(typeof info.rusage).toBe('object');
    await new Promise((r) => (c.exitCode !== null ? r(null) : c.on('close', r)));
    expect(c.exitCode).toBe(3);
  });

  it('exited reports a kill as CLD_KILLED with the signal number', async () => {
    const c = ours.spawn('sleep', [LONG], { stdio: 'ignore' }) as node.ChildProcess & { exited: Promise<Record<string, unknown>> };
    c.kill('SIGKILL');
    const info = await c.exited;
    expect(info).toMatchObject({ code: 2, status: 9 });
  });
});

// ---------------------------------------------------------------- module shape

describe('module shape', () => {
  const NAMES = ['spawn', 'execFile', 'exec', 'spawnSync', 'execFileSync', 'execSync', 'fork', 'ChildProcess'];

  it('exports every name node:child_process has that the drop-in promises, as functions', () => {
    for (const n of NAMES) {
      expect(typeof (node as Record<string, unknown>)[n], `node ${n}`).toBe('function');
      expect(typeof (ours as Record<string, unknown>)[n], `clonefd ${n}`).toBe('function');
    }
  });

  it('lib/child_process.js: CommonJS require and ESM import expose the same names (needs tsc first)', () => {
    const lib = fileURLToPath(new URL('../lib/child_process.js', import.meta.url));
    const cjs = JSON.parse(
      node.execFileSync(process.execPath, ['-e', `console.log(JSON.stringify(Object.keys(require(${JSON.stringify(lib)})).sort()))`], {
        encoding: 'utf8',
      }),
    ) as string[];
    const esm = JSON.parse(
      node.execFileSync(
        process.execPath,
        ['--input-type=module', '-e', `const m = await import(${JSON.stringify(lib)}); console.log(JSON.stringify(Object.keys(m).filter((k) => k !== 'default' && k !== 'module.exports').sort()))`],
        { encoding: 'utf8' },
      ),
    ) as string[];
    for (const n of NAMES) expect(cjs).toContain(n);
    const plain = (names: string[]) => names.filter((k) => k !== 'default' && !k.startsWith('__'));
    expect(plain(esm)).toEqual(plain(cjs));
  });
});

describe('options are read as own properties only', () => {
  it('uid, gid, cwd, shell, timeout and env on a polluted Object.prototype change nothing: the drop-in and the core as node:child_process', () => {
    const r = node.spawnSync(process.execPath, [path.join(__dirname, 'fixtures', 'polluted-prototype.js'), path.resolve(__dirname, '..')], {
      cwd: '/tmp',
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    const uid = String(process.getuid!());
    expect(out.node).toEqual({ execSync: [uid, '/tmp'], execFileSync: uid, spawnSync: uid });
    expect(out.ours).toEqual(out.node);
    expect(out.core).toEqual({ out: [uid, '/tmp'], status: 0 });
  });
});

// ---------------------------------------------------------------- exit, as Node orders it

/** Blocks this thread (the event loop does not run) for ms. */
function blockFor(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Whether pid is gone or a zombie (it has exited), from /proc. */
function hasExited(pid: number): boolean {
  try {
    return statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))[0] === 'Z';
  } catch {
    return true;
  }
}

describe("exit: Node's order of state changes and events", () => {
  both(
    'exitCode is already set when stdin is destroyed at exit, and when its close event comes',
    async (cp) => {
      const c = cp.spawn('sh', ['-c', 'exit 3']);
      const seen: unknown[] = [];
      const destroy = c.stdin!.destroy.bind(c.stdin!);
      c.stdin!.destroy = (err?: Error) => {
        seen.push(['destroy', c.exitCode, c.signalCode]);
        return destroy(err);
      };
      c.stdin!.on('close', () => seen.push(['stdin close', c.exitCode]));
      c.on('exit', (code) => seen.push(['exit', code, c.stdin!.destroyed]));
      await events(c);
      return seen;
    },
    (o) => expect(o[0]).toEqual(['destroy', 3, null]),
  );

  both(
    "kill() after the child died but before 'exit' returns true and sets killed (the zombie still takes it)",
    async (cp) => {
      const c = cp.spawn('true', [], { stdio: 'ignore' });
      await once(c, 'spawn');
      // The loop must not run (so no 'exit' yet) while the child dies.
      for (let i = 0; i < 500 && !hasExited(c.pid!); i++) blockFor(10);
      const r = { dead: hasExited(c.pid!), exitCodeBefore: c.exitCode, sent: c.kill(), killed: c.killed };
      const [code, signal] = await once(c, 'exit');
      return { ...r, code, signal, killAfterExit: c.kill() };
    },
    (o) => expect(o).toEqual({ dead: true, exitCodeBefore: null, sent: true, killed: true, code: 0, signal: null, killAfterExit: false }),
  );

  both(
    "a paused stdout that has a 'data' listener is resumed at exit, so 'close' comes",
    async (cp) => {
      const c = cp.spawn('sh', ['-c', 'echo out']);
      let data = '';
      c.stdout!.on('data', (d) => (data += d));
      c.stdout!.pause();
      const ev = await withDeadline(events(c), 5000);
      return { ev, data };
    },
    (o) => expect(o).toEqual({ ev: [['spawn'], ['exit', 0, null], ['close', 0, null]], data: 'out\n' }),
  );

  both(
    "unpipe() leaves stdout paused with a 'data' listener: still resumed at exit",
    async (cp) => {
      const c = cp.spawn('sh', ['-c', 'echo out']);
      const sink = new Writable({ write: (_c, _e, cb) => cb() });
      c.stdout!.pipe(sink);
      c.stdout!.unpipe(sink);
      c.stdout!.on('data', () => {});
      c.stdout!.pause();
      return withDeadline(events(c), 5000);
    },
    (o) => expect(o).toEqual([['spawn'], ['exit', 0, null], ['close', 0, null]]),
  );

  both(
    "'exit' never comes in the tick of 'spawn': await once(c, 'spawn') then once(c, 'close') always settles",
    async (cp) => {
      let done = 0;
      for (let round = 0; round < 40; round++) {
        // Several spawns in one tick: a later one must not deliver an earlier one's exit synchronously.
        const cs = [0, 1, 2, 3].map(() => cp.spawn('true', [], { stdio: 'ignore' }));
        for (const c of cs) spawned.push(c);
        const r = await withDeadline(
          Promise.all(
            cs.map(async (c) => {
              await once(c, 'spawn');
              await once(c, 'close');
            }),
          ),
          5000,
        );
        if (r !== '<deadline>') done++;
      }
      return done;
    },
    (o) => expect(o).toBe(40),
  );

  it("clonefd: 'exit' waits for output already written: a reader that starts on stdout after stderr ended loses nothing (100 runs)", async () => {
    let lost = 0;
    for (let i = 0; i < 100; i++) {
      const c = ours.spawn('sh', ['-c', 'echo out; echo err >&2']);
      const closed = once(c, 'close');
      const err = await collect(c.stderr);
      const out = await collect(c.stdout);
      await closed;
      if (out !== 'out\n' || err !== 'err\n') lost++;
    }
    expect(lost).toBe(0);
  }, TEST_TIMEOUT_MS);
});

describe('a throwing exit listener, under node:test', () => {
  // The rethrow happens inside the child's async context, so node:test
  // blames the test that spawned it (on Node 24 the runner hung otherwise).
  const tap = (engine: string, mod: string) => {
    const r = node.spawnSync(process.execPath, ['--test-reporter=tap', path.join(__dirname, 'fixtures', 'node-test-exit-throw.js')], {
      env: { ...process.env, CP: mod, CLONEFD_ENGINE: engine, NODE_OPTIONS: '' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    return { signal: r.signal, results: r.stdout.split('\n').filter((l) => /^(not )?ok \d/.test(l)) };
  };
  it.each(['helper', 'direct'])('the %s engine blames the spawner, as Node does', (engine) => {
    const expected = tap(engine, 'node:child_process');
    expect(expected).toEqual({ signal: null, results: ['not ok 1 - spawner', 'ok 2 - bystander'] });
    expect(tap(engine, path.resolve(__dirname, '..', 'lib', 'child_process.js'))).toEqual(expected);
  }, TEST_TIMEOUT_MS);
});

describe('streams given as stdio belong to the child', () => {
  both(
    'a | b | c built from spawn, stdout streams passed on as stdin: every byte arrives (20 runs)',
    async (cp) => {
      const results: (string | null)[] = [];
      for (let i = 0; i < 20; i++) {
        const a = cp.spawn('sh', ['-c', 'seq 1 2000; sleep 0.05; seq 2001 4000']);
        const b = cp.spawn('cat', [], { stdio: [a.stdout!, 'pipe', 'pipe'] });
        const c = cp.spawn('wc', ['-l'], { stdio: [b.stdout!, 'pipe', 'pipe'] });
        spawned.push(a, b, c);
        // a's and b's stdout are the next child's now: they never end here, so
        // a and b never 'close' (as in Node); their 'exit' comes.
        const ends = Promise.all([once(a, 'exit'), once(b, 'exit'), once(c, 'close')]);
        const out = await withDeadline(collect(c.stdout), 10_000);
        await withDeadline(ends, 10_000);
        a.stdout!.destroy();
        b.stdout!.destroy();
        results.push(out === '<deadline>' ? '<deadline>' : (out ?? '').trim());
      }
      return [...new Set(results)];
    },
    (o) => expect(o).toEqual(['4000']),
  );

  both(
    "the parent stops reading a stream it hands over: no 'data' for it here, and it is left out of the exit flush",
    async (cp) => {
      const a = cp.spawn('sh', ['-c', 'echo one; sleep 0.2; echo two']);
      const b = cp.spawn('cat', [], { stdio: [a.stdout!, 'pipe', 'pipe'] });
      let stolen = '';
      const bClosed = once(b, 'close');
      // A listener added later must not make the parent compete with cat.
      const [bOut] = await Promise.all([collect(b.stdout), once(a, 'exit').then(() => a.stdout!.on('data', (d) => (stolen += d)))]);
      await bClosed;
      a.stdout!.destroy();
      return { bOut, stolen, flowing: a.stdout!.readableFlowing };
    },
    (o) => expect(o.bOut).toBe('one\ntwo\n'),
  );
});

describe('stdin at exit', () => {
  both(
    "writing on to a child that exits (head -n 1): stdin fails with EPIPE before 'exit', never a premature close (20 runs)",
    async (cp) => {
      const tally = new Map<string, number>();
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          const c = cp.spawn('head', ['-n', '1'], { stdio: ['pipe', 'ignore', 'ignore'] });
          spawned.push(c);
          const ev: string[] = [];
          const line = Buffer.from('y\n'.repeat(4096));
          const pump = () => {
            while (!c.stdin!.destroyed && c.stdin!.write(line));
          };
          c.stdin!.on('drain', pump);
          c.stdin!.on('error', (e: NodeJS.ErrnoException) => ev.push(`error:${e.code}`));
          c.on('exit', () => ev.push('exit'));
          const closed = once(c, 'close');
          pump();
          const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => finished(c.stdin!, (e) => resolve(e ?? undefined)));
          await closed;
          const key = `finished:${err?.code ?? 'ok'} errorBeforeExit:${ev.indexOf('error:EPIPE') >= 0 && ev.indexOf('error:EPIPE') < ev.indexOf('exit')}`;
          tally.set(key, (tally.get(key) ?? 0) + 1);
        }),
      );
      return Object.fromEntries(tally);
    },
    (o) => expect(o).toEqual({ 'finished:EPIPE errorBeforeExit:true': 20 }),
  );
});

describe('process.stdin given as stdio', () => {
  // Node shares it as fd 0 (it has an fd of its own) and goes on reading it.
  both(
    'the parent still reads its stdin after the child ran',
    (cp) => {
      const mod = cp === node ? 'node:child_process' : path.resolve(__dirname, '..', 'lib', 'child_process.js');
      const script = `
        const cp = require(${JSON.stringify(mod)});
        const rl = require('node:readline').createInterface({ input: process.stdin });
        const lines = [];
        rl.on('line', (l) => lines.push(l));
        rl.on('close', () => console.log(JSON.stringify(lines)));
        cp.spawn('sh', ['-c', 'exit 0'], { stdio: [process.stdin, 'ignore', 'ignore'] });
        cp.spawn('/nonexistent/program', [], { stdio: [process.stdin, 'ignore', 'ignore'] }).on('error', () => {});`;
      const r = node.spawnSync(process.execPath, ['-e', script], { input: 'one\ntwo\n', encoding: 'utf8', timeout: 20_000 });
      return { stdout: r.stdout, status: r.status };
    },
    (o) => expect(o).toEqual({ stdout: '["one","two"]\n', status: 0 }),
  );
});

describe('spawnSync: a skipped stdio entry moves the later ones down, with their own direction', () => {
  for (const [label, stdio] of [
    ["['x', 'pipe', 'pipe']", () => ['x', 'pipe', 'pipe']],
    ["[Buffer, 'pipe']", () => [Buffer.from('y'), 'pipe']],
    ["['pipe', 'x', 'pipe', 'pipe']", () => ['pipe', 'x', 'pipe', 'pipe']],
  ] as const) {
    both(
      `stdio ${label}: the outputs as Node has them`,
      (cp) => {
        const r = cp.spawnSync('sh', ['-c', 'echo a; echo b >&2'], { stdio: stdio() as node.StdioOptions });
        return { output: show(r.output), status: r.status, error: (r.error as NodeJS.ErrnoException | undefined)?.code };
      },
      (o) => expect(o.status).toBe(0),
    );
  }
});

describe('ChildProcess#spawn(options) twice', () => {
  it('a second spawn on one ChildProcess is refused with a coded error (Node aborts in libuv)', async () => {
    const c = new (ours.ChildProcess as unknown as new () => node.ChildProcess & { spawn(o: unknown): number })();
    const opts = () => ({ file: 'true', args: ['true'], envPairs: [], stdio: 'ignore' });
    expect(c.spawn(opts())).toBe(0);
    expect(() => c.spawn(opts())).toThrow(expect.objectContaining({ code: 'ERR_CLONEFD_ALREADY_SPAWNED' }));
    await once(c, 'exit');
    const d = ours.spawn('true', [], { stdio: 'ignore' }) as unknown as { spawn(o: unknown): number } & node.ChildProcess;
    expect(() => d.spawn(opts())).toThrow(expect.objectContaining({ code: 'ERR_CLONEFD_ALREADY_SPAWNED' }));
    await once(d, 'exit');
  });
});

describe('exec buffers as Node does', () => {
  both(
    "encoding 'buffer' and then child.stdout.setEncoding('utf8'): strings, joined, counted in bytes of that encoding",
    async (cp) => {
      const r = await new Promise((resolve) => {
        const c = cp.exec('printf "h\\303\\251llo"', { encoding: 'buffer' }, (err, stdout, stderr) =>
          resolve({ err: err && errObs(err), stdout: show(stdout), stdoutType: typeof stdout, stderr: show(stderr) }),
        );
        c.stdout!.setEncoding('utf8');
      });
      return r;
    },
    (o) => expect(o).toMatchObject({ err: null, stdout: 'héllo', stdoutType: 'string' }),
  );

  both(
    'maxBuffer with setEncoding: cut in characters once the bytes pass it',
    async (cp) =>
      new Promise((resolve) => {
        const c = cp.exec('printf "\\303\\251\\303\\251\\303\\251"', { encoding: 'buffer', maxBuffer: 3 }, (err, stdout) =>
          resolve({ code: (err as NodeJS.ErrnoException | null)?.code, stdout: show(stdout) }),
        );
        c.stdout!.setEncoding('utf8');
      }),
    (o) => expect(o.code).toBe('ERR_CHILD_PROCESS_STDIO_MAXBUFFER'),
  );
});

describe('spawnSync maxBuffer keeps the read that passed it, as Node', () => {
  both(
    'the output is not cut at maxBuffer bytes',
    (cp) => {
      const r = cp.spawnSync('sh', ['-c', 'printf 0123456789; sleep 5'], { maxBuffer: 4 });
      return { error: (r.error as NodeJS.ErrnoException | undefined)?.code, stdout: show(r.stdout), signal: r.signal };
    },
    (o) => expect(o).toEqual({ error: 'ENOBUFS', stdout: { Buffer: '0123456789' }, signal: 'SIGTERM' }),
  );

  both(
    'execSync: the error carries the whole read',
    (cp) => syncThrow(() => cp.execSync('printf abcdefgh; sleep 5', { maxBuffer: 2, stdio: 'pipe' })),
    (o) => expect(o.threw.stdout).toEqual({ Buffer: 'abcdefgh' }),
  );
});

describe('an fd the user closed by hand', () => {
  it('is not closed again on garbage collection once its number was reused (both engines)', () => {
    const script = `
      const fs = require('node:fs');
      const { spawn } = require(${JSON.stringify(path.resolve(__dirname, '..', 'lib', 'index.js'))});
      (async () => {
        const out = [];
        for (const engine of ['helper', 'direct']) {
          let c = spawn('true', [], { stdio: 'ignore', engine });
          const fd = c.fd;
          await c.exited;
          fs.closeSync(fd);
          // Take the number back (lower free numbers go first).
          const extra = [];
          let reused = -1;
          for (let i = 0; i < 256 && reused < 0; i++) { const f = fs.openSync('/dev/null', 'r'); if (f === fd) reused = f; else extra.push(f); }
          for (const f of extra) fs.closeSync(f);
          c = null;
          for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setImmediate(r)); }
          let alive = true;
          try { fs.fstatSync(reused); } catch { alive = false; }
          out.push({ engine, sameNumber: reused === fd, alive });
          if (alive) fs.closeSync(reused);
        }
        console.log(JSON.stringify(out));
      })();`;
    const r = node.spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual([
      { engine: 'helper', sameNumber: true, alive: true },
      { engine: 'direct', sameNumber: true, alive: true },
    ]);
  });
});
