// Bad input (issue 8 §2): a seed-fixed, property-based fuzz of the core API
// (spawn, clonefd) and the drop-in (clonefd/child_process), with the
// operations after a successful spawn in random order.
//
// Properties:
//   A. core: every call works or throws an Error with a string `code`;
//      every later operation too; never a crash, a hang, a leaked fd, a
//      zombie or a live child.
//   B. drop-in async forms (spawn/execFile/exec): the same, errors through
//      a throw, the 'error' event or the callback.
//   C. drop-in sync forms (spawnSync/execFileSync/execSync).
//   D. differential: the same (single-fault) input to node:child_process
//      and to the drop-in gives the same outcome and the same `code`.
//
//   CLONEFD_FUZZ_SEED  the seed (default 20240508)
//   CLONEFD_FUZZ_RUNS  cases per property (default 500; 10000 is the full run)
import * as nodeCp from 'node:child_process';
import { chmodSync, closeSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clonefd, O_CLOEXEC, O_NONBLOCK, spawn } from '../src/index';
import * as dropin from '../src/child_process';
import { fdDiff, liveChildren, openFds, sleep, waitFor, zombieChildren } from './helpers';

/**
 * Known defects the exploration may step around (comma-separated), so that
 * a run can look past them; CI sets none, so they fail until fixed:
 *   failed-spawn-stdin  the drop-in's spawn() leaves child.stdin open after an
 *                       'error' (ENOENT/EACCES) spawn; the harness destroys it
 */
const TOLERATE = new Set((process.env.CLONEFD_FUZZ_TOLERATE ?? '').split(',').filter(Boolean));
const SEED = Number(process.env.CLONEFD_FUZZ_SEED ?? 20240508);
const RUNS = Number(process.env.CLONEFD_FUZZ_RUNS ?? 500);
/** Every case is bounded by this (a hang fails the property). */
const CASE_MS = 5_000;
/** Time for a whole property: generous, the per-case bound is what matters. */
const PROPERTY_MS = Math.max(120_000, RUNS * 400);

// ---------------------------------------------------------------------------
// Values that must not be built before the property runs (getters that
// throw, proxies, signals, fresh fds): a label for the report, a maker for
// each use. fast-check prints the label.

interface Lazy {
  readonly lazy: true;
  make(): unknown;
  [fc.toStringMethod](): string;
}
function lazy(label: string, make: () => unknown): Lazy {
  return { lazy: true, make, [fc.toStringMethod]: () => label };
}
function isLazy(v: unknown): v is Lazy {
  return typeof v === 'object' && v !== null && (v as Lazy).lazy === true && typeof (v as Lazy).make === 'function';
}
function m(v: unknown): unknown {
  return isLazy(v) ? v.make() : v;
}

/** What a user's throwing getter/trap throws: coded, so it passes through as "coded". */
class FuzzGetterError extends Error {
  code = 'EFUZZ_GETTER';
}
const throwingGetter = () => {
  throw new FuzzGetterError('getter threw');
};

// ---------------------------------------------------------------------------
// Fixtures

let tmp = '';
let noShebang = '';
let devNullFd = -1;
const CLOSED_FD = 987; // never open in this process (checked in beforeAll)
const HUGE_ARG = 'x'.repeat(200 * 1024); // > MAX_ARG_STRLEN (128 KiB): E2BIG
const MANY_ARGS: string[] = Array.from({ length: 300_000 }, () => 'abcdefg'); // > ARG_MAX: E2BIG

// ---------------------------------------------------------------------------
// Arbitraries

/** Harmless programs: [file, args that must stay, may extra args be appended]. */
const programs: [unknown, string[], boolean][] = [
  ['/bin/true', [], true],
  ['true', [], true],
  ['/bin/sh', ['-c', 'exit 0'], true],
  ['/bin/sh', ['-c', 'exit 3'], true],
  ['/bin/sh', ['-c', 'echo out; echo err >&2; exit 1'], false],
  ['sleep', ['0.05'], false],
  ['/bin/sleep', ['0.05'], false],
  ['/nonexistent/clonefd-fuzz', [], true],
  ['clonefd-fuzz-no-such-command', [], true],
  ['/etc/passwd', [], true], // not executable: EACCES
  ['/tmp', [], true], // a directory: EACCES
];

const safeChar = fc.constantFrom(...'abcXYZ019 -_=.,:/é\u00ff\u2603'.split(''), '\u{1F600}');
const safeString = fc.string({ unit: safeChar, maxLength: 12 });

const fileArb = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(...programs.map((_, i) => i)).map((i) => ({ prog: i })) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom<unknown>(
        '',
        123,
        null,
        undefined,
        true,
        10n,
        lazy('{}', () => ({})),
        lazy('Symbol(f)', () => Symbol('f')),
        lazy('["/bin/true"]', () => ['/bin/true']),
        '/bin/tr\u0000ue',
        '\u0000',
        lazy('"/".repeat(5000)+"true"', () => '/'.repeat(5000) + 'true'),
        lazy('"a".repeat(300) (ENAMETOOLONG)', () => 'a'.repeat(300)),
        lazy('String object /bin/true', () => new String('/bin/true')),
        lazy('noShebang', () => noShebang),
        './true',
        '/bin/',
      )
      .map((f) => ({ raw: f })),
  },
);

const argEntry = fc.oneof(
  { weight: 6, arbitrary: safeString },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(
      1,
      0,
      NaN,
      null,
      undefined,
      true,
      10n,
      'a\u0000b',
      '\u0000',
      lazy('{}', () => ({})),
      lazy('Symbol(a)', () => Symbol('a')),
      lazy('String object', () => new String('s')),
      lazy('{toString() throws}', () => ({ toString: throwingGetter })),
      lazy('HUGE_ARG', () => HUGE_ARG),
    ),
  },
);

/** Extra args: an array spec, or something that is not an array. */
const argsArb = fc.oneof(
  { weight: 6, arbitrary: fc.array(argEntry, { maxLength: 5 }).map((a) => ({ list: a })) },
  { weight: 1, arbitrary: fc.constant({ list: [] as unknown[], sparse: true }) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom<unknown>(
        'a string',
        42,
        true,
        10n,
        lazy('MANY_ARGS (E2BIG)', () => MANY_ARGS),
        lazy('array with a throwing index getter', () => {
          const a: unknown[] = ['x'];
          Object.defineProperty(a, 0, { get: throwingGetter, enumerable: true });
          return a;
        }),
        lazy('Proxy array (get throws)', () => new Proxy(['x'], { get: (t, k) => (k === '0' ? throwingGetter() : Reflect.get(t, k)) })),
        lazy('{length: 2}', () => ({ length: 2, 0: 'a', 1: 'b' })),
      )
      .map((v) => ({ raw: v })),
  },
);

function buildArgs(spec: { list?: unknown[]; sparse?: boolean; raw?: unknown }, base: string[], appendable: boolean): unknown {
  if ('raw' in spec) return m(spec.raw);
  if (spec.sparse) {
    const a: unknown[] = [...base];
    a[a.length + 2] = 'after-hole';
    return a;
  }
  return [...base, ...(appendable ? spec.list!.map(m) : [])];
}

const envArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  {
    weight: 4,
    arbitrary: fc
      .dictionary(
        fc.constantFrom('FOO', 'BAR', 'PATH', 'HOME', 'LANG', 'é', 'A B', '', '=', 'X=Y'),
        fc.oneof(safeString, fc.constantFrom<unknown>(1, true, null, undefined, '/usr/bin:/bin', '', ':', 'a\u0000b')),
        { maxKeys: 4 },
      )
      .map((d) => lazy(`env ${JSON.stringify(d)}`, () => ({ ...d }))),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom<unknown>(
      null,
      'a string',
      42,
      true,
      10n,
      lazy('{}', () => ({})),
      lazy('[]', () => []),
      lazy('["A=1"]', () => ['A=1']),
      lazy("{'A\\0B': 'x'}", () => ({ 'A\u0000B': 'x' })),
      lazy('{A: Symbol()}', () => ({ A: Symbol('v') })),
      lazy('{[Symbol()]: "x", A: "1"}', () => ({ [Symbol('k')]: 'x', A: '1' })),
      lazy('{A: getter throws}', () => Object.defineProperty({}, 'A', { get: throwingGetter, enumerable: true })),
      lazy('{PATH: getter throws}', () => Object.defineProperty({}, 'PATH', { get: throwingGetter, enumerable: true })),
      lazy('{A: {toString throws}}', () => ({ A: { toString: throwingGetter } })),
      lazy('{A: {}} (null proto value)', () => ({ A: Object.create(null) })),
      lazy('Object.create(null) {A:1}', () => Object.assign(Object.create(null), { A: '1' })),
      lazy('inherited {PATH} via prototype', () => Object.create({ PATH: '/usr/bin:/bin', INHERITED: '1' })),
      lazy('Proxy env (ownKeys throws)', () => new Proxy({}, { ownKeys: throwingGetter })),
      lazy('Proxy env (get throws)', () => new Proxy({ A: '1' }, { get: throwingGetter })),
      lazy('Proxy env (has/getOwnPropertyDescriptor throws)', () => new Proxy({ A: '1' }, { getOwnPropertyDescriptor: throwingGetter })),
      lazy('huge env value (E2BIG)', () => ({ BIG: HUGE_ARG })),
      lazy('process.env copy', () => ({ ...process.env })),
    ),
  },
);

const stdioEntry = fc.constantFrom<unknown>(
  'pipe',
  'pipe',
  'ignore',
  'ignore',
  'inherit',
  'overlapped',
  'ipc',
  'PIPE',
  'bogus',
  '',
  null,
  undefined,
  0,
  1,
  2,
  -1,
  1.5,
  NaN,
  2 ** 31,
  2 ** 53,
  true,
  10n,
  lazy('CLOSED_FD', () => CLOSED_FD),
  lazy('devNullFd', () => devNullFd),
  lazy('{}', () => ({})),
  lazy('{fd: devNullFd}', () => ({ fd: devNullFd })),
  lazy('{fd: -1}', () => ({ fd: -1 })),
  lazy('{fd: CLOSED_FD}', () => ({ fd: CLOSED_FD })),
  lazy('{_handle: {fd: devNullFd}}', () => ({ _handle: { fd: devNullFd } })),
  lazy('{fd: getter throws}', () => Object.defineProperty({}, 'fd', { get: throwingGetter })),
  lazy('Symbol()', () => Symbol('s')),
  lazy('Buffer', () => Buffer.from('x')),
  lazy('() => 1', () => () => 1),
);

const stdioArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: fc.constantFrom<unknown>('pipe', 'ignore', 'inherit', 'overlapped', 'ipc', 'bogus', '', null) },
  { weight: 5, arbitrary: fc.array(stdioEntry, { maxLength: 6 }).map((a) => ({ list: a })) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(
      5,
      true,
      10n,
      lazy('{}', () => ({})),
      lazy('Array(70).fill("ignore")', () => Array(70).fill('ignore')),
      lazy('Array(300).fill("ignore")', () => Array(300).fill('ignore')),
      lazy('sparse [ , , "ignore", , "pipe"]', () => {
        const a: unknown[] = [];
        a[2] = 'ignore';
        a[4] = 'pipe';
        return a;
      }),
      lazy('Symbol()', () => Symbol('stdio')),
      lazy('Proxy stdio array (get throws)', () => new Proxy(['pipe'], { get: (t, k) => (k === '0' ? throwingGetter() : Reflect.get(t, k)) })),
    ),
  },
);
function buildStdio(spec: unknown): unknown {
  if (typeof spec === 'object' && spec !== null && 'list' in spec) return (spec as { list: unknown[] }).list.map(m);
  return m(spec);
}

const STOP_SIGNALS = new Set([19, 20, 21, 22, 'SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU']);
const signalArb = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom<unknown>('SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGSTOP', 'SIGCONT', 'SIGCHLD', 'SIGWINCH', 'SIGPIPE', 'SIGABRT', 'SIGQUIT', 'SIGSEGV', 'SIGRTMIN', 'SIGRTMAX', 'SIGIOT', 'SIGPOLL', 'SIGTSTP'),
  },
  { weight: 3, arbitrary: fc.integer({ min: -2, max: 70 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom<unknown>(0, NaN, Infinity, -Infinity, 1.5, 2 ** 32 + 9, 'sigterm', 'SIGterm', 'TERM', 'sigkill', '9', '', 'SIGFOO', ' SIGTERM', null, undefined, true, 10n, lazy('{}', () => ({})), lazy('Symbol()', () => Symbol('sig')), lazy('new String("SIGTERM")', () => new String('SIGTERM'))),
  },
);

const flagsArb = fc.constantFrom<unknown>(undefined, null, O_CLOEXEC, O_NONBLOCK, O_CLOEXEC | O_NONBLOCK, 0, 1, 0o4001, -1, -O_CLOEXEC, 2 ** 32 + O_CLOEXEC, 2 ** 31, NaN, 1.5, '0', O_CLOEXEC + 0.5, 10n, true);

const cwdArb = fc.constantFrom<unknown>(
  undefined,
  undefined,
  '/',
  '/tmp',
  '.',
  '',
  '/nonexistent/clonefd-fuzz',
  '/etc/passwd',
  'a\u0000b',
  null,
  42,
  true,
  lazy('tmp', () => tmp),
  lazy('new URL("file:///tmp")', () => new URL('file:///tmp')),
  lazy('new URL("file:///nonexistent")', () => new URL('file:///nonexistent')),
  lazy('new URL("http://example.com/")', () => new URL('http://example.com/')),
  lazy('{href: "file:///tmp"}', () => ({ href: 'file:///tmp', protocol: 'file:' })),
  lazy('Buffer("/tmp")', () => Buffer.from('/tmp')),
  lazy('"/".repeat(5000) (ENAMETOOLONG)', () => `/${'a'.repeat(5000)}`),
);

const idArb = fc.constantFrom<unknown>(undefined, undefined, undefined, null, 0, 65534, -1, -5, -(2 ** 31), 2 ** 31, 2 ** 32, 2 ** 32 - 1, 2 ** 32 - 2, 1.5, NaN, Infinity, '0', 10n, true);
const timeoutArb = fc.constantFrom<unknown>(undefined, undefined, 0, 1, 10, 100, 2 ** 31 - 1, 2 ** 31, -1, 1.5, NaN, Infinity, '10', null, 10n);
const maxBufferArb = fc.constantFrom<unknown>(undefined, undefined, 0, 1, 4, 1024, Infinity, -1, NaN, '10', null, 10n, 1.5);
const encodingArb = fc.constantFrom<unknown>(undefined, undefined, 'utf8', 'buffer', 'hex', 'latin1', null, 'bogus', 'UTF8', '', 42, true);
const abortArb = fc.constantFrom<unknown>(
  undefined,
  undefined,
  undefined,
  null,
  'not a signal',
  42,
  lazy('aborted AbortSignal', () => AbortSignal.abort()),
  lazy('live AbortController.signal', () => new AbortController().signal),
  lazy('AbortSignal.timeout(5)', () => AbortSignal.timeout(5)),
  lazy('fake {aborted:false}', () => ({ aborted: false })),
  lazy('fake signal with listeners', () => ({ aborted: false, addEventListener() {}, removeEventListener() {} })),
);
const boolish = fc.constantFrom<unknown>(undefined, undefined, undefined, true, false, 'yes', 1, null);
const engineArb = fc.constantFrom<unknown>(undefined, 'helper', 'direct', 'helper', 'direct', 'bogus', '', 1, null);

/** An option left out (most of the time: so that cases get past validation and spawn). */
const ABSENT = lazy('<absent>', () => undefined);
const rare = (arb: fc.Arbitrary<unknown>, presentWeight = 1) => fc.oneof({ weight: 7, arbitrary: fc.constant<unknown>(ABSENT) }, { weight: presentWeight, arbitrary: arb });

const optionsArb = fc.record({
  cwd: rare(cwdArb),
  env: rare(envArb, 2),
  argv0: rare(fc.constantFrom<unknown>(undefined, 'argv0', '', 'a\u0000b', 42, null)),
  stdio: rare(stdioArb, 4),
  detached: rare(boolish),
  uid: rare(idArb),
  gid: rare(idArb),
  signal: rare(abortArb),
  timeout: rare(timeoutArb),
  killSignal: rare(signalArb),
  killWithParent: rare(boolish),
  engine: fc.oneof({ weight: 8, arbitrary: fc.constantFrom<unknown>('helper', 'direct') }, { weight: 1, arbitrary: engineArb }),
  flags: rare(flagsArb, 3),
  // drop-in only (the core ignores them)
  shell: rare(fc.constantFrom<unknown>(undefined, true, false, '/bin/sh', '/nonexistent/sh', 42, '')),
  maxBuffer: rare(maxBufferArb),
  encoding: rare(encodingArb),
  input: rare(fc.constantFrom<unknown>(undefined, 'some input', lazy('Buffer', () => Buffer.from('buf')), lazy('Uint8Array', () => new Uint8Array([1, 2])), 42, lazy('{}', () => ({})))),
  windowsHide: rare(boolish),
  serialization: rare(fc.constantFrom<unknown>(undefined, 'json', 'advanced', 'bogus')),
});

/** How the options object itself is presented. */
const optionsWrapArb = fc.oneof(
  { weight: 12, arbitrary: fc.constant('plain') },
  { weight: 1, arbitrary: fc.constantFrom('nullProto', 'proxyGetThrows', 'getterThrows', 'notObject', 'frozen') },
);

function buildOptions(spec: Record<string, unknown>, wrap: string): unknown {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(spec)) if (v !== ABSENT) o[k] = k === 'stdio' ? buildStdio(v) : m(v);
  switch (wrap) {
    case 'nullProto':
      return Object.assign(Object.create(null), o);
    case 'proxyGetThrows': {
      const keys = Object.keys(o);
      const bad = keys.length ? keys[keys.length - 1] : 'cwd';
      return new Proxy(o, { get: (t, k) => (k === bad ? throwingGetter() : Reflect.get(t, k)) });
    }
    case 'getterThrows':
      return Object.defineProperty(o, 'env', { get: throwingGetter, enumerable: true });
    case 'notObject':
      return 'options as a string';
    case 'frozen':
      return Object.freeze(o);
    default:
      return o;
  }
}

// ---------------------------------------------------------------------------
// Checks

/**
 * A bad-input error as the contract wants it: an Error with a string code.
 * One exception: JavaScript's own TypeError when a user value has no
 * string form at all (an env value `Object.create(null)`, a Symbol in a
 * template): Node's child_process throws exactly that too, uncoded.
 */
function coded(e: unknown): boolean {
  if (e instanceof TypeError && (e as { code?: unknown }).code === undefined && /^Cannot convert (object to primitive value|a Symbol value to a string)$/.test(e.message)) return true;
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'string';
}
function describeErr(e: unknown): string {
  if (e instanceof Error) return `${e.constructor.name}(${JSON.stringify((e as { code?: unknown }).code)}): ${e.message.slice(0, 200)}`;
  return `non-Error thrown: ${String(e)}`;
}
function expectCoded(e: unknown, where: string): void {
  if (!coded(e)) throw new Error(`${where}: uncoded error: ${describeErr(e)}`);
}
/** A failed command (exit code / signal) in execFile/exec/execFileSync: Node's shape, not an input error. */
function commandFailure(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const x = e as { code?: unknown; signal?: unknown; cmd?: unknown; status?: unknown };
  if (typeof x.cmd === 'string' && (typeof x.code === 'number' || x.code === null)) return true;
  return e.message.startsWith('Command failed') && 'status' in x;
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`HANG: ${what} did not finish in ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

let baseline = new Map<number, string>();
const uncaught: unknown[] = [];
/** Cases that got a child running, per property (printed at the end: the fuzz must reach past validation). */
export const spawned: Record<string, number> = {};
const count = (k: string) => (spawned[k] = (spawned[k] ?? 0) + 1);
const onUncaught = (e: unknown) => uncaught.push(e);

/** After a case: no fd, zombie or live child left (each with a deadline). */
async function expectClean(where: string): Promise<void> {
  const ok = await waitFor(() => {
    const fds = openFds();
    return [...fds].every(([fd, t]) => baseline.get(fd) === t) && fds.size === baseline.size && zombieChildren().length === 0 && liveChildren().length === 0;
  }, 2_000);
  if (!ok) {
    const z = zombieChildren();
    const l = liveChildren();
    const msg = `${where}: left behind: ${fdDiff(baseline)}; zombies ${JSON.stringify(z)}; live ${JSON.stringify(l)}`;
    // Judge the next cases (and the shrinking) on their own: a persistent
    // leak must not make every later case fail.
    for (const pid of l) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    await waitFor(() => liveChildren().length === 0 && zombieChildren().length === 0, 2_000);
    baseline = openFds();
    throw new Error(msg);
  }
  if (uncaught.length) {
    const e = uncaught.splice(0);
    throw new Error(`${where}: uncaught during the case: ${e.map(describeErr).join('; ')}`);
  }
}

// ---------------------------------------------------------------------------
// Properties

type CallShape = 'file' | 'file,args' | 'file,args,opts' | 'file,opts' | 'file,undefined,opts' | 'file,null,opts';
const shapeArb = fc.constantFrom<CallShape>('file,args,opts', 'file,args,opts', 'file,args,opts', 'file,args,opts', 'file', 'file,args', 'file,opts', 'file,undefined,opts', 'file,null,opts');

function call<R>(fn: (...a: unknown[]) => R, shape: CallShape, file: unknown, args: unknown, opts: unknown, extra: unknown[] = []): R {
  switch (shape) {
    case 'file':
      return fn(file, ...extra);
    case 'file,args':
      return fn(file, args, ...extra);
    case 'file,opts':
      return fn(file, opts, ...extra);
    case 'file,undefined,opts':
      return fn(file, undefined, opts, ...extra);
    case 'file,null,opts':
      return fn(file, null, opts, ...extra);
    default:
      return fn(file, args, opts, ...extra);
  }
}

/**
 * /bin/sh without its -c script reads commands from stdin, a pipe nobody
 * closes: a hang the user asked for (Node's too). Programs that need
 * their args get them.
 */
function fixShape(c: { file: { prog?: number } | object; args: object; shape: CallShape }): CallShape {
  if (!('prog' in c.file) || c.file.prog === undefined) return c.shape;
  if (programs[c.file.prog as number][1].length === 0) return c.shape;
  if ('raw' in c.args) return 'file,args,opts';
  return c.shape === 'file' ? 'file,args' : c.shape === 'file,args' ? c.shape : 'file,args,opts';
}

function resolveFile(spec: { prog?: number; raw?: unknown }, argsSpec?: object): { file: unknown; base: string[]; appendable: boolean } {
  if (spec.prog !== undefined) {
    // A non-array "args" may be taken as options (spawn(file, options)): then sh would read stdin.
    const [file, base, appendable] = programs[argsSpec && 'raw' in argsSpec && programs[spec.prog][1].length ? 0 : spec.prog];
    return { file, base, appendable };
  }
  return { file: m(spec.raw), base: [], appendable: true };
}

const coreOp = fc.oneof(
  fc.record({ op: fc.constant('kill' as const), sig: signalArb }),
  fc.record({ op: fc.constant('killDefault' as const) }),
  fc.constantFrom(
    { op: 'read' as const },
    { op: 'readAsync' as const },
    { op: 'close' as const },
    { op: 'ref' as const },
    { op: 'unref' as const },
    { op: 'dispose' as const },
    { op: 'fd' as const },
    { op: 'pidfd' as const },
    { op: 'exited' as const },
    { op: 'tick' as const },
    { op: 'sleep' as const },
    { op: 'abort' as const },
    { op: 'stdinEnd' as const },
  ),
);

const coreCaseArb = fc.record({
  api: fc.constantFrom('spawn', 'clonefd'),
  file: fileArb,
  args: argsArb,
  shape: shapeArb,
  options: optionsArb,
  wrap: optionsWrapArb,
  ops: fc.array(coreOp, { maxLength: 8 }),
});
type CoreCase = typeof coreCaseArb extends fc.Arbitrary<infer T> ? T : never;

/** flags the spec says must throw EINVAL (or another coded error). */
function flagsInvalid(flags: unknown): boolean {
  if (flags === undefined || flags === null) return false;
  return !(typeof flags === 'number' && Number.isInteger(flags) && flags >= 0 && (flags & ~(O_CLOEXEC | O_NONBLOCK)) === 0 && flags <= 0x7fffffff);
}

async function runCoreCase(c: CoreCase): Promise<void> {
  const { file, base, appendable } = resolveFile(c.file, c.args);
  c = { ...c, shape: fixShape(c) };
  const args = buildArgs(c.args, base, appendable);
  let opts: unknown;
  try {
    opts = buildOptions(c.options as Record<string, unknown>, c.wrap);
  } catch (e) {
    throw new Error(`fixture: ${describeErr(e)}`);
  }
  const flagsSpec = c.options.flags === ABSENT ? undefined : c.options.flags;
  // A live controller for 'abort' ops when the options carry one.
  const ctl = new AbortController();
  if (c.options.signal !== undefined && typeof opts === 'object' && opts !== null && c.wrap !== 'proxyGetThrows' && c.wrap !== 'frozen') {
    const s = (opts as Record<string, unknown>).signal;
    if (s instanceof AbortSignal && !s.aborted && isLazy(c.options.signal) && c.options.signal[fc.toStringMethod]().startsWith('live')) (opts as Record<string, unknown>).signal = ctl.signal;
  }
  const fn = (c.api === 'spawn' ? spawn : clonefd) as (...a: unknown[]) => ReturnType<typeof spawn>;
  let sub: ReturnType<typeof spawn>;
  try {
    sub = call(fn, c.shape, file, args, opts);
  } catch (e) {
    expectCoded(e, `${c.api}()`);
    count(`A ${c.api} threw ${(e as { code: string }).code}`);
    return;
  }
  count(`A ${c.api} spawned`);
  // The seed: an invalid flag is EINVAL and spawns nothing, however the options are passed.
  const optsCarried = c.shape !== 'file' && c.shape !== 'file,args' && c.wrap !== 'notObject';
  const flagsBad = c.api === 'clonefd' && optsCarried && flagsInvalid(flagsSpec);
  const errors: string[] = [];
  if (flagsBad) errors.push(`clonefd() accepted invalid flags ${String(flagsSpec)} (call shape ${c.shape}) and spawned pid ${sub.pid}`);

  let settled = false;
  sub.exited.then(
    () => (settled = true),
    (e) => {
      settled = true;
      if (!coded(e)) errors.push(`exited rejected uncoded: ${describeErr(e)}`);
    },
  );
  sub.on('error', (e) => {
    if (!coded(e)) errors.push(`'error' uncoded: ${describeErr(e)}`);
  });
  const userFlags = c.api === 'clonefd' && !flagsInvalid(flagsSpec) && typeof flagsSpec === 'number' && optsCarried ? flagsSpec : O_CLOEXEC | (c.api === 'spawn' ? O_NONBLOCK : 0);
  const blocking = (userFlags & O_NONBLOCK) === 0;
  // A stopped child never exits by itself: a blocking read or an await would wait for ever (as the user asked).
  let mayStop = STOP_SIGNALS.has(m(c.options.killSignal) as never);
  const pending: Promise<unknown>[] = [];
  const guard = (what: string, f: () => unknown) => {
    try {
      const r = f();
      if (r instanceof Promise) {
        pending.push(
          r.catch((e) => {
            if (!coded(e)) errors.push(`${what} rejected uncoded: ${describeErr(e)}`);
          }),
        );
        return r;
      }
      return r;
    } catch (e) {
      if (!coded(e)) errors.push(`${what} threw uncoded: ${describeErr(e)}`);
      return undefined;
    }
  };
  const briefly = (p: unknown) => (p instanceof Promise ? Promise.race([p.catch(() => {}), sleep(mayStop ? 100 : 1_000)]) : undefined);

  for (const op of c.ops) {
    switch (op.op) {
      case 'kill': {
        const sig = m(op.sig);
        const sent = guard(`kill(${String(sig)})`, () => sub.kill(sig as never));
        if (sent === true && STOP_SIGNALS.has(sig as never)) mayStop = true;
        if (sent !== undefined && typeof sent !== 'boolean') errors.push(`kill returned ${String(sent)}`);
        break;
      }
      case 'killDefault':
        guard('kill()', () => sub.kill());
        break;
      case 'read':
        if (blocking && !settled) {
          if (mayStop) break;
          // Blocks until the (short) child exits: bounded by the program.
        }
        guard('read()', () => {
          const r = sub.read();
          if (r !== null && (typeof r !== 'object' || typeof r.code !== 'number')) errors.push(`read() returned ${String(r)}`);
        });
        break;
      case 'readAsync':
        await briefly(guard('readAsync()', () => sub.readAsync()));
        break;
      case 'close':
        guard('close()', () => sub.close());
        break;
      case 'ref':
        guard('ref()', () => sub.ref());
        break;
      case 'unref':
        guard('unref()', () => sub.unref());
        break;
      case 'dispose':
        await briefly(guard('[Symbol.asyncDispose]()', () => sub[Symbol.asyncDispose]()));
        break;
      case 'fd':
      case 'pidfd': {
        const v = guard(op.op, () => sub[op.op]);
        if (v !== undefined && !(Number.isInteger(v) && (v as number) >= -1)) errors.push(`${op.op} is ${String(v)}`);
        break;
      }
      case 'exited':
        await briefly(sub.exited);
        break;
      case 'tick':
        await new Promise((r) => setImmediate(r));
        break;
      case 'sleep':
        await sleep(20);
        break;
      case 'abort':
        guard('abort()', () => ctl.abort());
        break;
      case 'stdinEnd':
        // As a careful user: a write to a child that exited is EPIPE, on the stream.
        guard('stdin.end()', () => {
          sub.stdin?.on('error', (e) => {
            if (!coded(e)) errors.push(`stdin 'error' uncoded: ${describeErr(e)}`);
          });
          sub.stdin?.end('x');
        });
        break;
    }
  }
  // Clean up as a careful user would: stop it, wait for it, release the fds.
  if (!settled) guard('kill(SIGKILL)', () => sub.kill('SIGKILL'));
  await withDeadline(
    sub.exited.catch(() => {}),
    CASE_MS,
    `exited of pid ${sub.pid} after SIGKILL`,
  );
  await withDeadline(Promise.all(pending), CASE_MS, 'pending operations after the exit');
  guard('close()', () => sub.close());
  if (errors.length) throw new Error(errors.join('\n'));
}

// Drop-in, async forms --------------------------------------------------------

const dropOp = fc.oneof(
  fc.record({ op: fc.constant('kill' as const), sig: signalArb }),
  fc.constantFrom({ op: 'killDefault' as const }, { op: 'ref' as const }, { op: 'unref' as const }, { op: 'dispose' as const }, { op: 'tick' as const }, { op: 'sleep' as const }, { op: 'stdinEnd' as const }, { op: 'readStdout' as const }),
);
const commandArb = fc.constantFrom<unknown>('true', 'exit 3', 'echo hi', 'sleep 0.05', 'clonefd-fuzz-no-such-command 2>/dev/null', 'kill -9 $$', '', 'a\u0000b', 42, null, lazy('{}', () => ({})));

const dropAsyncArb = fc.record({
  api: fc.constantFrom('spawn', 'execFile', 'exec'),
  file: fileArb,
  command: commandArb,
  args: argsArb,
  shape: shapeArb,
  options: optionsArb,
  wrap: optionsWrapArb,
  callback: fc.constantFrom('fn', 'fn', 'fn', 'none', 'notFn'),
  ops: fc.array(dropOp, { maxLength: 6 }),
});
type DropAsyncCase = typeof dropAsyncArb extends fc.Arbitrary<infer T> ? T : never;

type AsyncOutcome = { kind: string; detail: string };

/**
 * Runs an async child_process-style call (Node's or the drop-in's) to its
 * end: a throw, or 'close'/'error'/the callback. Returns what happened.
 */
async function runAsyncCall(
  impl: { spawn: (...a: unknown[]) => nodeCp.ChildProcess; execFile: (...a: unknown[]) => nodeCp.ChildProcess; exec: (...a: unknown[]) => nodeCp.ChildProcess },
  api: string,
  file: unknown,
  command: unknown,
  args: unknown,
  opts: unknown,
  shape: CallShape,
  callbackKind: string,
  ops: DropAsyncCase['ops'],
  errors: string[],
): Promise<AsyncOutcome> {
  let child: nodeCp.ChildProcess;
  let cbResult: AsyncOutcome | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const callback = (err: unknown) => {
    if (cbResult) errors.push('callback called twice');
    if (err === null) cbResult = { kind: 'cb', detail: 'ok' };
    else {
      const e = err as { code?: unknown; signal?: unknown };
      if (!coded(err) && !commandFailure(err)) errors.push(`callback error uncoded: ${describeErr(err)}`);
      cbResult = { kind: 'cb', detail: `${String(e.code)}/${String(e.signal)}` };
    }
    resolveDone();
  };
  const extra = api === 'spawn' ? [] : callbackKind === 'fn' ? [callback] : callbackKind === 'notFn' ? ['not a function'] : [];
  try {
    if (api === 'exec') child = (impl.exec as (...a: unknown[]) => nodeCp.ChildProcess)(command, ...(shape === 'file' ? [] : [opts]), ...extra);
    else child = call(impl[api as 'spawn'] as (...a: unknown[]) => nodeCp.ChildProcess, shape, file, args, opts, extra);
  } catch (e) {
    if (!coded(e)) errors.push(`${api}() threw uncoded: ${describeErr(e)}`);
    return { kind: 'throw', detail: String((e as { code?: unknown }).code) };
  }
  let firstError: string | undefined;
  let closed: string | undefined;
  child.on('error', (e) => {
    if (!coded(e)) errors.push(`'error' uncoded: ${describeErr(e)}`);
    firstError ??= String((e as { code?: unknown }).code);
    if (api === 'spawn' || callbackKind !== 'fn') resolveDone();
  });
  child.on('close', (code, signal) => {
    closed = `${code}/${signal}`;
    if (api === 'spawn' || callbackKind !== 'fn') resolveDone();
  });
  let mayStop = false;
  try {
    mayStop = STOP_SIGNALS.has((opts as { killSignal?: never } | null)?.killSignal as never);
  } catch {
    // a throwing getter of the case: the call itself reported it
  }
  for (const op of ops) {
    try {
      switch (op.op) {
        case 'kill': {
          const sig = m(op.sig);
          if (child.kill(sig as never) && STOP_SIGNALS.has(sig as never)) mayStop = true;
          break;
        }
        case 'killDefault':
          child.kill();
          break;
        case 'ref':
          child.ref();
          break;
        case 'unref':
          child.unref();
          break;
        case 'dispose':
          (child as unknown as { [Symbol.dispose]?: () => void })[Symbol.dispose]?.();
          break;
        case 'tick':
          await new Promise((r) => setImmediate(r));
          break;
        case 'sleep':
          await sleep(20);
          break;
        case 'stdinEnd':
          child.stdin?.on('error', (e) => {
            if (!coded(e)) errors.push(`stdin 'error' uncoded: ${describeErr(e)}`);
          });
          child.stdin?.end('x');
          break;
        case 'readStdout':
          child.stdout?.resume();
          break;
      }
    } catch (e) {
      expectCoded(e, `${op.op}`);
    }
  }
  const finished = await Promise.race([done.then(() => true), sleep(mayStop ? 300 : 3_000).then(() => false)]);
  if (!finished) {
    if (!mayStop) errors.push(`HANG: ${api} not finished after 3 s without a stop signal`);
    try {
      child.kill('SIGKILL');
    } catch {}
    await withDeadline(done, CASE_MS, `${api} after SIGKILL`);
  }
  // 'close' follows 'error' for failed spawns; give it its turn.
  if (closed === undefined) await Promise.race([new Promise((r) => child.once('close', r)), sleep(500)]);
  if (firstError !== undefined && TOLERATE.has('failed-spawn-stdin')) child.stdin?.destroy();
  if (cbResult) return cbResult;
  return firstError !== undefined ? { kind: 'error', detail: firstError } : { kind: 'close', detail: closed ?? 'none' };
}

async function runDropAsyncCase(c: DropAsyncCase): Promise<void> {
  const { file, base, appendable } = resolveFile(c.file, c.args);
  c = { ...c, shape: fixShape(c) };
  const args = buildArgs(c.args, base, appendable);
  const opts = buildOptions(c.options as Record<string, unknown>, c.wrap);
  const errors: string[] = [];
  const r = await runAsyncCall(dropin as never, c.api, file, m(c.command), args, opts, c.shape, c.callback, c.ops, errors);
  count(`B ${c.api} ${r.kind} ${r.kind === 'throw' || r.kind === 'error' ? r.detail : ''}`);
  if (errors.length) throw new Error(errors.join('\n'));
}

// Drop-in, sync forms ---------------------------------------------------------

const dropSyncArb = fc.record({
  api: fc.constantFrom('spawnSync', 'execFileSync', 'execSync'),
  file: fileArb,
  command: commandArb,
  args: argsArb,
  shape: shapeArb,
  options: optionsArb,
  wrap: optionsWrapArb,
});
type DropSyncCase = typeof dropSyncArb extends fc.Arbitrary<infer T> ? T : never;

function runSyncCall(impl: typeof dropin | typeof nodeCp, api: string, file: unknown, command: unknown, args: unknown, opts: unknown, shape: CallShape, errors: string[]): string {
  try {
    let r: unknown;
    if (api === 'execSync') r = (impl.execSync as (...a: unknown[]) => unknown)(command, ...(shape === 'file' ? [] : [opts]));
    else r = call(impl[api as 'spawnSync'] as (...a: unknown[]) => unknown, shape, file, args, opts);
    if (api === 'spawnSync') {
      const res = r as nodeCp.SpawnSyncReturns<unknown>;
      if (res === null || typeof res !== 'object') errors.push(`spawnSync returned ${String(res)}`);
      if (res.error !== undefined) {
        if (!coded(res.error)) errors.push(`spawnSync result.error uncoded: ${describeErr(res.error)}`);
        return `result.error ${String((res.error as { code?: unknown }).code)}`;
      }
      return `ok ${res.status}/${res.signal}`;
    }
    return 'ok';
  } catch (e) {
    if (!coded(e) && !commandFailure(e)) errors.push(`${api}() threw uncoded: ${describeErr(e)}`);
    const x = e as { code?: unknown; status?: unknown; signal?: unknown };
    return `throw ${String(x?.code)} ${String(x?.status)}/${String(x?.signal)}`;
  }
}

async function runDropSyncCase(c: DropSyncCase): Promise<void> {
  const { file, base, appendable } = resolveFile(c.file, c.args);
  c = { ...c, shape: fixShape(c) };
  const args = buildArgs(c.args, base, appendable);
  const opts = buildOptions(c.options as Record<string, unknown>, c.wrap);
  // Sync forms block the thread: a stop signal as killSignal with a timeout would stop the child for ever (Node too).
  if (typeof opts === 'object' && opts !== null && c.wrap !== 'frozen' && c.wrap !== 'proxyGetThrows' && STOP_SIGNALS.has((opts as { killSignal?: never }).killSignal as never)) {
    (opts as Record<string, unknown>).killSignal = 'SIGTERM';
  }
  const errors: string[] = [];
  const r = runSyncCall(dropin, c.api, file, m(c.command), args, opts, c.shape, errors);
  count(`C ${c.api} ${r.split(' ').slice(0, 2).join(' ')}`);
  if (errors.length) throw new Error(errors.join('\n'));
}

// Differential ----------------------------------------------------------------

/** One field (or the call itself) made bad; everything else valid. */
const faultArb = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ field: 'none', value: undefined as unknown }) },
  { weight: 2, arbitrary: fileArb.filter((f) => 'raw' in f).map((f) => ({ field: 'file', value: (f as { raw: unknown }).raw })) },
  { weight: 2, arbitrary: argsArb.map((a) => ({ field: 'args', value: a as unknown })) },
  { weight: 3, arbitrary: envArb.map((v) => ({ field: 'env', value: v })) },
  { weight: 3, arbitrary: stdioArb.map((v) => ({ field: 'stdio', value: v })) },
  { weight: 2, arbitrary: cwdArb.map((v) => ({ field: 'cwd', value: v })) },
  { weight: 1, arbitrary: idArb.map((v) => ({ field: 'uid', value: v })) },
  { weight: 1, arbitrary: idArb.map((v) => ({ field: 'gid', value: v })) },
  // Short timeouts race the child's own exit (on both sides): not compared.
  { weight: 1, arbitrary: timeoutArb.filter((v) => !(typeof v === 'number' && v > 0 && v < 1000)).map((v) => ({ field: 'timeout', value: v })) },
  { weight: 2, arbitrary: signalArb.map((v) => ({ field: 'killSignal', value: v })) },
  { weight: 1, arbitrary: maxBufferArb.map((v) => ({ field: 'maxBuffer', value: v })) },
  { weight: 1, arbitrary: encodingArb.map((v) => ({ field: 'encoding', value: v })) },
  { weight: 1, arbitrary: abortArb.map((v) => ({ field: 'signal', value: v })) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(true, false, '/bin/sh', '/nonexistent/sh', 42, '').map((v) => ({ field: 'shell', value: v })) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('argv0', '', 'a\u0000b', 42).map((v) => ({ field: 'argv0', value: v })) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('yes', 1, true).map((v) => ({ field: 'detached', value: v })) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('some input', 42, lazy('{}', () => ({}))).map((v) => ({ field: 'input', value: v })) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('bogus', 'json', 'advanced').map((v) => ({ field: 'serialization', value: v })) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('a string', 42, true, null, lazy('[]', () => [])).map((v) => ({ field: 'options', value: v })) },
  { weight: 1, arbitrary: commandArb.map((v) => ({ field: 'command', value: v })) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('fd', 'shape').map((v) => ({ field: 'kill', value: v })) },
);

const diffCaseArb = fc.record({
  api: fc.constantFrom('spawnSync', 'execFileSync', 'execSync', 'spawn', 'execFile', 'exec'),
  prog: fc.constantFrom(0, 2, 3, 4, 5, 7, 8, 9),
  engine: fc.constantFrom('helper', 'direct'),
  fault: faultArb,
  killSig: signalArb,
});
type DiffCase = typeof diffCaseArb extends fc.Arbitrary<infer T> ? T : never;

/** The same input, built afresh for each implementation. */
function buildDiffInput(c: DiffCase) {
  const [pfile, pbase] = programs[c.prog];
  let file: unknown = pfile;
  let args: unknown = [...pbase];
  let command: unknown = 'exit 3';
  let opts: unknown = { stdio: 'pipe' };
  const o = opts as Record<string, unknown>;
  const f = c.fault;
  switch (f.field) {
    case 'none':
    case 'kill':
      break;
    case 'file':
      file = m(f.value);
      break;
    case 'args':
      // A non-array may be taken as the options: /bin/sh would then read stdin (a hang on both sides).
      if ('raw' in (f.value as object) && pbase.length) file = '/bin/true';
      args = buildArgs(f.value as never, pbase, true);
      break;
    case 'command':
      command = m(f.value);
      break;
    case 'options':
      opts = m(f.value);
      break;
    case 'stdio':
      o.stdio = buildStdio(f.value);
      break;
    default:
      o[f.field] = m(f.value);
  }
  // A stop signal as killSignal would leave a child stopped (both sides): not a bad-input question.
  if (typeof opts === 'object' && opts !== null && STOP_SIGNALS.has(o.killSignal as never)) o.killSignal = 'SIGTERM';
  return { file, args, command, opts };
}

function mentionsOverlapped(spec: unknown): boolean {
  if (spec === 'overlapped') return true;
  return typeof spec === 'object' && spec !== null && 'list' in spec && (spec as { list: unknown[] }).list.includes('overlapped');
}

async function diffOutcome(impl: 'node' | 'clonefd', c: DiffCase): Promise<{ outcome: string; errors: string[]; uncoded?: boolean }> {
  const { file, args, command, opts } = buildDiffInput(c);
  if (impl === 'clonefd' && typeof opts === 'object' && opts !== null && !Array.isArray(opts)) (opts as Record<string, unknown>).engine = c.engine;
  const errors: string[] = [];
  const lib = impl === 'node' ? nodeCp : dropin;
  if (c.fault.field === 'kill') {
    // kill()'s own answer for a signal value: the exit that follows races the child, so it is not compared.
    const child = (lib.spawn as (...a: unknown[]) => nodeCp.ChildProcess)('/bin/sleep', ['0.05'], { stdio: 'ignore', ...(impl === 'clonefd' ? { engine: c.engine } : {}) });
    const closed = new Promise((r) => child.once('close', r));
    let outcome: string;
    try {
      outcome = `kill returned ${String(child.kill(m(c.killSig) as never))}`;
    } catch (e) {
      if (!coded(e)) errors.push(`kill() threw uncoded: ${describeErr(e)}`);
      outcome = `kill threw ${String((e as { code?: unknown }).code)}`;
    }
    child.kill('SIGKILL');
    await withDeadline(closed, CASE_MS, 'close after SIGKILL');
    return { outcome, errors };
  }
  if (c.api.endsWith('Sync')) {
    const outcome = runSyncCall(lib as never, c.api, file, command, args, opts, 'file,args,opts', errors);
    return { outcome, errors, uncoded: errors.some((e) => e.includes('threw uncoded')) };
  }
  const ops: DropAsyncCase['ops'] = c.fault.field === 'kill' ? [{ op: 'kill', sig: c.killSig }] : [];
  const r = await runAsyncCall(lib as never, c.api, file, command, args, opts, 'file,args,opts', 'fn', ops, errors);
  count(`D ${impl} ${c.api} ${r.kind}`);
  return { outcome: `${r.kind} ${r.detail}`, errors, uncoded: errors.some((e) => e.includes('uncoded')) };
}

// ---------------------------------------------------------------------------

/**
 * CLONEFD_FUZZ_COLLECT=1: explore instead of stopping at the first failure:
 * every failure is recorded under a signature (its message without
 * numbers) with the first case that showed it, printed at the end, and the
 * property then fails once with the list.
 */
const COLLECT = process.env.CLONEFD_FUZZ_COLLECT === '1';
const collected = new Map<string, { count: number; example: string; message: string }>();
function collecting<T>(name: string, body: (c: T) => Promise<void>): (c: T) => Promise<void> {
  if (!COLLECT) return body;
  return async (c: T) => {
    try {
      await body(c);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      const sig = `${name}: ${message.replace(/\d+/g, 'N').replace(/socket:\[N\]|pipe:\[N\]/g, '#').slice(0, 300)}`;
      const entry = collected.get(sig);
      if (entry) entry.count++;
      else collected.set(sig, { count: 1, example: fc.stringify(c), message });
    }
  };
}
function reportCollected(name: string): void {
  const mine = [...collected].filter(([k]) => k.startsWith(`${name}:`));
  if (mine.length === 0) return;
  const text = mine.map(([, v]) => `--- ${v.count}x ${v.message}\n    e.g. ${v.example}`).join('\n');
  console.log(`${name} failures:\n${text}`);
  throw new Error(`${mine.length} distinct failures in ${name} (see the log)`);
}

function params(offset: number) {
  return {
    seed: SEED + offset,
    numRuns: RUNS,
    // Shrinking reruns cases: bound it so a failure is reported in time.
    interruptAfterTimeLimit: PROPERTY_MS,
    markInterruptAsFailure: false,
    endOnFailure: process.env.CLONEFD_FUZZ_NO_SHRINK === '1',
  };
}

describe(`bad input fuzz (seed ${SEED}, ${RUNS} runs per property)`, () => {
  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'clonefd-fuzz-'));
    noShebang = path.join(tmp, 'no-shebang');
    writeFileSync(noShebang, 'exit 7\n');
    chmodSync(noShebang, 0o755);
    devNullFd = openSync('/dev/null', 'r+');
    expect(openFds().has(CLOSED_FD)).toBe(false);
    // Warm up everything that opens fds once and keeps them: both engines,
    // the helper, node:child_process's SIGCHLD machinery.
    for (const engine of ['helper', 'direct'] as const) {
      await spawn('/bin/true', [], { stdio: 'ignore', engine }).exited;
      const s = spawn('/bin/true', [], { stdio: 'pipe', engine });
      await s.exited;
      dropin.spawnSync('/bin/true', [], { engine });
      await new Promise((r) => dropin.execFile('/bin/true', [], { engine }, r));
      await new Promise((r) => dropin.exec('true', { engine }, r));
    }
    await new Promise((r) => nodeCp.execFile('/bin/true', r));
    nodeCp.spawnSync('/bin/true');
    // Node's AbortSignal.timeout keeps nothing, but load it.
    AbortSignal.timeout(1);
    await sleep(50);
    await waitFor(() => zombieChildren().length === 0 && liveChildren().length === 0, 5_000);
    globalThis.gc?.();
    baseline = openFds();
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUncaught);
  }, 60_000);

  afterAll(() => {
    if (process.env.CLONEFD_FUZZ_STATS === '1') console.log(JSON.stringify(Object.entries(spawned).sort(), null, 1));
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
    if (devNullFd >= 0) closeSync(devNullFd);
  });

  it(
    'A. core spawn()/clonefd(): works or throws a coded Error; operations in any order; nothing left behind',
    async () => {
      await fc.assert(
        fc.asyncProperty(coreCaseArb, collecting('A', async (c: CoreCase) => {
          const t0 = Date.now();
          await withDeadline(runCoreCase(c), CASE_MS * 3, 'core case');
          const t1 = Date.now();
          await expectClean('core case');
          if (process.env.CLONEFD_FUZZ_SLOW && Date.now() - t0 > 150) console.log(`slow ${t1 - t0}+${Date.now() - t1} ms`, fc.stringify(c));
        })),
        params(0),
      );
      reportCollected('A');
    },
    PROPERTY_MS * 2,
  );

  it(
    'B. drop-in spawn/execFile/exec: works, or throws / emits / calls back a coded Error; nothing left behind',
    async () => {
      await fc.assert(
        fc.asyncProperty(dropAsyncArb, collecting('B', async (c: DropAsyncCase) => {
          const t0 = Date.now();
          await withDeadline(runDropAsyncCase(c), CASE_MS * 3, 'drop-in async case');
          const t1 = Date.now();
          await expectClean('drop-in async case');
          if (process.env.CLONEFD_FUZZ_SLOW && Date.now() - t0 > 150) console.log(`slow B ${t1 - t0}+${Date.now() - t1} ms`, fc.stringify(c));
        })),
        params(1),
      );
      reportCollected('B');
    },
    PROPERTY_MS * 2,
  );

  it(
    'C. drop-in spawnSync/execFileSync/execSync: works, returns or throws a coded Error; nothing left behind',
    async () => {
      await fc.assert(
        fc.asyncProperty(dropSyncArb, collecting('C', async (c: DropSyncCase) => {
          const t0 = Date.now();
          await runDropSyncCase(c);
          const t1 = Date.now();
          await expectClean('drop-in sync case');
          if (process.env.CLONEFD_FUZZ_SLOW && Date.now() - t0 > 150) console.log(`slow C ${t1 - t0}+${Date.now() - t1} ms`, fc.stringify(c));
        })),
        params(2),
      );
      reportCollected('C');
    },
    PROPERTY_MS * 2,
  );

  // D compares the drop-in's argument rules with Node's own. Those rules are
  // the drop-in issue's work (non-string args, signal names and numbers,
  // uid/gid ranges, non-object options, cwd ''...), so D runs where that
  // work is checked: npm run test:fuzz:dropin (CLONEFD_FUZZ_DIFFERENTIAL=1).
  it.runIf(process.env.CLONEFD_FUZZ_DIFFERENTIAL === '1')(
    'D. differential: node:child_process and the drop-in give the same outcome and code for the same bad input',
    async () => {
      await fc.assert(
        fc.asyncProperty(diffCaseArb, collecting('D', async (c: DiffCase) => {
          // Node 20's own spawnSync aborts the process on 'overlapped' (spawn_sync.cc "invalid child stdio type").
          if (c.api.endsWith('Sync') && c.fault.field === 'stdio' && mentionsOverlapped(c.fault.value)) return;
          // An async timeout past 2**31 - 1 ms is a 1 ms timeout on both sides (setTimeout's
          // TimeoutOverflowWarning): it races the child's own exit, like the short ones left out above.
          if (!c.api.endsWith('Sync') && c.fault.field === 'timeout' && typeof c.fault.value === 'number' && c.fault.value > 2 ** 31 - 1) return;
          // Races and Node's own defects, not argument rules: AbortSignal.timeout(5) races the
          // child; a signal without addEventListener makes Node throw after the spawn and then
          // leaves its 'error' unhandled; an arg whose toString throws makes Node's async spawn
          // throw with its stdio pipes left open.
          const label = isLazy(c.fault.value) ? fc.stringify(c.fault.value) : '';
          if (!c.api.endsWith('Sync') && (label === 'AbortSignal.timeout(5)' || label === 'fake {aborted:false}')) return;
          if (!c.api.endsWith('Sync') && c.fault.field === 'args' && fc.stringify(c.fault.value).includes('{toString() throws}')) return;
          const node = await withDeadline(diffOutcome('node', c), CASE_MS * 2, 'node:child_process case');
          await expectClean('node:child_process case');
          const ours = await withDeadline(diffOutcome('clonefd', c), CASE_MS * 2, 'drop-in case');
          await expectClean('drop-in case');
          if (ours.errors.length) throw new Error(ours.errors.join('\n'));
          // Where Node itself throws an uncoded error (a TypeError from its own
          // code, e.g. a BigInt compared with a number) there is no code to
          // copy: the drop-in must throw too, with a code of its own.
          if (node.outcome.startsWith('throw undefined') && !node.outcome.includes('Command failed') && node.uncoded && ours.outcome.startsWith('throw ')) return;
          if (node.outcome !== ours.outcome) throw new Error(`node: ${node.outcome}\nclonefd (${c.engine}): ${ours.outcome}`);
        })),
        params(3),
      );
      reportCollected('D');
    },
    PROPERTY_MS * 2,
  );
  it(
    'E. drop-in: a ChildProcess whose `fd` was read leaves nothing behind once that fd is closed',
    async () => {
      const { closeSync: close } = await import('node:fs');
      await fc.assert(
        fc.asyncProperty(fc.constantFrom('helper', 'direct'), fc.constantFrom(0, 3, 5), fc.constantFrom('ignore', 'pipe'), async (engine, prog, stdio) => {
          const [file, args] = programs[prog];
          const child = dropin.spawn(file as string, args, { engine: engine as never, stdio: stdio as never });
          const fd = child.fd;
          await withDeadline(new Promise((r) => child.on('close', r)), CASE_MS, 'close');
          if (fd >= 0) close(fd);
          await expectClean(`drop-in spawn(${String(file)}, { engine: '${engine}' }).fd, then closeSync(fd)`);
        }),
        { ...params(4), numRuns: Math.min(RUNS, 20) },
      );
    },
    PROPERTY_MS,
  );

});

