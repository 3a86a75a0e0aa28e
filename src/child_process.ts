/**
 * clonefd/child_process: a drop-in for `node:child_process` whose children
 * are clonefd children (no SIGCHLD, pidfd kill, the exit record with its
 * rusage). Change one import:
 *
 *   import { spawn, execFile, exec, spawnSync, execFileSync, execSync } from 'clonefd/child_process';
 *
 * Same signatures, options, callbacks, promisified forms and errors as
 * Node's. Not supported: IPC ('ipc' in stdio, fork()), which throw
 * ERR_CLONEFD_IPC_UNSUPPORTED.
 */
import { EventEmitter } from 'node:events';
import { constants as osConstants } from 'node:os';
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { binding } from './binding';
import { CLD_DUMPED, CLD_KILLED, O_CLOEXEC } from './constants';
import { AbortError, invalidArgType, invalidArgValue, outOfRange, SystemError } from './errors';
import type { ClonefdInfo } from './info';
import { clonefd, spawn as coreSpawn, type Subprocess } from './index';
import type { Engine, StdioEntry, StdioName } from './options';
import { signalName, toSignalNumber } from './signals';
import { EINVAL, ENOBUFS, ETIMEDOUT } from './errno';

type Signal = NodeJS.Signals | number;

export interface SpawnOptions {
  cwd?: string | URL;
  env?: NodeJS.ProcessEnv;
  argv0?: string;
  stdio?: StdioName | StdioEntry[];
  detached?: boolean;
  uid?: number;
  gid?: number;
  shell?: boolean | string;
  windowsHide?: boolean;
  windowsVerbatimArguments?: boolean;
  signal?: AbortSignal;
  timeout?: number;
  killSignal?: Signal;
  serialization?: string;
  /** clonefd: which engine runs the child ('helper' by default). */
  engine?: Engine;
  /** clonefd: SIGKILL the child when its creator goes away. */
  killWithParent?: boolean;
}

export interface ExecFileOptions extends SpawnOptions {
  maxBuffer?: number;
  encoding?: BufferEncoding | 'buffer' | null;
}

export interface SpawnSyncOptions extends ExecFileOptions {
  input?: string | NodeJS.ArrayBufferView;
}

export interface SpawnSyncReturns<T> {
  pid: number;
  output: (T | null)[] | null;
  stdout: T | null;
  stderr: T | null;
  status: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** Errors Node reports through an 'error' event rather than a throw (lib/internal/child_process.js). */
const ASYNC_SPAWN_ERRORS = new Set(['EACCES', 'EAGAIN', 'EMFILE', 'ENFILE', 'ENOENT']);
const MAX_BUFFER = 1024 * 1024;

function ipcUnsupported(what: string): Error {
  const err = new Error(`${what} is not supported by clonefd/child_process: its children have no IPC channel. Use node:child_process for that.`);
  Object.defineProperty(err, 'code', { value: 'ERR_CLONEFD_IPC_UNSUPPORTED', enumerable: true });
  Error.captureStackTrace(err, ipcUnsupported);
  return err;
}

/** Node's error for an unknown string in a stdio array. */
function syncForkInput(value: string): TypeError {
  const err = new TypeError(`Asynchronous forks do not support Buffer, TypedArray, DataView or string input: ${value}`);
  Object.defineProperty(err, 'code', { value: 'ERR_INVALID_SYNC_FORK_INPUT', enumerable: true, writable: true, configurable: true });
  return err;
}

/** Node's rules for `(file, args?, options?)`, including `shell`. */
function normalizeSpawnArguments(file: unknown, args: unknown, options: unknown) {
  if (typeof file !== 'string') throw invalidArgType('file', 'of type string', file);
  if (file.length === 0) throw invalidArgValue('file', file, 'cannot be empty');
  if (Array.isArray(args)) {
    args = args.slice();
  } else if (args === undefined || args === null) {
    args = [];
  } else if (typeof args !== 'object') {
    throw invalidArgType('args', 'an instance of Array', args);
  } else {
    options = args;
    args = [];
  }
  if (options === undefined) options = {};
  else if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  const opts = { ...(options as SpawnSyncOptions) };
  for (let i = 0; i < (args as unknown[]).length; i++) {
    const a = (args as unknown[])[i];
    if (typeof a !== 'string') throw invalidArgType(`args[${i}]`, 'of type string', a);
  }
  if (opts.shell !== undefined && opts.shell !== null && typeof opts.shell !== 'boolean' && typeof opts.shell !== 'string') {
    throw invalidArgType('options.shell', 'of type boolean or string', opts.shell);
  }
  if (opts.argv0 !== undefined && opts.argv0 !== null && typeof opts.argv0 !== 'string') {
    throw invalidArgType('options.argv0', 'of type string', opts.argv0);
  }
  for (const name of ['windowsHide', 'windowsVerbatimArguments', 'detached'] as const) {
    const v = opts[name];
    if (v !== undefined && v !== null && typeof v !== 'boolean') throw invalidArgType(`options.${name}`, 'of type boolean', v);
  }
  if (opts.serialization !== undefined && opts.serialization !== 'json' && opts.serialization !== 'advanced') {
    throw invalidArgValue('options.serialization', opts.serialization, "must be one of: 'json', 'advanced'");
  }
  // Node passes negative int32 ids on as unsigned ones; -1 (no id at all
  // to setuid) fails in libuv with EINVAL, thrown as 'spawn EINVAL'.
  for (const name of ['uid', 'gid'] as const) {
    const v = opts[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v >= 0 || v < -(2 ** 31)) continue;
    if (v === -1) throw new SystemError(EINVAL, 'spawn');
    opts[name] = v >>> 0;
  }
  // Node reads env with for..in whatever it is (a string gives its indices).
  if (opts.env !== undefined && opts.env !== null && typeof opts.env !== 'object') {
    const copy: Record<string, string> = {};
    for (const key in Object(opts.env)) copy[key] = Object(opts.env)[key];
    opts.env = copy;
  }
  const stdio = opts.stdio;
  if (stdio === 'ipc' as unknown || (Array.isArray(stdio) && stdio.includes('ipc' as StdioEntry))) throw ipcUnsupported("'ipc' in stdio");
  if (Array.isArray(stdio)) {
    for (const entry of stdio) {
      if (typeof entry === 'string' && !['pipe', 'overlapped', 'ignore', 'inherit'].includes(entry)) throw syncForkInput(entry);
    }
  }
  let fileArgs = args as string[];
  let spawnfile = file;
  if (opts.shell) {
    const command = [file, ...fileArgs].join(' ');
    spawnfile = typeof opts.shell === 'string' ? opts.shell : '/bin/sh';
    fileArgs = ['-c', command];
  }
  const argv0 = typeof opts.argv0 === 'string' ? opts.argv0 : spawnfile;
  return { file: spawnfile, args: fileArgs, options: opts, spawnargs: [argv0, ...fileArgs] };
}

/** The clonefd options for a normalized Node-style request. */
function coreOptions(opts: SpawnSyncOptions, stdio: StdioName | StdioEntry[] | undefined) {
  return {
    cwd: opts.cwd ?? undefined,
    env: opts.env ?? undefined,
    argv0: opts.argv0 ?? undefined,
    stdio,
    detached: opts.detached,
    uid: opts.uid ?? undefined,
    gid: opts.gid ?? undefined,
    engine: opts.engine,
    killWithParent: opts.killWithParent,
  };
}

/**
 * execvp's fallback, as Node has it through libuv: an executable without
 * a #! line (ENOEXEC) runs through /bin/sh. The file is resolved the way
 * the search would have found it.
 */
function viaShell(file: string, args: string[], env: NodeJS.ProcessEnv | undefined, cwd: string | URL | undefined): { file: string; args: string[] } | null {
  let resolved = file;
  if (!file.includes('/')) {
    const pathVar = env ? env.PATH : process.env.PATH;
    const dirs = (pathVar ?? '/usr/bin:/bin').split(':');
    const { accessSync, constants, statSync } = require('node:fs') as typeof import('node:fs');
    const { resolve } = require('node:path') as typeof import('node:path');
    const { fileURLToPath } = require('node:url') as typeof import('node:url');
    // Relative PATH entries mean the child's cwd, where sh will run.
    const base = cwd === undefined ? process.cwd() : cwd instanceof URL ? fileURLToPath(cwd) : resolve(cwd);
    const found = dirs
      .map((d) => `${d === '' ? '.' : d}/${file}`)
      .find((p) => {
        try {
          const abs = resolve(base, p);
          accessSync(abs, constants.X_OK);
          return statSync(abs).isFile();
        } catch {
          return false;
        }
      });
    if (!found) return null;
    resolved = found;
  }
  return { file: '/bin/sh', args: [resolved, ...args] };
}

/** Starts the core child, with the /bin/sh fallback for ENOEXEC. */
function start(file: string, args: string[], options: ReturnType<typeof coreOptions>, raw: boolean): Subprocess {
  const launch = (f: string, a: string[]) => (raw ? clonefd(f, a, { ...options, flags: O_CLOEXEC }) : coreSpawn(f, a, { ...options }));
  try {
    return launch(file, args);
  } catch (err) {
    if ((err as SystemError).code !== 'ENOEXEC') throw err;
    const sh = viaShell(file, args, options.env, options.cwd);
    if (!sh) throw err;
    return launch(sh.file, sh.args);
  }
}

/** As Node's ErrnoException for a failed spawn: code, errno, syscall, path, spawnargs. */
function spawnFailure(err: SystemError, syscall: string, file: string, spawnargs: string[]): SystemError {
  const e = new SystemError(-err.errno, `${syscall} ${file}`, { path: file, spawnargs: spawnargs.slice(1) });
  return e;
}

/**
 * What `spawn()` returns: a ChildProcess as in node:child_process, plus
 * the clonefd extras (`fd`, `exited`, `info`).
 */
export class ChildProcess extends EventEmitter {
  pid: number | undefined = undefined;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  killed = false;
  connected = false;
  spawnfile = '';
  spawnargs: string[] = [];
  stdin: Writable | null = null;
  stdout: Readable | null = null;
  stderr: Readable | null = null;
  stdio: (Readable | Writable | null)[] = [];
  /** clonefd: the child's exit record (code, status, utime, stime, rusage) once known. */
  info: ClonefdInfo | null = null;
  /** clonefd: settles with the exit record. */
  exited: Promise<ClonefdInfo>;
  #sub: Subprocess | null = null;
  #closesNeeded = 1;
  #closesGot = 0;
  #resolveExited!: (info: ClonefdInfo) => void;
  #rejectExited!: (err: Error) => void;

  constructor() {
    super();
    this.exited = new Promise((resolve, reject) => {
      this.#resolveExited = resolve;
      this.#rejectExited = reject;
    });
    this.exited.catch(() => {});
  }

  /** clonefd: the seed's clonefd of this child (readable at exit; see clonefd's `Subprocess.fd`). */
  get fd(): number {
    return this.#sub ? this.#sub.fd : -1;
  }

  /** @internal */
  _attach(sub: Subprocess): void {
    this.#sub = sub;
    this.pid = sub.pid;
    this.stdio = sub.stdio;
    this.stdin = sub.stdin;
    this.stdout = sub.stdout;
    this.stderr = sub.stderr;
    for (const stream of sub.stdio) {
      if (!stream) continue;
      this.#closesNeeded++;
      stream.once('close', () => this.#maybeClose());
    }
    sub.once('exit', (info) => this.#onExit(info));
    sub.exited.catch((err: Error) => {
      this.#rejectExited(err);
      this.emit('error', err);
    });
    process.nextTick(() => this.emit('spawn'));
  }

  /** @internal A spawn that failed the way Node reports by an event. */
  _fail(err: SystemError, stdio: unknown): void {
    // As Node: the 'pipe' slots still get sockets (whose other end is
    // closed, so they end at once); no 'spawn', an 'error', then 'close'
    // with the negative errno.
    this.stdio = pipeSlots(stdio).map((isPipe, i) => {
      if (!isPipe) return null;
      const pair = binding.socketPair();
      if (typeof pair === 'number') return null;
      binding.closeFd(pair[1]);
      return new Socket({ fd: pair[0], readable: i > 0 });
    });
    this.stdin = (this.stdio[0] as Writable | null) ?? null;
    this.stdout = (this.stdio[1] as Readable | null) ?? null;
    this.stderr = (this.stdio[2] as Readable | null) ?? null;
    this.#rejectExited(err);
    process.nextTick(() => {
      this.exitCode = err.errno;
      this.emit('error', err);
      this.emit('close', this.exitCode, null);
    });
  }

  #onExit(info: ClonefdInfo): void {
    this.info = info;
    if (info.code === CLD_KILLED || info.code === CLD_DUMPED) this.signalCode = signalName(info.status) as NodeJS.Signals;
    else this.exitCode = info.status;
    this.#resolveExited(info);
    this.emit('exit', this.exitCode, this.signalCode);
    this.#maybeClose();
  }

  #maybeClose(): void {
    this.#closesGot++;
    if (this.#closesGot === this.#closesNeeded) this.emit('close', this.exitCode, this.signalCode);
  }

  kill(signal?: Signal): boolean {
    const sig = signal === undefined || signal === null ? 15 : toSignalNumber(signal, 'signal');
    if (!this.#sub) return false;
    const sent = this.#sub.kill(sig);
    if (sent) this.killed = true;
    return sent;
  }

  ref(): void {
    this.#sub?.ref();
  }

  unref(): void {
    this.#sub?.unref();
  }

  [Symbol.dispose](): void {
    if (!this.killed) this.kill();
  }

}

/** `child_process.spawn(file, args?, options?)`. */
export function spawn(file: string, args?: readonly string[] | SpawnOptions, options?: SpawnOptions): ChildProcess {
  const n = normalizeSpawnArguments(file, args, options);
  const opts = n.options;
  validateTimeout(opts.timeout);
  const killSignal = opts.killSignal === undefined ? 15 : toSignalNumber(opts.killSignal, 'options.killSignal');
  if (opts.signal !== undefined) validateAbortSignal(opts.signal, 'options.signal');
  const child = new ChildProcess();
  child.spawnfile = n.file;
  child.spawnargs = n.spawnargs;
  let sub: Subprocess;
  try {
    sub = start(n.file, n.args, coreOptions(opts, opts.stdio), false);
  } catch (err) {
    const e = err as SystemError;
    if (e instanceof SystemError && ASYNC_SPAWN_ERRORS.has(e.code)) {
      child._fail(spawnFailure(e, 'spawn', n.file, n.spawnargs), opts.stdio);
      return child;
    }
    throw err;
  }
  child._attach(sub);
  if (opts.timeout && opts.timeout > 0) {
    let timer: NodeJS.Timeout | undefined = setTimeout(() => {
      timer = undefined;
      child.kill(killSignal);
    }, opts.timeout);
    child.once('exit', () => {
      if (timer) clearTimeout(timer);
    });
  }
  if (opts.signal) {
    const signal = opts.signal;
    const onAbort = () => {
      if (child.kill(killSignal)) child.emit('error', new AbortError(undefined, { cause: signal.reason }));
    };
    if (signal.aborted) process.nextTick(onAbort);
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      child.once('exit', () => signal.removeEventListener('abort', onAbort));
    }
  }
  return child;
}

/** Which stdio slots are pipes ('pipe' is the default), as Node counts them. */
function pipeSlots(stdio: unknown): boolean[] {
  const entries: unknown[] = typeof stdio === 'string' ? [stdio, stdio, stdio] : Array.isArray(stdio) ? [...stdio] : ['pipe', 'pipe', 'pipe'];
  while (entries.length < 3) entries.push(undefined);
  return entries.map((e, i) => e === 'pipe' || e === 'overlapped' || ((e === undefined || e === null) && i < 3));
}

function validateTimeout(timeout: unknown): void {
  if (timeout === undefined || timeout === null) return;
  if (!(typeof timeout === 'number' && Number.isInteger(timeout) && timeout >= 0)) throw outOfRange('timeout', 'an unsigned integer', timeout);
}

function validateAbortSignal(signal: unknown, name: string): void {
  const s = signal as Partial<AbortSignal> | null;
  if (s === null || typeof s !== 'object' || typeof s.aborted !== 'boolean' || typeof s.addEventListener !== 'function') {
    throw invalidArgType(name, 'an instance of AbortSignal', signal);
  }
}

function validateMaxBuffer(maxBuffer: unknown): void {
  if (maxBuffer === undefined || maxBuffer === null) return;
  if (typeof maxBuffer !== 'number' || Number.isNaN(maxBuffer) || maxBuffer < 0) {
    throw outOfRange('options.maxBuffer', 'a positive number', maxBuffer);
  }
}

function maxBufferError(name: string): RangeError {
  const err = new RangeError(`${name} maxBuffer length exceeded`);
  Object.defineProperty(err, 'code', { value: 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER', enumerable: true, writable: true, configurable: true });
  return err;
}

type ExecCallback = (error: ExecError | null, stdout: string | Buffer, stderr: string | Buffer) => void;

export interface ExecError extends Error {
  code?: number | string | null;
  killed?: boolean;
  signal?: NodeJS.Signals | null;
  cmd?: string;
  stdout?: string | Buffer;
  stderr?: string | Buffer;
}

/** `child_process.execFile(file, args?, options?, callback?)`. */
export function execFile(file: string, ...rest: unknown[]): ChildProcess {
  // Node's normalizeExecFileArgs.
  let [args, options, callback] = rest as [unknown, unknown, unknown];
  if (Array.isArray(args)) {
    args = args.slice();
  } else if (args !== null && args !== undefined && typeof args === 'object') {
    callback = options;
    options = args;
    args = null;
  } else if (typeof args === 'function') {
    callback = args;
    options = null;
    args = null;
  }
  if (args === null || args === undefined) args = [];
  if (typeof options === 'function') callback = options;
  else if (options !== null && options !== undefined && typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  if (options === null || options === undefined || typeof options === 'function') options = {};
  if (callback !== null && callback !== undefined && typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback);
  return execFileImpl(file, args as string[], options as ExecFileOptions, (callback ?? undefined) as ExecCallback | undefined);
}

function execFileImpl(file: string, args: string[], options: ExecFileOptions, callback: ExecCallback | undefined): ChildProcess {
  const opts: ExecFileOptions = { encoding: 'utf8', timeout: 0, maxBuffer: MAX_BUFFER, killSignal: 'SIGTERM', ...options };
  validateTimeout(opts.timeout);
  validateMaxBuffer(opts.maxBuffer);
  const killSignal = toSignalNumber(opts.killSignal ?? 'SIGTERM', 'options.killSignal');
  const child = spawn(file, args, { ...opts, timeout: undefined, killSignal: opts.killSignal });
  const encoding = opts.encoding && opts.encoding !== 'buffer' && Buffer.isEncoding(opts.encoding) ? opts.encoding : null;
  const out: (string | Buffer)[] = [];
  const err: (string | Buffer)[] = [];
  let outLen = 0;
  let errLen = 0;
  let ex: ExecError | null = null;
  let killed = false;
  let exited = false;
  let timer: NodeJS.Timeout | undefined;
  const maxBuffer = opts.maxBuffer ?? MAX_BUFFER;

  const join = (chunks: (string | Buffer)[]) => (encoding ? chunks.join('') : Buffer.concat(chunks as Buffer[]));
  const exithandler = (code?: number | null, signal?: NodeJS.Signals | null) => {
    if (exited) return;
    exited = true;
    if (timer) clearTimeout(timer);
    if (!callback) return;
    const stdout = join(out);
    const stderr = join(err);
    if (!ex && code === 0 && signal === null) {
      callback(null, stdout, stderr);
      return;
    }
    let cmd = file;
    if (args.length) cmd += ` ${args.join(' ')}`;
    if (!ex) {
      ex = new Error(`Command failed: ${cmd}\n${stderr}`) as ExecError;
      ex.code = typeof code === 'number' && code < 0 ? codeName(code) : code;
      ex.killed = child.killed || killed;
      ex.signal = signal ?? null;
    }
    ex.cmd = cmd;
    callback(ex, stdout, stderr);
  };
  const kill = () => {
    child.stdout?.destroy();
    child.stderr?.destroy();
    killed = true;
    try {
      child.kill(killSignal);
    } catch (e) {
      ex = e as ExecError;
      exithandler();
    }
  };
  if (opts.timeout && opts.timeout > 0) {
    timer = setTimeout(() => {
      timer = undefined;
      kill();
    }, opts.timeout);
  }
  const collect = (stream: Readable | null, chunks: (string | Buffer)[], name: 'stdout' | 'stderr') => {
    if (!stream) return;
    if (encoding) stream.setEncoding(encoding);
    stream.on('data', (chunk: string | Buffer) => {
      const length = typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding ?? 'utf8') : chunk.length;
      const total = (name === 'stdout' ? (outLen += length) : (errLen += length));
      if (total > maxBuffer) {
        const keep = maxBuffer - (total - length);
        chunks.push(chunk.slice(0, keep) as string | Buffer);
        ex = maxBufferError(name) as unknown as ExecError;
        kill();
      } else {
        chunks.push(chunk);
      }
    });
  };
  collect(child.stdout, out, 'stdout');
  collect(child.stderr, err, 'stderr');
  child.addListener('close', exithandler);
  child.addListener('error', (e: Error) => {
    ex = e as ExecError;
    child.stdout?.destroy();
    child.stderr?.destroy();
    exithandler();
  });
  return child;
}

function codeName(code: number): string {
  for (const [name, num] of Object.entries(osConstants.errno)) if (num === -code) return name;
  return String(code);
}

/** `child_process.exec(command, options?, callback?)`. */
export function exec(command: string, options?: ExecFileOptions | ExecCallback | null, callback?: ExecCallback): ChildProcess {
  if (typeof command !== 'string') throw invalidArgType('command', 'of type string', command);
  if (typeof options === 'function') {
    callback = options;
    options = undefined;
  }
  const opts = { ...(options ?? {}) } as ExecFileOptions;
  opts.shell = typeof opts.shell === 'string' ? opts.shell : true;
  return execFile(command, opts, callback);
}

// util.promisify(execFile / exec): resolves { stdout, stderr }; rejects
// with the error carrying them; the promise has `.child`, as Node's.
function customPromisify(orig: (...args: unknown[]) => ChildProcess) {
  return (...args: unknown[]) => {
    let resolve!: (v: { stdout: string | Buffer; stderr: string | Buffer }) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<{ stdout: string | Buffer; stderr: string | Buffer }>((res, rej) => {
      resolve = res;
      reject = rej;
    }) as Promise<{ stdout: string | Buffer; stderr: string | Buffer }> & { child: ChildProcess };
    promise.child = orig(...args, (err: ExecError | null, stdout: string | Buffer, stderr: string | Buffer) => {
      if (err !== null) {
        err.stdout = stdout;
        err.stderr = stderr;
        reject(err);
      } else {
        resolve({ stdout, stderr });
      }
    });
    return promise;
  };
}
Object.defineProperty(execFile, promisify.custom, { enumerable: false, value: customPromisify(execFile as (...a: unknown[]) => ChildProcess) });
Object.defineProperty(exec, promisify.custom, { enumerable: false, value: customPromisify(exec as (...a: unknown[]) => ChildProcess) });

/** `child_process.fork()`: not available (no IPC). */
export function fork(): never {
  throw ipcUnsupported('fork()');
}

/** `child_process.spawnSync(file, args?, options?)`. */
export function spawnSync(file: string, args?: readonly string[] | SpawnSyncOptions, options?: SpawnSyncOptions): SpawnSyncReturns<string | Buffer> {
  const n = normalizeSpawnArguments(file, args, options);
  const opts: SpawnSyncOptions = { maxBuffer: MAX_BUFFER, ...n.options };
  validateTimeout(opts.timeout);
  validateMaxBuffer(opts.maxBuffer);
  const killSignal = opts.killSignal === undefined ? 15 : toSignalNumber(opts.killSignal, 'options.killSignal');
  let input: Buffer | null = null;
  if (opts.input !== undefined && opts.input !== null) {
    if (typeof opts.input === 'string') input = Buffer.from(opts.input, typeof opts.encoding === 'string' && opts.encoding !== 'buffer' ? opts.encoding : 'utf8');
    else if (ArrayBuffer.isView(opts.input)) input = Buffer.from(opts.input.buffer, opts.input.byteOffset, opts.input.byteLength);
    else throw invalidArgType('options.input', 'of type string or an instance of Buffer, TypedArray, or DataView', opts.input);
  }
  if (typeof opts.encoding === 'string' && opts.encoding !== 'buffer' && !Buffer.isEncoding(opts.encoding)) {
    const err = new TypeError(`Unknown encoding: ${opts.encoding}`);
    Object.defineProperty(err, 'code', { value: 'ERR_UNKNOWN_ENCODING', enumerable: true, writable: true, configurable: true });
    throw err;
  }
  const encoding = opts.encoding && opts.encoding !== 'buffer' && Buffer.isEncoding(opts.encoding) ? opts.encoding : null;

  // Our own pipes (raw fds, no event loop): the child gets their other ends.
  let stdio: unknown[] = typeof opts.stdio === 'string' ? [opts.stdio, opts.stdio, opts.stdio] : [...(opts.stdio ?? ['pipe', 'pipe', 'pipe'])];
  while (stdio.length < 3) stdio.push(undefined);
  const parentEnds: (number | null)[] = stdio.map(() => null);
  const childStdio: StdioEntry[] = [];
  const cleanup: number[] = [];
  try {
    stdio.forEach((entry, i) => {
      if (((entry === undefined || entry === null) && i < 3) || entry === 'pipe' || entry === 'overlapped') {
        const p = binding.pipe();
        if (typeof p === 'number') throw new SystemError(-p, 'pipe');
        // stdin: the child reads; others: the child writes.
        parentEnds[i] = i === 0 ? p[1] : p[0];
        childStdio.push(i === 0 ? p[0] : p[1]);
        cleanup.push(i === 0 ? p[0] : p[1]);
      } else {
        childStdio.push(entry === undefined || entry === null ? 'ignore' : (entry as StdioEntry));
      }
    });
  } catch (err) {
    for (const fd of [...cleanup, ...parentEnds]) if (typeof fd === 'number') binding.closeFd(fd);
    throw err;
  }

  let sub: Subprocess;
  try {
    sub = start(n.file, n.args, coreOptions(opts, childStdio), true);
  } catch (err) {
    for (const fd of parentEnds) if (typeof fd === 'number') binding.closeFd(fd);
    const e = err as SystemError;
    if (!(e instanceof SystemError)) throw err;
    // Node's shape: the error in the result, never thrown.
    return { error: spawnFailure(e, 'spawnSync', n.file, n.spawnargs), status: null, signal: null, output: null, pid: 0, stdout: null, stderr: null };
  } finally {
    // The child has its own copies (or there is no child).
    for (const fd of cleanup) binding.closeFd(fd);
  }

  const readIdx: number[] = [];
  const readFds: number[] = [];
  parentEnds.forEach((fd, i) => {
    if (fd !== null && i !== 0) {
      readIdx.push(i);
      readFds.push(fd);
    }
  });
  const stdinEnd = parentEnds[0] ?? -1;
  const drained = binding.drainSync(
    Int32Array.from(readFds),
    stdinEnd,
    stdinEnd >= 0 ? input ?? Buffer.alloc(0) : null,
    sub.fd,
    sub.pidfd,
    opts.timeout ?? 0,
    opts.maxBuffer ?? MAX_BUFFER,
    killSignal,
  );
  let info: ClonefdInfo | null = null;
  let lost: SystemError | undefined;
  try {
    info = sub.read();
  } catch (err) {
    lost = err as SystemError; // the status was lost (ECHILD): reported in the result
  }
  sub.close();

  const output: (string | Buffer | null)[] = stdio.map(() => null);
  readIdx.forEach((i, k) => {
    output[i] = encoding ? drained.outputs[k].toString(encoding) : drained.outputs[k];
  });
  const killedBySignal = info !== null && (info.code === CLD_KILLED || info.code === CLD_DUMPED);
  // ETIMEDOUT, ENOBUFS (maxBuffer), or a failed poll: reported in the result, as Node does.
  const errno = drained.timedOut ? ETIMEDOUT : drained.overflow ? ENOBUFS : drained.error;
  const error = errno ? new SystemError(errno, `spawnSync ${n.file}`, { path: n.file, spawnargs: n.spawnargs.slice(1) }) : lost;
  // Keys in Node's order.
  return {
    ...(error ? { error } : {}),
    status: info && !killedBySignal ? info.status : null,
    signal: killedBySignal ? (signalName(info!.status) as NodeJS.Signals) : null,
    output,
    pid: sub.pid,
    stdout: output[1] ?? null,
    stderr: output[2] ?? null,
  };
}

function checkExecSyncError(ret: SpawnSyncReturns<string | Buffer>, cmd: string): Error | undefined {
  let err: Error | undefined;
  if (ret.error) {
    err = ret.error;
    Object.assign(err, ret);
  } else if (ret.status !== 0) {
    let msg = `Command failed: ${cmd}`;
    if (ret.stderr && ret.stderr.length > 0) msg += `\n${ret.stderr.toString()}`;
    err = new Error(msg);
    Object.assign(err, ret);
  }
  return err;
}

/** `child_process.execFileSync(file, args?, options?)`. */
export function execFileSync(file: string, args?: readonly string[] | SpawnSyncOptions, options?: SpawnSyncOptions): string | Buffer {
  if (!Array.isArray(args) && args !== undefined && args !== null && typeof args === 'object') {
    options = args as SpawnSyncOptions;
    args = [];
  }
  const opts = { ...(options ?? {}) };
  const inheritStderr = !opts.stdio;
  const ret = spawnSync(file, (args ?? []) as string[], opts);
  if (inheritStderr && ret.stderr) process.stderr.write(ret.stderr);
  const cmd = [opts.argv0 || file, ...((args ?? []) as string[])].join(' ');
  const err = checkExecSyncError(ret, cmd);
  if (err) throw err;
  return ret.stdout as string | Buffer;
}

/** `child_process.execSync(command, options?)`. */
export function execSync(command: string, options?: SpawnSyncOptions): string | Buffer {
  if (typeof command !== 'string') throw invalidArgType('command', 'of type string', command);
  const opts = { ...(options ?? {}) };
  opts.shell = typeof opts.shell === 'string' ? opts.shell : true;
  const inheritStderr = !opts.stdio;
  const ret = spawnSync(command, [], opts);
  if (inheritStderr && ret.stderr) process.stderr.write(ret.stderr);
  const err = checkExecSyncError(ret, command);
  if (err) throw err;
  return ret.stdout as string | Buffer;
}

export default { spawn, execFile, exec, spawnSync, execFileSync, execSync, fork, ChildProcess };
