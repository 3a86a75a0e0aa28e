// IPC in the drop-in (fork(), 'ipc' in stdio, send()/disconnect(), handle
// passing), differential against node:child_process.
//
// As in test/dropin.test.ts, every scenario is a function of a module shaped
// like `node:child_process` that returns a plain observation; `both()` runs
// it on Node's module and on clonefd's (../src/child_process), concurrently
// (nothing observed depends on timing), makes the absolute assertions of
// `check` on Node's observation (so a scenario that observes nothing cannot
// pass), asserts the two are equal, and checks clonefd's too. The
// children are plain Node scripts (test/fixtures/ipc/*.js, CommonJS), so the
// other end of every channel is Node's own IPC: what is compared is how the
// parent's side speaks Node's wire protocol.
//
// Observations are built from what a user can see: events in order
// (['message', describe(value), handle class]), return values, callback
// arguments, errors (class, code, message), exit codes, what the child
// reports it saw. Values cross as describe() trees (fixtures/ipc/describe.js),
// so a Buffer is not a Uint8Array and -0 is not 0.
//
// Node's own orders that these tests rely on (measured on Node 20.20):
//  - a child that writes messages and then exits: the parent receives all of
//    them, then 'disconnect' (the channel's EOF), then 'exit', then 'close';
//  - the parent's disconnect(): 'disconnect', 'exit', and then NO 'close' in
//    Node (the IPC channel counts among the closes 'close' waits for, and a
//    channel the parent closed never reports it). A drop-in that does emit
//    'close' there, after 'exit', is allowed (`extraCloseAllowed`).
//
// 'corners' are Node behaviours found by probing (a handle send's callback
// timing, EOF after a postponed disconnect(), look-alike handles); the last
// describe pins the differences README.md documents, each side on its own.
//
// CLONEFD_IPC_TEST_AGAINST=node runs every scenario against Node twice
// (node vs node): the tests must pass that way, which shows they are
// deterministic. Some scenarios need lib/ (built by tsc, as `npm test`'s
// pretest does).
import * as node from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withDeadline as deadline } from './helpers';

type CP = typeof import('node:child_process');
type ChildProcess = node.ChildProcess;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

const againstNode = process.env.CLONEFD_IPC_TEST_AGAINST === 'node';
const ours = (againstNode ? node : await import('../src/child_process')) as unknown as CP;

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { describe: describeValue, sha } = require('./fixtures/ipc/describe.js') as {
  describe: (v: unknown) => unknown;
  sha: (v: string | Buffer) => string;
};

const FIX = path.join(__dirname, 'fixtures', 'ipc');
const CHILD = path.join(FIX, 'child.js');
const HANDLES = path.join(FIX, 'handles.js');
const RAW = path.join(FIX, 'raw-writer.js');
const PARENT_UNREF = path.join(FIX, 'parent-unref.js');
const LIB = path.resolve(__dirname, '..', 'lib', 'child_process.js');

const DEADLINE_MS = 15_000;
const TEST_TIMEOUT_MS = 45_000;
/** How long after 'exit' (and the end of stdout/stderr) a 'close' that Node never emits is waited for. */
const CLOSE_GRACE_MS = 300;

let dir = '';
const children: ChildProcess[] = [];
const cleanups: (() => void)[] = [];

beforeAll(() => {
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'clonefd-ipc-')));
  // Written once, here: Node's run and ours go at once, and a rewrite
  // (truncate, then write) while the other side's sh reads it ran an empty
  // script (CI: Node's observation hit its deadline).
  const wrapper = path.join(dir, 'node-wrapper.sh');
  writeFileSync(wrapper, `#!/bin/sh\nWRAPPED=yes exec ${JSON.stringify(process.execPath)} "$@"\n`);
  chmodSync(wrapper, 0o755);
});

afterEach(() => {
  // A scenario that failed or hit its deadline may leave a child, a server or a socket behind.
  for (const c of children.splice(0)) {
    try {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    } catch {
      // not ours to worry about
    }
  }
  for (const f of cleanups.splice(0)) {
    try {
      f();
    } catch {
      // already closed
    }
  }
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- helpers

function errClass(e: unknown): string {
  if (e instanceof RangeError) return 'RangeError';
  if (e instanceof TypeError) return 'TypeError';
  if (e instanceof Error) return 'Error';
  return typeof e;
}

/** What a caller sees of an error, except the stack. */
function errObs(e: unknown): Record<string, unknown> {
  if (!(e instanceof Error)) return { notAnError: describeValue(e) };
  const r = e as unknown as Record<string, unknown>;
  const o: Record<string, unknown> = { class: errClass(e), name: e.name, code: r.code, message: e.message };
  for (const k of ['errno', 'syscall', 'path', 'spawnargs']) if (k in r) o[k] = r[k];
  return o;
}

/** Calls f; its return value or what it threw, as an observation. */
function attempt(f: () => unknown): Record<string, unknown> {
  try {
    return { returned: describeValue(f()) };
  } catch (e) {
    return { threw: errObs(e) };
  }
}

const withDeadline = <T>(p: Promise<T>, ms = DEADLINE_MS) => deadline(p, ms);

async function observe(cp: CP, scenario: (cp: CP) => unknown): Promise<unknown> {
  try {
    return await withDeadline(Promise.resolve().then(() => scenario(cp)));
  } catch (e) {
    return { scenarioThrew: errObs(e) };
  }
}

interface BothOptions {
  /** Node never emits 'close' after the parent's disconnect(); the drop-in may, as the last event. */
  extraCloseAllowed?: boolean;
}

/** Drops a final ['close', ...] from every `events` array in ours when Node's has none there. */
function dropExtraClose(ours: Any, expected: Any): Any {
  if (Array.isArray(ours) || ours === null || typeof ours !== 'object' || expected === null || typeof expected !== 'object') return ours;
  const out: Any = {};
  for (const [k, v] of Object.entries(ours)) {
    const e = (expected as Any)[k];
    if (k === 'events' && Array.isArray(v) && Array.isArray(e)) {
      // Events are ['close', code, signal] or, folded, 'close'.
      const isClose = (x: Any) => x === 'close' || (Array.isArray(x) && x[0] === 'close');
      out[k] = !e.some(isClose) && v.length > 0 && isClose(v[v.length - 1]) ? v.slice(0, -1) : v;
    } else {
      out[k] = dropExtraClose(v, e);
    }
  }
  return out;
}

/**
 * Runs `scenario` on Node, checks Node's observation, runs it on clonefd,
 * and asserts the observations are equal (then checks ours too).
 */
function both(name: string, scenario: (cp: CP) => unknown, check: (obs: Any) => void = () => {}, opts: BothOptions = {}): void {
  it(
    name,
    async () => {
      // Concurrently: the observations do not depend on timing, and the file stays within its time.
      const [expected, observed] = await Promise.all([observe(node, scenario), observe(ours, scenario)]);
      checked('node', check, expected);
      const actual = opts.extraCloseAllowed ? dropExtraClose(observed, expected) : observed;
      expect(actual, `clonefd vs node: ${name}`).toEqual(expected);
      checked('clonefd', check, actual);
    },
    TEST_TIMEOUT_MS,
  );
}

/** Runs the absolute assertions; a failure shows the whole observation. */
function checked(who: string, check: (obs: Any) => void, obs: unknown): void {
  try {
    check(obs);
  } catch (e) {
    if (e instanceof Error) e.message += `\n${who}'s observation: ${inspect(obs, { depth: 8, maxStringLength: 400, maxArrayLength: 60 })}`;
    throw e;
  }
}

/** Tracks a child for cleanup. */
function track<T extends ChildProcess>(c: T): T {
  children.push(c);
  return c;
}

function later(f: () => void): void {
  cleanups.push(f);
}

type Event = unknown[];

interface Recorder {
  ev: Event[];
  /** Settles at 'close'. */
  closed: Promise<void>;
  /** Settles at 'exit' (or at an 'error' when the spawn failed). */
  exited: Promise<void>;
  /** Settles with the next message (after those already taken) that `pred` accepts. */
  next(pred?: (m: Any) => boolean): Promise<Any>;
  /** stdout and stderr so far. */
  out(): { stdout: string | null; stderr: string | null };
  /** Settles once stdout and stderr have ended (at once when there are none). */
  ended: Promise<void>;
}

/**
 * Records the child's events from now on, before any can fire: ['spawn'],
 * ['message', describe(m), handle class], ['disconnect'], ['exit', code,
 * signal], ['error', errObs], ['close', code, signal]; and its stdout/stderr.
 */
function record(c: ChildProcess, opts: { messages?: boolean } = {}): Recorder {
  track(c);
  const ev: Event[] = [];
  const queue: Any[] = [];
  const waiters: { pred: (m: Any) => boolean; resolve: (m: Any) => void }[] = [];
  let onExit!: () => void;
  let onClose!: () => void;
  const exited = new Promise<void>((r) => (onExit = r));
  const closed = new Promise<void>((r) => (onClose = r));
  c.on('spawn', () => ev.push(['spawn']));
  c.on('exit', (code, signal) => {
    ev.push(['exit', code, signal]);
    onExit();
  });
  c.on('error', (e) => {
    ev.push(['error', errObs(e)]);
    if (c.pid === undefined) onExit();
  });
  c.on('disconnect', () => ev.push(['disconnect']));
  c.on('close', (code, signal) => {
    ev.push(['close', code, signal]);
    onClose();
  });
  if (opts.messages !== false) {
    c.on('message', (m: Any, handle: Any) => {
      ev.push(['message', describeValue(m), handleKind(handle)]);
      const i = waiters.findIndex((w) => w.pred(m));
      if (i >= 0) waiters.splice(i, 1)[0].resolve(m);
      else queue.push(m);
    });
  }
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const streamEnded = (s: NodeJS.ReadableStream | null, into: Buffer[]) =>
    new Promise<void>((resolve) => {
      if (!s) return resolve();
      s.on('data', (d: Buffer) => into.push(d));
      s.on('end', resolve);
      s.on('close', resolve);
      s.on('error', resolve);
    });
  const ended = Promise.all([streamEnded(c.stdout, stdout), streamEnded(c.stderr, stderr)]).then(() => undefined);
  return {
    ev,
    exited,
    closed,
    ended,
    next(pred = () => true) {
      const i = queue.findIndex(pred);
      if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0]);
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
    out: () => ({
      stdout: c.stdout ? Buffer.concat(stdout).toString('utf8') : null,
      stderr: c.stderr ? Buffer.concat(stderr).toString('utf8') : null,
    }),
  };
}

function handleKind(h: unknown): string {
  if (h === undefined) return 'undefined';
  if (h === null) return 'null';
  return (h as object).constructor?.name ?? typeof h;
}

/** Waits for 'exit' and the end of the output, then CLOSE_GRACE_MS for a 'close' (which Node may never emit). */
async function settle(r: Recorder): Promise<void> {
  await r.exited;
  await r.ended;
  await Promise.race([r.closed, sleep(CLOSE_GRACE_MS)]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The messages among the events, as described. */
const messagesOf = (ev: Event[]) => ev.filter((e) => e[0] === 'message').map((e) => e[1]);
/** The event names, messages folded to 'message'. */
const namesOf = (ev: Event[]) => ev.map((e) => e[0]);
/**
 * A child whose channel ends because it exits: 'disconnect' (the channel's
 * EOF) and 'exit' race in Node itself (CI saw Node's own child give 'exit'
 * first), so either order, both after 'spawn' and before 'close'.
 */
function expectChannelEndsWithExit(names: unknown[]): void {
  expect(names).toHaveLength(4);
  expect(names[0]).toBe('spawn');
  expect(names[3]).toBe('close');
  expect(names.slice(1, 3).map(String).sort()).toEqual(['disconnect', 'exit']);
}

/**
 * The same events with that race's two in one order ('disconnect' before
 * 'exit'), so Node's observation and ours compare equal whichever came
 * first in each; expectChannelEndsWithExit still checks what they are.
 */
function foldExitRace<T>(events: T[]): T[] {
  const name = (e: T) => (Array.isArray(e) ? e[0] : e);
  const out = events.slice();
  for (let i = 0; i + 1 < out.length; i++) {
    if (name(out[i]) === 'exit' && name(out[i + 1]) === 'disconnect') [out[i], out[i + 1]] = [out[i + 1], out[i]];
  }
  return out;
}

function forkChild(cp: CP, args: string[] = [], options: node.ForkOptions = {}): ChildProcess {
  return cp.fork(CHILD, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], ...options });
}

/** Lets the child end itself: it calls process.disconnect() and so exits; waits for 'close'. */
async function finish(c: ChildProcess, r: Recorder): Promise<void> {
  if (c.connected) c.send({ op: 'disconnect' });
  await withDeadline(r.closed, 10_000);
}

function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- fork: messages

describe('fork(): messages both ways', () => {
  const jsonValues = ['str', '', 42, 0, -1.5, 1e300, true, false, null, [1, 'a', null, [[]]], { a: { b: [1, { c: 'd' }] } }, 'héllo €𝄞 \u0000 \n "q" \\', { '': 1, 'ключ': 'значение' }];

  both(
    'json: every JSON type echoes back as sent, in order; spawn first; the child ends itself: disconnect, exit, close',
    async (cp) => {
      const c = forkChild(cp, ['echo']);
      const r = record(c);
      const returns = jsonValues.map((v) => c.send(v as Any));
      for (let i = 0; i < jsonValues.length; i++) await r.next();
      await finish(c, r);
      return { returns, events: r.ev, ...r.out(), connected: c.connected, exitCode: c.exitCode };
    },
    (o) => {
      expect(o.returns).toEqual(jsonValues.map(() => true));
      expect(messagesOf(o.events)).toEqual(jsonValues.map((v) => describeValue(v)));
      expect(namesOf(o.events)).toEqual(['spawn', ...jsonValues.map(() => 'message'), 'disconnect', 'exit', 'close']);
      expect(o).toMatchObject({ stdout: '', stderr: '', connected: false, exitCode: 0 });
    },
  );

  both(
    'json: what JSON.stringify changes (undefined dropped, NaN null, Date a string, Buffer {type,data}, Map {}), as the child sees it and back',
    async (cp) => {
      const c = forkChild(cp, ['echo']);
      const r = record(c);
      const value = { u: undefined, n: NaN, inf: -Infinity, negZero: -0, d: new Date(Date.UTC(2020, 1, 2, 3, 4, 5, 6)), b: Buffer.from('hi'), m: new Map([[1, 2]]), s: new Set([1]), arr: [undefined, () => 1], big: { toJSON: () => 'tojson' } };
      c.send({ op: 'describe', value });
      const reply = await r.next();
      await finish(c, r);
      return { seen: reply.seen, back: describeValue(reply.value), events: namesOf(r.ev) };
    },
    (o) => {
      expect(o.seen).toEqual(
        describeValue({ n: null, inf: null, negZero: 0, d: '2020-02-02T03:04:05.006Z', b: { type: 'Buffer', data: [104, 105] }, m: {}, s: {}, arr: [null, null], big: 'tojson' }),
      );
      expect(o.back).toEqual(o.seen);
    },
  );

  const advancedValue = () => {
    const circular: Any = { name: 'loop' };
    circular.self = circular;
    const sparse = [1, , 3]; // eslint-disable-line no-sparse-arrays
    return {
      buf: Buffer.from([0, 1, 2, 255]),
      emptyBuf: Buffer.alloc(0),
      u8: new Uint8Array([1, 2, 3]),
      i16: new Int16Array([-1, 2, -3]),
      f64: new Float64Array([0.5, -0, NaN]),
      big64: new BigInt64Array([-(2n ** 63n), 1n]),
      u8c: new Uint8ClampedArray([300 as number]),
      dv: new DataView(new Uint8Array([9, 8, 7]).buffer),
      ab: new Uint8Array([4, 5]).buffer,
      sub: new Uint8Array([10, 11, 12, 13]).subarray(1, 3),
      map: new Map<unknown, unknown>([['k', 1], [2, { deep: new Map([[true, [1n]]]) }]]),
      set: new Set([1, 'two', 3n]),
      big: 12345678901234567890123456789n,
      negBig: -1n,
      date: new Date(Date.UTC(1999, 11, 31, 23, 59, 59, 999)),
      badDate: new Date(NaN),
      re: /a+b/gi,
      negZero: -0,
      nan: NaN,
      inf: Infinity,
      undef: undefined,
      nul: null,
      sparse,
      nested: { a: [{ b: [{ c: new Map([['d', new Set([new Date(0)])]]) }] }] },
      circular,
      err: new RangeError('bad range'),
      str: 'multi €𝄞 byte',
      boxed: Object(1) as number,
    };
  };

  both(
    "advanced: Buffers, typed arrays, DataView, ArrayBuffer, Map, Set, BigInt, Date, RegExp, -0/NaN, undefined, sparse and circular structures, Errors: what the child sees and what comes back",
    async (cp) => {
      const c = forkChild(cp, ['echo'], { serialization: 'advanced' });
      const r = record(c);
      const value = advancedValue();
      const ret = c.send({ op: 'describe', value });
      const reply = await r.next();
      // Top-level values of every kind too, each echoed; a top-level BigInt is refused even here (ERR_INVALID_ARG_TYPE).
      const topBigInt = attempt(() => c.send(1n as Any));
      const tops = [new Map([[1, 1]]), Buffer.from('x'), new Date(5), -0, 'str', [undefined], new Uint16Array([65535]), null];
      for (const t of tops) c.send(t as Any);
      const echoed = [];
      for (let i = 0; i < tops.length; i++) echoed.push(describeValue(await r.next()));
      await finish(c, r);
      return { ret, seen: reply.seen, back: describeValue(reply.value), topBigInt, echoed, events: namesOf(r.ev), ...r.out() };
    },
    (o) => {
      expect(o.ret).toBe(true);
      // Node's advanced serialization keeps every one of these as it was (a Buffer arrives as a Uint8Array? see the observation: compared as Node has it).
      const sent = advancedValue();
      const seen = o.seen;
      expect(seen.Object).toBe('Object');
      const get = (k: string) => seen.entries.find((e: Any) => e[0] === k)?.[1];
      expect(get('big')).toEqual({ bigint: sent.big.toString() });
      expect(get('map')).toEqual(describeValue(sent.map));
      expect(get('set')).toEqual(describeValue(sent.set));
      expect(get('date')).toEqual({ Date: '1999-12-31T23:59:59.999Z' });
      expect(get('negZero')).toEqual({ number: '-0' });
      expect(get('undef')).toEqual({ undefined: true });
      expect(get('circular')).toMatchObject({ Object: 'Object' });
      expect(get('i16')).toEqual(describeValue(sent.i16));
      expect(get('big64')).toEqual(describeValue(sent.big64));
      expect(o.back).toEqual(o.seen);
      expect(o.topBigInt.threw).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      expect(o.echoed).toHaveLength(8);
      expect(o.echoed[2]).toEqual({ Date: '1970-01-01T00:00:00.005Z' });
      expect(o.echoed[3]).toEqual({ number: '-0' });
      expect(o.stderr).toBe('');
    },
  );

  both(
    'advanced and json: unserializable messages throw from send() synchronously (DataCloneError, BigInt and circular JSON TypeErrors), and the channel still works after',
    async (cp) => {
      const adv = forkChild(cp, ['echo'], { serialization: 'advanced' });
      const ra = record(adv);
      const js = forkChild(cp, ['echo']);
      const rj = record(js);
      const circular: Any = {};
      circular.me = circular;
      const o = {
        advFunction: attempt(() => adv.send({ f() {} })),
        advSymbolInside: attempt(() => adv.send({ s: Symbol('s') })),
        advWeakMap: attempt(() => adv.send({ w: new WeakMap() })),
        jsonBigInt: attempt(() => js.send({ b: 1n })),
        jsonCircular: attempt(() => js.send(circular)),
        jsonToJSONThrows: attempt(() =>
          js.send({
            toJSON() {
              throw new Error('from toJSON');
            },
          }),
        ),
      };
      adv.send('adv-after');
      js.send('json-after');
      const after = [await ra.next(), await rj.next()];
      await Promise.all([finish(adv, ra), finish(js, rj)]);
      return { ...o, after, advEvents: namesOf(ra.ev), jsonEvents: namesOf(rj.ev) };
    },
    (o) => {
      expect(o.advFunction.threw.message).toMatch(/could not be cloned/);
      expect(o.advWeakMap.threw.message).toMatch(/could not be cloned/);
      expect(o.jsonBigInt.threw).toMatchObject({ class: 'TypeError' });
      expect(o.jsonCircular.threw).toMatchObject({ class: 'TypeError' });
      expect(o.jsonToJSONThrows.threw).toMatchObject({ message: 'from toJSON' });
      expect(o.after).toEqual(['adv-after', 'json-after']);
    },
  );

  const mixed = (bytes: number) => 'aé€𝄞'.repeat(Math.ceil(bytes / 10)); // 1+2+3+4 bytes a repeat

  both(
    'json: 1 MiB and 10 MiB strings of 1-4 byte characters (split across reads) reach the child and come back intact; send() of 10 MiB returns false (backpressure)',
    async (cp) => {
      const c = forkChild(cp, ['echo']);
      const r = record(c);
      const out: Any = {};
      for (const [name, bytes] of [['1MiB', 1 << 20], ['10MiB', 10 << 20]] as const) {
        const s = mixed(bytes);
        let cbErr: unknown = 'not called';
        const ret = c.send({ op: 'digest', value: s }, (e) => (cbErr = e));
        const digest = await r.next();
        c.send(s);
        const back = (await r.next()) as string;
        out[name] = { ret, cbErr, digest, back: { length: back.length, sha256: sha(back) }, expected: { length: s.length, bytes: Buffer.byteLength(s), sha256: sha(s) } };
      }
      await finish(c, r);
      return { ...out, events: namesOf(r.ev), ...r.out() };
    },
    (o) => {
      for (const k of ['1MiB', '10MiB']) {
        expect(o[k].digest).toEqual(o[k].expected);
        expect(o[k].back).toEqual({ length: o[k].expected.length, sha256: o[k].expected.sha256 });
        expect(o[k].cbErr).toBe(null);
      }
      expect(o['10MiB'].ret).toBe(false);
      expect(o.stderr).toBe('');
    },
  );

  both(
    'advanced: 1 MiB and 10 MiB Buffers and strings come back intact',
    async (cp) => {
      const c = forkChild(cp, ['echo'], { serialization: 'advanced' });
      const r = record(c);
      const out: Any = {};
      for (const [name, bytes] of [['1MiB', 1 << 20], ['10MiB', 10 << 20]] as const) {
        const b = Buffer.alloc(bytes);
        for (let i = 0; i < bytes; i += 4096) b[i] = (i / 4096) & 0xff;
        const s = mixed(bytes);
        const ret = c.send({ b, s });
        const back = await r.next();
        out[name] = { ret, back: { b: describeValue(back.b), s: describeValue(back.s) }, expected: { b: describeValue(b), s: describeValue(s) } };
      }
      await finish(c, r);
      return { ...out, events: namesOf(r.ev), ...r.out() };
    },
    (o) => {
      for (const k of ['1MiB', '10MiB']) expect(o[k].back.s).toEqual(o[k].expected.s);
      expect(o['10MiB'].ret).toBe(false);
      expect(o.stderr).toBe('');
    },
  );

  for (const serialization of ['json', 'advanced'] as const) {
    both(
      `${serialization}: a message written a few bytes at a time (multibyte characters and the length prefix split across reads) is parsed whole`,
      async (cp) => {
        const c = cp.spawn(process.execPath, [RAW, serialization], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization });
        const r = record(c);
        await withDeadline(r.closed, 10_000);
        return { events: r.ev, ...r.out() };
      },
      (o) => {
        const m = describeValue({ text: 'a€b𝄞c\u00e9', n: 1 });
        expect(o.events).toEqual([['spawn'], ['message', m, 'undefined'], ['message', m, 'undefined'], ['disconnect'], ['exit', 0, null], ['close', 0, null]]);
      },
    );
  }

  both(
    'messages that arrive before a "message" listener exists are kept and delivered, in order, when one is added',
    async (cp) => {
      const c = forkChild(cp, ['hello']);
      const r = record(c, { messages: false });
      await sleep(600); // the child has sent its three by now
      const got: unknown[] = [];
      const three = new Promise<void>((resolve) =>
        c.on('message', (m) => {
          got.push(describeValue(m));
          if (got.length === 3) resolve();
        }),
      );
      await withDeadline(three, 5000);
      await finish(c, r);
      return { got, events: foldExitRace(namesOf(r.ev)) };
    },
    (o) => {
      expect(o.got).toEqual([describeValue('hello-1'), describeValue({ n: 2 }), describeValue([3])]);
      expectChannelEndsWithExit(o.events);
    },
  );
});

// ---------------------------------------------------------------- order at the end

describe('the end of a child: messages, disconnect, exit, close', () => {
  both(
    'a child that sends 50 messages and calls process.exit(3) at once: all 50, then disconnect, exit 3, close 3',
    async (cp) => {
      const c = forkChild(cp, ['exit-after-burst', '50', '3']);
      const r = record(c);
      await withDeadline(r.closed, 10_000);
      return { events: r.ev };
    },
    (o) => {
      const msgs = Array.from({ length: 50 }, (_, i) => ['message', describeValue({ i }), 'undefined']);
      expect(o.events).toEqual([['spawn'], ...msgs, ['disconnect'], ['exit', 3, null], ['close', 3, null]]);
    },
  );

  for (const [n, size] of [[2000, 100], [20, 100_000]] as const) {
    both(
      `a child that sends ${n} messages of ${size} bytes and exits in the last one's callback: every message before 'disconnect', then exit, close`,
      async (cp) => {
        const c = forkChild(cp, ['echo']);
        const r = record(c, { messages: false });
        const order: string[] = [];
        let count = 0;
        let bad = 0;
        c.on('message', (m: Any) => {
          if (m.i !== count) bad++;
          count++;
        });
        c.on('disconnect', () => order.push(`disconnect after ${count}`));
        c.on('exit', () => order.push(`exit after ${count}`));
        c.on('close', () => order.push(`close after ${count}`));
        c.send({ op: 'burst', n, size, then: 'exit', code: 0 });
        await withDeadline(r.closed, 10_000);
        return { order, bad, events: namesOf(r.ev) };
      },
      (o) => {
        expect(o.order).toEqual([`disconnect after ${n}`, `exit after ${n}`, `close after ${n}`]);
        expect(o.bad).toBe(0);
      },
    );
  }

  both(
    'a child that sends messages and then process.disconnect()s exits on its own: messages, disconnect, exit 0, close 0',
    async (cp) => {
      const c = forkChild(cp, ['echo']);
      const r = record(c);
      c.send({ op: 'burst', n: 5, size: 3, then: 'disconnect' });
      await withDeadline(r.closed, 10_000);
      return { events: r.ev, connected: c.connected };
    },
    (o) => {
      const msgs = Array.from({ length: 5 }, (_, i) => ['message', describeValue({ i, s: 'xxx' }), 'undefined']);
      expect(o.events).toEqual([['spawn'], ...msgs, ['disconnect'], ['exit', 0, null], ['close', 0, null]]);
      expect(o.connected).toBe(false);
    },
  );

  both(
    'a child killed with SIGKILL while connected: disconnect, exit(null, SIGKILL), close; connected false; killed true',
    async (cp) => {
      const c = forkChild(cp, ['idle']);
      const r = record(c);
      await r.next();
      const killed = c.kill('SIGKILL');
      await withDeadline(r.closed, 10_000);
      return { killed, events: r.ev, connected: c.connected, flag: c.killed, signalCode: c.signalCode };
    },
    (o) => {
      expect(o.events).toEqual([['spawn'], ['message', 'idle', 'undefined'], ['disconnect'], ['exit', null, 'SIGKILL'], ['close', null, 'SIGKILL']]);
      expect(o).toMatchObject({ killed: true, connected: false, flag: true, signalCode: 'SIGKILL' });
    },
  );
});

// ---------------------------------------------------------------- send() and disconnect()

describe('send() and disconnect(): return values, callbacks, errors', () => {
  both(
    'send() returns true; its callback is called later with null, in order; messages and callbacks interleave as in Node',
    async (cp) => {
      const c = forkChild(cp, ['echo']);
      const r = record(c);
      const log: unknown[] = [];
      for (let i = 0; i < 3; i++) {
        const ret = c.send(`m${i}`, (...args: unknown[]) => log.push(['callback', i, args.map((a) => (a instanceof Error ? errObs(a) : a))]));
        log.push(['returned', i, ret]);
      }
      const ret4 = c.send('m3', undefined, { swallowErrors: true } as Any, (e) => log.push(['callback', 3, e]));
      const ret5 = c.send('m4', null as Any, {}, (e) => log.push(['callback', 4, e]));
      log.push(['returned', 3, ret4], ['returned', 4, ret5]);
      for (let i = 0; i < 5; i++) await r.next();
      await finish(c, r);
      return { log, messages: messagesOf(r.ev) };
    },
    (o) => {
      expect(o.log.slice(0, 3)).toEqual([['returned', 0, true], ['returned', 1, true], ['returned', 2, true]]);
      expect(o.log).toContainEqual(['callback', 0, [null]]);
      expect(o.messages).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    },
  );

  both(
    'invalid arguments while connected: send(), send(undefined) ERR_MISSING_ARGS; Symbol, function, BigInt ERR_INVALID_ARG_TYPE; a non-handle ERR_INVALID_HANDLE_TYPE; options not an object ERR_INVALID_ARG_TYPE',
    async (cp) => {
      const c = forkChild(cp, ['echo']);
      const r = record(c);
      const s = c.send as Any;
      const o = {
        noArgs: attempt(() => s.call(c)),
        undef: attempt(() => c.send(undefined as Any)),
        undefWithCallback: attempt(() => c.send(undefined as Any, () => {})),
        symbol: attempt(() => c.send(Symbol('s') as Any)),
        func: attempt(() => c.send((() => 1) as Any)),
        bigint: attempt(() => c.send(1n as Any)),
        emptyObjectHandle: attempt(() => c.send('x', {} as Any)),
        stringHandle: attempt(() => c.send('x', 'handle' as Any)),
        numberHandle: attempt(() => c.send('x', 1 as Any)),
        plainStreamHandle: attempt(() => c.send('x', { _handle: {} } as Any)),
        optionsString: attempt(() => c.send('x', undefined, 'bad' as Any)),
        optionsNull: attempt(() => c.send('x', undefined, null as Any)),
        optionsArray: attempt(() => c.send('x', undefined, [] as Any)),
        optionsNumber: attempt(() => c.send('x', null as Any, 5 as Any)),
        callbackNotFunction: attempt(() => c.send('ok-1', undefined, undefined, 'nope' as Any)),
        handleFalse: attempt(() => c.send('ok-2', false as Any)),
        handleZero: attempt(() => c.send('ok-3', 0 as Any)),
      };
      // Only the three valid sends arrive, in order; nothing was written for the others.
      const got = [await r.next(), await r.next(), await r.next()];
      await finish(c, r);
      return { ...o, got, events: namesOf(r.ev) };
    },
    (o) => {
      expect(o.noArgs.threw).toMatchObject({ code: 'ERR_MISSING_ARGS', class: 'TypeError' });
      expect(o.undef.threw).toMatchObject({ code: 'ERR_MISSING_ARGS' });
      for (const k of ['symbol', 'func', 'bigint']) expect(o[k].threw).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', class: 'TypeError' });
      for (const k of ['emptyObjectHandle', 'stringHandle', 'numberHandle', 'plainStreamHandle']) expect(o[k].threw).toMatchObject({ code: 'ERR_INVALID_HANDLE_TYPE' });
      for (const k of ['optionsString', 'optionsNull', 'optionsArray', 'optionsNumber']) expect(o[k].threw).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      expect(o.got).toEqual(['ok-1', 'ok-2', 'ok-3']);
      expect(o.events).toEqual(['spawn', 'message', 'message', 'message', 'disconnect', 'exit', 'close']);
    },
  );

  both(
    "after the parent's disconnect(): connected false at once, 'disconnect' later; send() returns false and calls back with ERR_IPC_CHANNEL_CLOSED, or emits it as 'error'; disconnect() again emits ERR_IPC_DISCONNECTED; the child sees 'disconnect' and exits on its own",
    async (cp) => {
      const c = forkChild(cp, ['wait-disconnect']);
      const r = record(c);
      await r.next();
      const log: unknown[] = [];
      c.on('disconnect', () => log.push('disconnect event'));
      c.on('error', (e) => log.push(['error event', (e as NodeJS.ErrnoException).code]));
      const disc = c.disconnect();
      log.push(['after disconnect()', disc, c.connected]);
      log.push(['send with callback returned', c.send('x', (e) => log.push(['send callback', errObs(e)]))]);
      log.push(['send returned', c.send('y')]);
      log.push(['send(undefined) returned', attempt(() => c.send(undefined as Any))]);
      log.push(['send with a bad handle', attempt(() => c.send('z', {} as Any))]);
      log.push(['send with bad options', attempt(() => c.send('z', undefined, 'bad' as Any))]);
      c.disconnect();
      log.push('sync part done');
      await settle(r);
      return { log, events: r.ev, ...r.out(), connected: c.connected, exitCode: c.exitCode };
    },
    (o) => {
      expect(o.log[0]).toEqual(['after disconnect()', undefined, false]);
      expect(o.log).toContainEqual(['send with callback returned', false]);
      expect(o.log).toContainEqual(['send returned', false]);
      expect(o.log).toContainEqual(['send callback', expect.objectContaining({ code: 'ERR_IPC_CHANNEL_CLOSED' })]);
      expect(o.log).toContainEqual(['error event', 'ERR_IPC_CHANNEL_CLOSED']);
      expect(o.log).toContainEqual(['error event', 'ERR_IPC_DISCONNECTED']);
      expect(o.log.indexOf('sync part done')).toBeLessThan(o.log.indexOf('disconnect event'));
      expect(o.stdout).toBe('child: disconnect, connected=false\n');
      expect(namesOf(o.events).filter((n) => n !== 'error')).toEqual(['spawn', 'message', 'disconnect', 'exit']);
      expect(o).toMatchObject({ connected: false, exitCode: 0 });
    },
    { extraCloseAllowed: true },
  );

  both(
    "the child's process.disconnect(): the parent gets 'disconnect' (connected false, channel null then), send() after it fails with ERR_IPC_CHANNEL_CLOSED, the child exits 0",
    async (cp) => {
      const c = forkChild(cp, ['self-disconnect']);
      const r = record(c);
      const seen: unknown[] = [];
      c.on('disconnect', () => {
        seen.push({ connected: c.connected, channel: c.channel === null ? null : typeof c.channel, send: typeof c.send, disconnect: typeof c.disconnect });
        c.send('late', (e) => seen.push(['late send', e && (e as NodeJS.ErrnoException).code]));
      });
      await withDeadline(r.closed, 10_000);
      return { seen, events: r.ev, ...r.out() };
    },
    (o) => {
      expect(o.events).toEqual([['spawn'], ['message', 'bye', 'undefined'], ['disconnect'], ['exit', 0, null], ['close', 0, null]]);
      expect(o.seen[0]).toEqual({ connected: false, channel: null, send: 'function', disconnect: 'function' });
      expect(o.seen[1]).toEqual(['late send', 'ERR_IPC_CHANNEL_CLOSED']);
      expect(o.stdout).toBe('child: disconnect, connected=false\n');
    },
  );

  both(
    'the shape of an IPC child: connected, channel (ref/unref/fd), send/disconnect functions, the stdio array; a spawn without ipc has none of it',
    async (cp) => {
      const c = forkChild(cp, ['echo']);
      const r = record(c);
      const ch = c.channel as Any;
      const shape = {
        connected: c.connected,
        channel: typeof ch,
        channelFd: typeof ch?.fd,
        ref: typeof ch?.ref,
        unref: typeof ch?.unref,
        refReturns: ch?.ref(),
        unrefReturns: ch?.unref(),
        refAgain: ch?.ref(),
        send: typeof c.send,
        disconnect: typeof c.disconnect,
        stdioLength: c.stdio.length,
        stdio3: c.stdio[3],
        stdin: c.stdin === null,
        stdout: c.stdout !== null,
        pid: typeof c.pid,
        spawnfile: c.spawnfile === process.execPath,
        spawnargs: c.spawnargs.slice(-2),
      };
      const plain = cp.spawn('true', { stdio: 'ignore' });
      const rp = record(plain);
      const noIpc = { connected: plain.connected, channel: (plain as Any).channel, send: typeof plain.send, disconnect: typeof plain.disconnect };
      await finish(c, r);
      await rp.closed;
      return { shape, noIpc };
    },
    (o) => {
      expect(o.shape).toMatchObject({ connected: true, channel: 'object', channelFd: 'number', ref: 'function', unref: 'function', send: 'function', stdioLength: 4, stdio3: null, stdin: true, stdout: true });
      expect(o.shape.spawnargs).toEqual([CHILD, 'echo']);
      expect(o.noIpc).toEqual({ connected: false, channel: undefined, send: 'undefined', disconnect: 'undefined' });
    },
  );
});

// ---------------------------------------------------------------- channel.ref()/unref()

describe('channel.unref() lets the parent exit; the channel keeps it alive otherwise (needs lib/)', () => {
  /** Runs parent-unref.js with the module; its output, whether it exited within `ms`, and the child's pid (alive then?). */
  async function runParent(mod: string, how: string, ms: number) {
    const p = node.spawn(process.execPath, [PARENT_UNREF, mod, how], { stdio: ['ignore', 'pipe', 'pipe'] });
    track(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const exit = once(p, 'exit');
    const printed = new Promise<void>((resolve) => p.stdout.on('data', () => stdout.includes('\n') && resolve()));
    await withDeadline(printed, 10_000);
    const exited = await withDeadline(exit, ms);
    let pid = 0;
    try {
      pid = JSON.parse(stdout.split('\n')[0]).pid;
    } catch {
      // reported below
    }
    const childAlive = pid > 0 && isAlive(pid);
    const parentExited = exited !== '<deadline>';
    if (!parentExited) p.kill('SIGKILL');
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    const out = stdout ? JSON.parse(stdout.split('\n')[0]) : null;
    if (out) delete out.pid;
    return { out, stderr, parentExited, exitCode: parentExited ? (exited as unknown[])[0] : null, childAlive };
  }

  const lib = () => (againstNode ? 'node:child_process' : LIB);

  it(
    'unref: child.unref() and child.channel.unref() let the parent exit on its own while the child keeps running: the drop-in as node:child_process',
    async () => {
      const [n, o] = await Promise.all([runParent('node:child_process', 'unref', 5000), runParent(lib(), 'unref', 5000)]);
      expect(n).toMatchObject({ stderr: '', parentExited: true, exitCode: 0, childAlive: true, out: { first: 'idle', channel: 'object', fd: 'number' } });
      expect(o).toEqual(n);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'ref-only (child.unref() alone) and unref-ref (channel.unref() then channel.ref()): the channel keeps the parent alive: the drop-in as node:child_process',
    async () => {
      const runs = await Promise.all(['ref-only', 'unref-ref'].flatMap((how) => [runParent('node:child_process', how, 1500), runParent(lib(), how, 1500)]));
      for (const n of [runs[0], runs[2]]) expect(n).toMatchObject({ stderr: '', parentExited: false, childAlive: true, out: { first: 'idle', channel: 'object', fd: 'number' } });
      expect(runs[1]).toEqual(runs[0]);
      expect(runs[3]).toEqual(runs[2]);
    },
    TEST_TIMEOUT_MS,
  );
});

// ---------------------------------------------------------------- 'ipc' in spawn's stdio

describe("'ipc' in stdio, and fork()'s options", () => {
  both(
    "spawn(node, [child], { stdio: ['pipe', 'pipe', 'pipe', 'ipc'] }): messages both ways, stdout, the child's channel on fd 3, its stdio sockets",
    async (cp) => {
      const c = cp.spawn(process.execPath, [CHILD, 'echo'], { stdio: ['pipe', 'pipe', 'pipe', 'ipc'] });
      const r = record(c);
      c.send({ op: 'info' });
      const info = await r.next();
      c.send({ op: 'stdout', text: 'out-text' });
      await r.next();
      c.send('echo-me');
      const echoed = await r.next();
      c.stdin!.end();
      await finish(c, r);
      return { info, echoed, events: namesOf(r.ev), ...r.out(), stdioLength: c.stdio.length };
    },
    (o) => {
      expect(o.info).toMatchObject({ channelFd: 3, connected: true, sendType: 'function' });
      expect(o.info.env).toEqual({}); // NODE_CHANNEL_FD was there, and Node's child deleted it
      expect(o.echoed).toBe('echo-me');
      expect(o.stdout).toBe('out-text');
      expect(o.stdioLength).toBe(4);
    },
  );

  both(
    'NODE_CHANNEL_FD is the index of the ipc entry (3, 4, 0) and NODE_CHANNEL_SERIALIZATION_MODE the serialization, for a non-Node child; the fd is a socket; disconnect, exit, close when it exits',
    async (cp) => {
      const script = 'echo "$NODE_CHANNEL_FD $NODE_CHANNEL_SERIALIZATION_MODE $FOO"; stat -L -c %F /proc/self/fd/$NODE_CHANNEL_FD';
      const configs = [
        [['pipe', 'pipe', 'pipe', 'ipc'], undefined],
        [['ignore', 'pipe', 'ignore', 'ignore', 'ipc'], 'advanced'],
        [['ipc', 'pipe', 'pipe'], 'json'],
      ] as const;
      return Promise.all(
        configs.map(async ([stdio, serialization]) => {
          const c = cp.spawn('sh', ['-c', script], { stdio: stdio as Any, serialization, env: { PATH: process.env.PATH, FOO: 'bar' } });
          const r = record(c);
          await withDeadline(r.closed, 10_000);
          return { events: foldExitRace(r.ev), stdout: r.out().stdout };
        }),
      );
    },
    (o) => {
      expect(o.map((x: Any) => x.stdout)).toEqual(['3 json bar\nsocket\n', '4 advanced bar\nsocket\n', '0 json bar\nsocket\n']);
      for (const x of o) expectChannelEndsWithExit(namesOf(x.events));
    },
  );

  both(
    'two ipc entries: ERR_IPC_ONE_PIPE from spawn() and fork(), nothing spawned',
    (cp) => ({
      spawn: attempt(() => cp.spawn('true', { stdio: ['pipe', 'pipe', 'pipe', 'ipc', 'ipc'] })),
      spawnAt0: attempt(() => cp.spawn('true', { stdio: ['ipc', 'ipc'] as Any })),
      fork: attempt(() => cp.fork(CHILD, [], { stdio: ['ignore', 'ignore', 'ignore', 'ipc', 'ipc'] })),
    }),
    (o) => {
      for (const k of ['spawn', 'spawnAt0', 'fork']) expect(o[k].threw).toMatchObject({ code: 'ERR_IPC_ONE_PIPE', message: 'Child process can have only one IPC pipe' });
    },
  );

  both(
    "'ipc' with the sync forms: ERR_IPC_SYNC_FORK from spawnSync, execFileSync and execSync",
    (cp) => ({
      spawnSync: attempt(() => cp.spawnSync('true', { stdio: ['pipe', 'pipe', 'pipe', 'ipc'] })),
      spawnSyncFirst: attempt(() => cp.spawnSync('true', { stdio: ['ipc'] as Any })),
      execFileSync: attempt(() => cp.execFileSync('true', [], { stdio: ['pipe', 'pipe', 'pipe', 'ipc'] })),
      execSync: attempt(() => cp.execSync('true', { stdio: ['pipe', 'pipe', 'pipe', 'ipc'] })),
    }),
    (o) => {
      for (const k of ['spawnSync', 'spawnSyncFirst', 'execFileSync', 'execSync'])
        expect(o[k].threw).toMatchObject({ code: 'ERR_IPC_SYNC_FORK', message: 'IPC cannot be used with synchronous forks' });
    },
  );

  both(
    "fork(): an stdio array without 'ipc' is ERR_CHILD_PROCESS_IPC_REQUIRED; a string stdio gets 'ipc' added; bad values are ERR_INVALID_ARG_VALUE / ERR_INVALID_ARG_TYPE",
    async (cp) => {
      const o: Any = {
        noIpc: attempt(() => cp.fork(CHILD, [], { stdio: ['pipe', 'pipe', 'pipe'] })),
        noIpcEmpty: attempt(() => cp.fork(CHILD, [], { stdio: [] })),
        badString: attempt(() => cp.fork(CHILD, [], { stdio: 'bogus' as Any })),
        badSerialization: attempt(() => cp.fork(CHILD, [], { serialization: 'xml' as Any })),
        modulePathNumber: attempt(() => cp.fork(123 as Any)),
        modulePathNul: attempt(() => cp.fork('a\u0000b')),
        argsString: attempt(() => cp.fork(CHILD, 'echo' as Any)),
        optionsString: attempt(() => cp.fork(CHILD, [], 'opts' as Any)),
        execPathNul: attempt(() => cp.fork(CHILD, [], { execPath: 'no\u0000de' })),
        execArgvNul: attempt(() => cp.fork(CHILD, [], { execArgv: ['--x\u0000'] })),
        spawnBadSerialization: attempt(() => cp.spawn(process.execPath, [CHILD], { stdio: ['pipe', 'pipe', 'pipe', 'ipc'], serialization: 'xml' as Any })),
      };
      // String stdio: each gets the channel appended.
      const shapes = await Promise.all(
        (['pipe', 'ignore', 'inherit'] as const).map(async (stdio) => {
          const c = cp.fork(CHILD, ['info'], { stdio });
          const r = record(c);
          const info = await r.next();
          await withDeadline(r.closed, 10_000);
          return { stdio, length: c.stdio.length, streams: c.stdio.map((s) => s !== null), channelFd: info.channelFd, childStdio: info.stdio };
        }),
      );
      // URL modulePath, options in the args' place, null args.
      const forms = await Promise.all(
        [() => cp.fork(pathToFileURL(CHILD) as Any, ['echo'], { stdio: 'ignore' }), () => cp.fork(CHILD, { stdio: 'ignore' } as Any), () => cp.fork(CHILD, null as Any, { stdio: 'ignore' })].map(async (start) => {
          const c = start();
          const r = record(c);
          c.disconnect(); // the echo child exits when its channel closes
          await withDeadline(r.exited, 10_000);
          return { spawnargs: c.spawnargs.slice(-2), exitCode: c.exitCode };
        }),
      );
      return { ...o, shapes, forms };
    },
    (o) => {
      expect(o.noIpc.threw).toMatchObject({ code: 'ERR_CHILD_PROCESS_IPC_REQUIRED', message: "Forked processes must have an IPC channel, missing value 'ipc' in options.stdio" });
      expect(o.noIpcEmpty.threw).toMatchObject({ code: 'ERR_CHILD_PROCESS_IPC_REQUIRED' });
      expect(o.badString.threw).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
      expect(o.badSerialization.threw).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
      expect(o.modulePathNumber.threw).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      expect(o.modulePathNul.threw).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
      expect(o.argsString.threw).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      expect(o.optionsString.threw).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      expect(o.shapes.map((s: Any) => [s.length, s.streams, s.channelFd])).toEqual([
        [4, [true, true, true, false], 3],
        [4, [false, false, false, false], 3],
        [4, [false, false, false, false], 3],
      ]);
      expect(o.forms).toEqual([{ spawnargs: [CHILD, 'echo'], exitCode: 0 }, { spawnargs: expect.arrayContaining([CHILD]), exitCode: 0 }, { spawnargs: expect.arrayContaining([CHILD]), exitCode: 0 }]);
    },
  );

  both(
    'fork() with silent: true: stdin, stdout and stderr are pipes (the child writes into them); without it they are inherited (null)',
    async (cp) => {
      const c = cp.fork(CHILD, ['echo'], { silent: true });
      const r = record(c);
      c.send({ op: 'stdout', text: 'from the child' });
      await r.next();
      c.send({ op: 'info' });
      const info = await r.next();
      const shape = { stdin: c.stdin !== null, stdout: c.stdout !== null, stderr: c.stderr !== null, length: c.stdio.length };
      await finish(c, r);
      const d = cp.fork(CHILD, ['info']);
      const rd = record(d);
      const infoD = await rd.next();
      await withDeadline(rd.closed, 10_000);
      return { shape, childStdio: info.stdio, ...r.out(), inherited: { stdin: d.stdin, stdout: d.stdout, stderr: d.stderr, length: d.stdio.length, channelFd: infoD.channelFd } };
    },
    (o) => {
      expect(o.shape).toEqual({ stdin: true, stdout: true, stderr: true, length: 4 });
      expect(o.stdout).toBe('from the child');
      expect(o.inherited).toEqual({ stdin: null, stdout: null, stderr: null, length: 4, channelFd: 3 });
    },
  );

  both(
    'fork() options: execArgv, execPath (a wrapper), cwd and env reach the child; spawnfile and spawnargs as Node builds them',
    async (cp) => {
      const wrapper = path.join(dir, 'node-wrapper.sh');
      const c = cp.fork(CHILD, ['info', 'extra arg'], {
        execArgv: ['--no-warnings', '--stack-size=900'],
        execPath: wrapper,
        cwd: dir,
        env: { PATH: process.env.PATH, FOO: 'bar' },
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      });
      const r = record(c);
      const info = await r.next();
      await withDeadline(r.closed, 10_000);
      return { info, spawnfile: c.spawnfile, spawnargs: c.spawnargs, events: namesOf(r.ev), ...r.out() };
    },
    (o) => {
      expect(o.info).toMatchObject({ argv: ['info', 'extra arg'], execArgv: ['--no-warnings', '--stack-size=900'], cwd: dir, env: { FOO: 'bar', WRAPPED: 'yes' }, channelFd: 3 });
      expect(o.spawnfile).toBe(path.join(dir, 'node-wrapper.sh'));
      expect(o.spawnargs).toEqual([path.join(dir, 'node-wrapper.sh'), '--no-warnings', '--stack-size=900', CHILD, 'info', 'extra arg']);
      expect(o.stderr).toBe('');
    },
  );

  both(
    'fork() with timeout and killSignal: the child is killed with SIGINT (killed true): disconnect, exit(null, SIGINT), close',
    async (cp) => {
      const c = forkChild(cp, ['idle'], { timeout: 1000, killSignal: 'SIGINT' });
      const r = record(c, { messages: false }); // whether 'idle' came before the timeout is a matter of timing
      await withDeadline(r.closed, 10_000);
      return { events: r.ev, killed: c.killed, connected: c.connected };
    },
    (o) => {
      expect(o.events).toEqual([['spawn'], ['disconnect'], ['exit', null, 'SIGINT'], ['close', null, 'SIGINT']]);
      expect(o.killed).toBe(true);
    },
  );

  both(
    "fork() with an AbortSignal: abort() kills the child with SIGTERM and emits AbortError; an already aborted signal too",
    async (cp) => {
      const ac = new AbortController();
      const c = forkChild(cp, ['idle'], { signal: ac.signal });
      const r = record(c);
      await r.next();
      ac.abort();
      await withDeadline(r.closed, 10_000);
      const pre = new AbortController();
      pre.abort('reason');
      const d = forkChild(cp, ['idle'], { signal: pre.signal });
      const rd = record(d);
      await withDeadline(rd.closed, 10_000);
      return { events: r.ev, killed: c.killed, pre: rd.ev.filter((e) => e[0] !== 'message') };
    },
    (o) => {
      expect(namesOf(o.events)).toEqual(['spawn', 'message', 'error', 'disconnect', 'exit', 'close']);
      expect(o.events[2][1]).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
      expect(o.events.at(-1)).toEqual(['close', null, 'SIGTERM']);
      expect(o.killed).toBe(true);
    },
  );

  both(
    'fork() of a module that does not exist: the child exits 1 with Node\'s message on stderr; fork() with an execPath that does not exist: error ENOENT, send() fails',
    async (cp) => {
      const missing = path.join(dir, 'missing.js');
      const c = cp.fork(missing, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
      const r = record(c);
      await withDeadline(r.closed, 10_000);
      const stderr = r.out().stderr ?? '';
      const e = cp.fork(CHILD, [], { execPath: path.join(dir, 'no-such-node'), stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
      const re = record(e);
      const before = { connected: e.connected, pid: e.pid, channel: typeof e.channel };
      const sendLog: unknown[] = [];
      e.send('into nothing', (err) => sendLog.push(err && (err as NodeJS.ErrnoException).code));
      await withDeadline(re.exited, 10_000);
      await sleep(CLOSE_GRACE_MS);
      return { events: r.ev, cannotFind: stderr.includes(`Cannot find module '${missing}'`), enoent: { before, events: re.ev, sendLog, connected: e.connected } };
    },
    (o) => {
      expect(o.events).toEqual([['spawn'], ['disconnect'], ['exit', 1, null], ['close', 1, null]]);
      expect(o.cannotFind).toBe(true);
      expect(o.enoent.events[0]).toEqual(['error', expect.objectContaining({ code: 'ENOENT', syscall: `spawn ${path.join(dir, 'no-such-node')}` })]);
    },
  );
});

// ---------------------------------------------------------------- handle passing

/** A TCP server on 127.0.0.1, listening; closed after the test. */
async function listen(onConnection?: (s: net.Socket) => void): Promise<net.Server> {
  const s = net.createServer(onConnection);
  later(() => s.close());
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

function portOf(s: net.Server | dgram.Socket): number {
  return (s.address() as net.AddressInfo).port;
}

/** Connects to port, collects everything until the end. */
function fetchText(port: number, write?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1');
    let text = '';
    c.setEncoding('utf8');
    c.on('data', (d) => (text += d));
    c.on('end', () => resolve(text));
    c.on('error', reject);
    if (write) c.write(write);
  });
}

/** A connected pair through `server`: [client, accepted]. */
async function connectedPair(server: net.Server): Promise<[net.Socket, net.Socket]> {
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect(portOf(server), '127.0.0.1');
  later(() => client.destroy());
  await once(client, 'connect');
  const [s] = await accepted;
  later(() => s.destroy());
  return [client, s];
}

function readAll(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d) => (text += d));
    s.on('end', () => resolve(text));
    s.on('close', () => resolve(text));
  });
}

function getConnections(s: net.Server): Promise<unknown> {
  return new Promise((resolve) => s.getConnections((err, n) => resolve(err ? errObs(err) : n)));
}

function forkHandles(cp: CP): { c: ChildProcess; r: Recorder } {
  const c = cp.fork(HANDLES, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  return { c, r: record(c) };
}

const op = (name: string) => (m: Any) => m && m.op === name;

describe('handle passing (SCM_RIGHTS, NODE_HANDLE/NODE_HANDLE_ACK)', () => {
  both(
    'a listening net.Server, parent to child: the child receives a listening net.Server on the same port and answers connections on it',
    async (cp) => {
      const { c, r } = forkHandles(cp);
      const server = await listen((s) => s.end('parent-server'));
      const port = portOf(server);
      const cb: unknown[] = [];
      const ret = c.send({ op: 'take-server', tag: 'A' }, server, (e) => cb.push(e));
      const took = await r.next(op('took-server'));
      await new Promise((res) => server.close(res)); // now only the child accepts
      const texts = [await fetchText(port), await fetchText(port)];
      c.disconnect();
      await settle(r);
      return { ret, cb, took: { ...took, port: took.port === port }, texts, events: namesOf(r.ev), ...r.out() };
    },
    (o) => {
      expect(o.ret).toBe(true);
      expect(o.cb).toEqual([null]);
      expect(o.took).toEqual({ op: 'took-server', handle: 'Server', listening: true, port: true });
      expect(o.texts).toEqual(['child-server:A', 'child-server:A']);
      expect(o.stderr).toBe('');
    },
    { extraCloseAllowed: true },
  );

  both(
    "an accepted net.Socket, parent to child: the child writes to it and ends it; the parent's socket loses its handle; server.getConnections() counts it in the child until it closes",
    async (cp) => {
      const { c, r } = forkHandles(cp);
      const server = await listen();
      const [client, accepted] = await connectedPair(server);
      const received = readAll(client);
      const countBefore = await getConnections(server);
      const cb: unknown[] = [];
      const ret = c.send({ op: 'take-socket', tag: 'S', keep: true }, accepted, (e) => cb.push(e));
      const took = await r.next(op('took-socket'));
      const afterSend = { destroyed: accepted.destroyed, handle: (accepted as Any)._handle === null, count: await getConnections(server) };
      c.send({ op: 'end-sockets' });
      await r.next(op('ended-sockets'));
      const text = await received;
      const countAfterChildClosed = await getConnections(server);
      const closeOrder: string[] = [];
      await new Promise<void>((res) =>
        server.close(() => {
          closeOrder.push('server closed');
          res();
        }),
      );
      c.disconnect();
      await settle(r);
      return { ret, cb, took, countBefore, afterSend, text, countAfterChildClosed, closeOrder, events: namesOf(r.ev), ...r.out() };
    },
    (o) => {
      expect(o.ret).toBe(true);
      expect(o.took).toMatchObject({ op: 'took-socket', tag: 'S', handle: 'Socket', readable: true, writable: true, remotePortType: 'number' });
      expect(o.countBefore).toBe(1);
      expect(o.afterSend).toMatchObject({ handle: true, count: 1 });
      expect(o.text).toBe('child:S;');
      expect(o.countAfterChildClosed).toBe(0);
      expect(o.stderr).toBe('');
    },
    { extraCloseAllowed: true },
  );

  both(
    "server.close() after sending sockets to a child: its callback waits until the child has closed them (NODE_SOCKET_NOTIFY_CLOSE / ALL_CLOSED)",
    async (cp) => {
      const { c, r } = forkHandles(cp);
      const server = await listen();
      const pairs = [await connectedPair(server), await connectedPair(server)];
      for (const [i, [, s]] of pairs.entries()) c.send({ op: 'take-socket', tag: `T${i}`, keep: true }, s);
      await r.next(op('took-socket'));
      await r.next(op('took-socket'));
      const count = await getConnections(server);
      const order: string[] = [];
      const closed = new Promise<void>((res) =>
        server.close(() => {
          order.push('server close callback');
          res();
        }),
      );
      await sleep(200);
      order.push('child asked to close');
      c.send({ op: 'end-sockets' });
      await withDeadline(closed, 5000);
      c.disconnect();
      await settle(r);
      return { count, order, events: namesOf(r.ev) };
    },
    (o) => {
      expect(o.count).toBe(2);
      expect(o.order).toEqual(['child asked to close', 'server close callback']);
    },
    { extraCloseAllowed: true },
  );

  both(
    "keepOpen: true: the parent's socket stays usable after the send, and server.getConnections() counts both copies",
    async (cp) => {
      const { c, r } = forkHandles(cp);
      const server = await listen();
      const [client, accepted] = await connectedPair(server);
      const received = readAll(client);
      const cb: unknown[] = [];
      c.send({ op: 'take-socket', tag: 'K', keep: true }, accepted, { keepOpen: true }, (e) => cb.push(e));
      const took = await r.next(op('took-socket')); // the child has written 'child:K;'
      await sleep(50);
      const afterSend = { destroyed: accepted.destroyed, writable: accepted.writable, hasHandle: (accepted as Any)._handle !== null, count: await getConnections(server) };
      accepted.end('parent-after;');
      c.send({ op: 'end-sockets' });
      await r.next(op('ended-sockets'));
      const text = await received;
      c.disconnect();
      await settle(r);
      return { cb, took: took.handle, afterSend, text, events: namesOf(r.ev) };
    },
    (o) => {
      expect(o.cb).toEqual([null]);
      expect(o.afterSend).toEqual({ destroyed: false, writable: true, hasHandle: true, count: 2 });
      expect(o.text).toBe('child:K;parent-after;');
    },
    { extraCloseAllowed: true },
  );

  both(
    'a net.Socket, child to parent: the parent receives a connected net.Socket with the message and can write on it',
    async (cp) => {
      const { c, r } = forkHandles(cp);
      const accepted = new Promise<net.Socket>((res) => {
        void listen((s) => res(s)).then((srv) => c.send({ op: 'give-socket', port: portOf(srv) }));
      });
      const got = new Promise<[Any, net.Socket]>((res) => c.on('message', (m: Any, h) => m.op === 'socket' && res([m, h as net.Socket])));
      const [msg, sock] = (await withDeadline(got, 5000)) as [Any, net.Socket];
      later(() => sock.destroy());
      const gave = await r.next(op('gave-socket'));
      const server = await accepted;
      const text = readAll(server);
      const shape = { kind: handleKind(sock), isSocket: sock instanceof net.Socket, readable: sock.readable, writable: sock.writable, sameLocalPort: sock.localPort === msg.localPort };
      sock.end('written by the parent');
      const result = { msg: Object.keys(msg).sort(), gave, shape, text: await text };
      c.disconnect();
      await settle(r);
      return { ...result, events: r.ev.filter((e) => e[0] !== 'message').map((e) => e[0]), messageHandles: r.ev.filter((e) => e[0] === 'message').map((e) => e[2]) };
    },
    (o) => {
      expect(o.shape).toEqual({ kind: 'Socket', isSocket: true, readable: true, writable: true, sameLocalPort: true });
      expect(o.text).toBe('written by the parent');
      expect(o.gave).toMatchObject({ op: 'gave-socket', err: null });
      expect(o.messageHandles).toEqual(['Socket', 'undefined']);
    },
    { extraCloseAllowed: true },
  );

  both(
    'a listening net.Server, child to parent: the parent receives a listening net.Server and answers connections on it after the child closed its copy',
    async (cp) => {
      const { c, r } = forkHandles(cp);
      const got = new Promise<[Any, net.Server]>((res) => c.on('message', (m: Any, h) => m.op === 'server' && res([m, h as net.Server])));
      c.send({ op: 'give-server' });
      const [msg, server] = (await withDeadline(got, 5000)) as [Any, net.Server];
      later(() => server.close());
      await r.next(op('gave-server'));
      server.on('connection', (s) => s.end('parent-got-server'));
      const shape = { kind: handleKind(server), listening: server.listening, samePort: portOf(server) === msg.port };
      const text = await fetchText(msg.port);
      await new Promise((res) => server.close(res));
      c.disconnect();
      await settle(r);
      return { shape, text, events: namesOf(r.ev) };
    },
    (o) => {
      expect(o.shape).toEqual({ kind: 'Server', listening: true, samePort: true });
      expect(o.text).toBe('parent-got-server');
    },
    { extraCloseAllowed: true },
  );

  both(
    'a bound dgram.Socket, parent to child: the child receives a dgram.Socket of the same type and port and gets a datagram sent to it',
    async (cp) => {
      const { c, r } = forkHandles(cp);
      const sock = dgram.createSocket('udp4');
      later(() => sock.close());
      sock.bind(0, '127.0.0.1');
      await once(sock, 'listening');
      const port = portOf(sock);
      const cb: unknown[] = [];
      const ret = c.send({ op: 'take-dgram' }, sock, (e) => cb.push(e));
      const took = await r.next(op('took-dgram'));
      await new Promise<void>((res) => sock.close(() => res())); // only the child receives now
      const sender = dgram.createSocket('udp4');
      later(() => sender.close());
      sender.send('datagram to the child', port, '127.0.0.1');
      const datagram = await withDeadline(r.next(op('datagram')), 5000);
      c.disconnect();
      await settle(r);
      return { ret, cb, took: { ...took, port: took.port === port }, datagram, events: namesOf(r.ev) };
    },
    (o) => {
      expect(o.ret).toBe(true);
      expect(o.took).toEqual({ op: 'took-dgram', handle: 'Socket', type: 'udp4', port: true });
      expect(o.datagram).toEqual({ op: 'datagram', text: 'datagram to the child', fromLoopback: true });
    },
    { extraCloseAllowed: true },
  );

  both(
    'handles are sent one at a time: messages sent while a handle awaits its ACK are queued in order (send() returns true for the first queued, false after); every socket arrives with its own message',
    async (cp) => {
      const { c, r } = forkHandles(cp);
      const server = await listen();
      const pairs = [await connectedPair(server), await connectedPair(server), await connectedPair(server)];
      const texts = pairs.map(([client]) => readAll(client));
      const cbs: unknown[] = [];
      const rets = [
        c.send({ op: 'take-socket', tag: 'q0' }, pairs[0][1], () => cbs.push('q0')),
        c.send({ op: 'plain', tag: 'p1' }, () => cbs.push('p1')),
        c.send({ op: 'take-socket', tag: 'q1' }, pairs[1][1], () => cbs.push('q1')),
        c.send({ op: 'plain', tag: 'p2' }, () => cbs.push('p2')),
        c.send({ op: 'take-socket', tag: 'q2' }, pairs[2][1], () => cbs.push('q2')),
      ];
      for (let i = 0; i < 3; i++) await r.next(op('took-socket'));
      c.send({ op: 'seen' });
      const seen = await r.next(op('seen'));
      const got = await Promise.all(texts);
      c.disconnect();
      await settle(r);
      return { rets, cbs, seen: seen.seen, got, events: namesOf(r.ev) };
    },
    (o) => {
      expect(o.rets).toEqual([true, true, false, false, false]);
      expect(o.cbs).toEqual(['q0', 'p1', 'q1', 'p2', 'q2']);
      expect(o.seen).toEqual([
        { op: 'take-socket', tag: 'q0', handle: 'Socket' },
        { op: 'plain', tag: 'p1', handle: 'undefined' },
        { op: 'take-socket', tag: 'q1', handle: 'Socket' },
        { op: 'plain', tag: 'p2', handle: 'undefined' },
        { op: 'take-socket', tag: 'q2', handle: 'Socket' },
        { op: 'seen', handle: 'undefined' },
      ]);
      expect(o.got).toEqual(['child:q0;', 'child:q1;', 'child:q2;']);
    },
    { extraCloseAllowed: true },
  );

  both(
    'a socket without a handle (destroyed, or never connected) is sent as the bare message; the parent disconnect()ing with handles queued flushes them first',
    async (cp) => {
      const { c, r } = forkHandles(cp);
      const server = await listen();
      const [, accepted] = await connectedPair(server);
      const dead = new net.Socket();
      const [, gone] = await connectedPair(server);
      gone.destroy();
      const rets = [c.send({ op: 'plain', tag: 'never-connected' }, dead), c.send({ op: 'plain', tag: 'destroyed' }, gone)];
      c.send({ op: 'take-socket', tag: 'last', keep: true }, accepted);
      c.send({ op: 'plain', tag: 'queued-after-handle' });
      c.disconnect(); // postponed until the handle's ACK; the child prints what it saw at its 'disconnect'
      const connected = c.connected;
      await settle(r);
      const { stdout, stderr } = r.out();
      // The child's reply to the handle races the ACK in Node too: delivered only when
      // both come in one read (before the postponed disconnect drops later messages).
      return { rets, connected, seen: JSON.parse(stdout!.split('\n').filter(Boolean).at(-1) ?? 'null'), stderr, events: namesOf(r.ev).filter((e) => e !== 'message') };
    },
    (o) => {
      expect(o.connected).toBe(false);
      expect(o.seen).toEqual([
        { op: 'plain', tag: 'never-connected', handle: 'undefined' },
        { op: 'plain', tag: 'destroyed', handle: 'undefined' },
        { op: 'take-socket', tag: 'last', handle: 'Socket' },
        { op: 'plain', tag: 'queued-after-handle', handle: 'undefined' },
      ]);
    },
    { extraCloseAllowed: true },
  );
});

// ---------------------------------------------------------------- corners

describe('corners of Node’s protocol', () => {
  both(
    'send() with a handle calls back once the write is done, in a later turn: after process.nextTick callbacks queued after send() (a plain send calls back on a tick queued inside it)',
    async (cp) => {
      const { c, r } = forkHandles(cp);
      const server = await listen();
      const order: string[] = [];
      c.send({ op: 'plain', tag: 'first' }, () => order.push('plain callback'));
      process.nextTick(() => order.push('nextTick after the plain send'));
      await sleep(100);
      c.send({ op: 'take-server', tag: 'H' }, server, () => order.push('handle callback'));
      order.push('send returned');
      process.nextTick(() => order.push('nextTick after the handle send'));
      setImmediate(() => order.push('setImmediate'));
      await r.next(op('took-server'));
      c.disconnect();
      await settle(r);
      return { order };
    },
    (o) => {
      expect(o.order).toEqual(['plain callback', 'nextTick after the plain send', 'send returned', 'nextTick after the handle send', 'handle callback', 'setImmediate']);
    },
    { extraCloseAllowed: true },
  );

  both(
    'a kept reference to child.channel: fd is a number while open; after the channel closed, fd is what Node\'s closed Pipe says (UV_EINVAL)',
    async (cp) => {
      const c = forkChild(cp, ['echo']);
      const r = record(c);
      const ch = c.channel as Any;
      const open = { fdType: typeof ch.fd, fdNonNegative: ch.fd >= 0 };
      await finish(c, r);
      return { open, afterClose: ch.fd, channelNow: c.channel };
    },
    (o) => {
      expect(o.open).toEqual({ fdType: 'number', fdNonNegative: true });
      expect(o.channelNow).toBe(null);
      expect(o.afterClose).toBe(-22);
    },
  );

  both(
    'an object that only looks like a handle (its class named TCP, Pipe or UDP, an fd property even): ERR_INVALID_HANDLE_TYPE, nothing sent',
    async (cp) => {
      const { c, r } = forkHandles(cp);
      const fakes = [new (class TCP {})(), new (class Pipe {})(), new (class UDP {})(), { constructor: { name: 'TCP' }, fd: 0 }, { constructor: { name: 'Pipe' }, fd: 1 }];
      const results = fakes.map((h) => attempt(() => c.send({ op: 'plain', tag: 'fake' }, h as Any)));
      c.send({ op: 'plain', tag: 'real' });
      c.disconnect();
      await settle(r);
      const { stdout, stderr } = r.out();
      return { results, seen: JSON.parse(stdout!.split('\n').filter(Boolean).at(-1) ?? 'null'), stderr, exitCode: c.exitCode, signalCode: c.signalCode };
    },
    (o) => {
      for (const x of o.results) expect(x.threw).toMatchObject({ code: 'ERR_INVALID_HANDLE_TYPE', message: 'This handle type cannot be sent' });
      expect(o.seen).toEqual([{ op: 'plain', tag: 'real', handle: 'undefined' }]);
      expect(o).toMatchObject({ stderr: '', exitCode: 0, signalCode: null });
    },
    { extraCloseAllowed: true },
  );
});

// ---------------------------------------------------------------- documented differences

describe('the differences README.md documents, pinned (each engine asserted on its own)', () => {

  it(
    "EOF while the parent's disconnect() still waits (a handle without its ACK, a message half read): Node emits 'error' ERR_IPC_DISCONNECTED and drops what was queued; clonefd emits 'disconnect' and calls the queued callback with ERR_IPC_CHANNEL_CLOSED",
    async () => {
      const run = async (cp: CP) => {
  // A child that never ACKs: sh holds the channel for a while and exits.
  const a = cp.spawn('sh', ['-c', 'sleep 0.4'], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  const ra = record(a);
  const server = await listen();
  const logA: unknown[] = [];
  logA.push(['handle send', a.send('h', server, (e) => logA.push(['handle callback', e && (e as NodeJS.ErrnoException).code]))]);
  logA.push(['queued send', a.send('after', (e) => logA.push(['queued callback', e && (e as NodeJS.ErrnoException).code]))]);
  a.disconnect();
  logA.push(['after disconnect()', a.connected, a.channel === null]);
  await withDeadline(ra.closed, 10_000);
  // A child that writes half a message, then the rest after the parent's disconnect().
  const b = cp.spawn(process.execPath, [RAW, 'json', 'slow'], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  const rb = record(b);
  await rb.next(); // "ready", and half of the next message behind it
  await sleep(50);
  b.disconnect();
  await withDeadline(rb.closed, 10_000);
  return { a: { log: logA, events: ra.ev }, b: { events: rb.ev } };
};
      const [n, o] = await Promise.all([run(node), run(ours)]);
      expect(n.a.log).toContainEqual(['handle callback', null]);
      expect(n.a.log).not.toContainEqual(expect.arrayContaining(['queued callback']));
      expect(namesOf(n.a.events)).toEqual(['spawn', 'error', 'exit', 'close']);
      expect(n.a.events[1][1]).toMatchObject({ code: 'ERR_IPC_DISCONNECTED' });
      expect(n.b.events).toEqual([['spawn'], ['message', 'ready', 'undefined'], ['error', n.a.events[1][1]], ['exit', 0, null], ['close', 0, null]]);
      if (againstNode) return;
      expect(o.a.log).toContainEqual(['handle callback', null]);
      expect(o.a.log).toContainEqual(['queued callback', 'ERR_IPC_CHANNEL_CLOSED']);
      expect(namesOf(o.a.events)).toEqual(['spawn', 'disconnect', 'exit', 'close']);
      expect(o.b.events).toEqual([['spawn'], ['message', 'ready', 'undefined'], ['disconnect'], ['exit', 0, null], ['close', 0, null]]);
    },
    TEST_TIMEOUT_MS,
  );
  it(
    "'close' after the parent's own disconnect(): never in Node; in clonefd after 'exit'",
    async () => {
      const run = async (cp: CP) => {
        const c = forkChild(cp, ['wait-disconnect']);
        const r = record(c);
        await r.next();
        c.disconnect();
        await settle(r);
        return namesOf(r.ev);
      };
      const [n, o] = await Promise.all([run(node), run(ours)]);
      expect(n).toEqual(['spawn', 'message', 'disconnect', 'exit']);
      if (!againstNode) expect(o).toEqual(['spawn', 'message', 'disconnect', 'exit', 'close']);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "a queued message that cannot be written (the child exits without reading): Node calls back with null, clonefd with the write's error (EPIPE)",
    async () => {
      const run = async (cp: CP) => {
        const c = cp.spawn('sh', ['-c', 'sleep 0.3'], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
        const r = record(c);
        const big = 'z'.repeat(1 << 20);
        const cbs: unknown[] = [];
        const rets = [0, 1, 2].map((i) => c.send(big, (e) => cbs.push([i, e && (e as NodeJS.ErrnoException).code])));
        await withDeadline(r.closed, 10_000);
        return { rets, cbs, events: namesOf(r.ev) };
      };
      const [n, o] = await Promise.all([run(node), run(ours)]);
      expect(n).toEqual({ rets: [false, false, false], cbs: [[0, null], [1, null], [2, null]], events: ['spawn', 'disconnect', 'exit', 'close'] });
      // EPIPE, or ECONNRESET first when the kernel still holds the reset for the socket.
      if (!againstNode) {
        expect({ ...o, cbs: (o.cbs as [number, string][]).map(([i, code]) => [i, code === 'ECONNRESET' ? 'EPIPE' : code]) }).toEqual({ ...n, cbs: [[0, 'EPIPE'], [1, 'EPIPE'], [2, 'EPIPE']] });
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'disconnect() right after send(): Node cuts the queued messages off, clonefd delivers them first',
    async () => {
      const run = async (cp: CP) => {
        const c = forkChild(cp, ['count']);
        const r = record(c);
        const cbs: unknown[] = [];
        c.send('x'.repeat(1 << 20), (e) => cbs.push(e));
        c.send('small', (e) => cbs.push(e));
        c.disconnect();
        await settle(r);
        return { cbs, stdout: r.out().stdout, exitCode: c.exitCode };
      };
      const [n, o] = await Promise.all([run(node), run(ours)]);
      expect(n).toEqual({ cbs: [null, null], stdout: 'child: 0 messages, 0 chars\n', exitCode: 0 });
      if (!againstNode) expect(o).toEqual({ ...n, stdout: `child: 2 messages, ${(1 << 20) + 5} chars\n` });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "a child that writes something other than Node's protocol: Node's parent dies of the SyntaxError (uncaught); clonefd's gets an 'error' event and the channel closes",
    async () => {
      const script = (mod: string) =>
        `const c = require(${JSON.stringify(mod)}).spawn('sh', ['-c', 'printf "not json\\\\n" >&3; sleep 0.2'], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });` +
        `const ev = []; for (const e of ['error', 'disconnect', 'exit', 'close']) c.on(e, (x) => ev.push(e === 'error' ? e + ':' + x.name : e));` +
        `c.on('close', () => console.log(JSON.stringify(ev)));`;
      const run = (mod: string) => node.spawnSync(process.execPath, ['-e', script(mod)], { encoding: 'utf8', timeout: 10_000 });
      const n = run('node:child_process');
      expect(n.status).not.toBe(0);
      expect(n.stderr).toMatch(/SyntaxError/);
      if (!againstNode) {
        const o = run(LIB);
        expect({ status: o.status, stderr: o.stderr, events: JSON.parse(o.stdout) }).toEqual({ status: 0, stderr: '', events: ['error:SyntaxError', 'disconnect', 'exit', 'close'] });
      }
    },
    TEST_TIMEOUT_MS,
  );
});
