// The drop-in's argument rules: Node's normalizeSpawnArguments and the
// validators of lib/child_process.js, and the translation of a Node-style
// request into the core's options. Node's code is the reference for every
// rule here (lib/child_process.js).
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { IPC_STDIO, ownProps, type Engine, type StdioEntry, type StdioName } from '../options';
import { codedError, invalidArgType, invalidArgValue, outOfRange, SystemError } from '../errors';
import { EINVAL } from '../errno';
import { convertToValidSignal } from '../signals';

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

/** Node's default maxBuffer for exec/execFile and the sync forms. */
export const MAX_BUFFER = 1024 * 1024;


/** Node's error for a string or buffer in an asynchronous spawn's stdio array. */
function syncForkInput(value: unknown): TypeError {
  return codedError(TypeError, 'ERR_INVALID_SYNC_FORK_INPUT', `Asynchronous forks do not support Buffer, TypedArray, DataView or string input: ${inspect(value)}`);
}

export interface NormalizedSpawn {
  file: string;
  args: string[];
  options: SpawnSyncOptions;
  /** argv as the child sees it: [argv0, ...args] (in the sync forms made strings, as Node's C++ makes them). */
  spawnargs: string[];
}

// Node's validators (lib/internal/validators.js, lib/child_process.js), with
// Node's codes and words.

/** A string argument must not contain NUL (validateArgumentNullCheck); other types pass. */
export function validateArgumentNullCheck(arg: unknown, propName: string): void {
  if (typeof arg === 'string' && arg.includes('\u0000')) throw invalidArgValue(propName, arg, 'must be a string without null bytes');
}

export function validateArgumentsNullCheck(args: unknown[], propName: string): void {
  for (let i = 0; i < args.length; ++i) validateArgumentNullCheck(args[i], `${propName}[${i}]`);
}

/** validateObject with no flags: not null, not an array, typeof 'object'. */
export function validateObject(value: unknown, name: string): void {
  if (value === null || Array.isArray(value) || typeof value !== 'object') throw invalidArgType(name, 'Object', value);
}

function validateBoolean(value: unknown, name: string): void {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'boolean', value);
}

function validateString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw invalidArgType(name, 'string', value);
}

/**
 * Node's isInt32 (`value === (value | 0)`). A BigInt makes Node's own `|`
 * throw an uncoded TypeError ('Cannot mix BigInt and other types'); here it
 * is just not an int32 (ERR_INVALID_ARG_TYPE, worded as Node's for any other type).
 */
function isInt32(value: unknown): value is number {
  return typeof value !== 'bigint' && value === ((value as number) | 0);
}

/** Node's isURL (lib/internal/url.js): what fs and child_process take for a file: URL. */
function isURL(value: unknown): boolean {
  const v = value as { href?: unknown; protocol?: unknown; auth?: unknown; path?: unknown } | null | undefined;
  return Boolean(v?.href && v.protocol && v.auth === undefined && v.path === undefined);
}

/** Node's getValidatedPath for options.cwd: a string, a Uint8Array (Buffer) or a file: URL, without NUL. */
export function getValidatedPath(value: unknown, propName: string): string | Uint8Array {
  const path = isURL(value) ? fileURLToPath(value as URL) : value;
  if (typeof path !== 'string' && !(path instanceof Uint8Array)) throw invalidArgType(propName, ['string', 'Buffer', 'URL'], path);
  if (typeof path === 'string' ? path.includes('\u0000') : path.includes(0)) {
    throw invalidArgValue(propName, path, 'must be a string, Uint8Array, or URL without null bytes');
  }
  return path;
}

/** Node ≥ 24 warns once per process about args given with `shell` (DEP0190). */
let emittedDEP0190 = false;
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);

/** Where coreOptions finds what normalizeSpawnArguments made of the call. */
const kNormalized = Symbol('clonefd.normalized');

/** Node's normalizeSpawnArguments (lib/child_process.js), rule for rule. */
export function normalizeSpawnArguments(file: unknown, args: unknown, options: unknown): NormalizedSpawn {
  validateString(file, 'file');
  validateArgumentNullCheck(file, 'file');
  if (file.length === 0) throw invalidArgValue('file', file, 'cannot be empty');
  if (Array.isArray(args)) {
    args = args.slice();
  } else if (args === undefined || args === null) {
    args = [];
  } else if (typeof args !== 'object') {
    throw invalidArgType('args', 'object', args);
  } else {
    options = args;
    args = [];
  }
  const argList = args as unknown[];
  validateArgumentsNullCheck(argList, 'args');
  if (options !== undefined) validateObject(options, 'options');
  const opts = ownProps<SpawnSyncOptions & Record<string | symbol, unknown>>(options);
  if (opts.cwd !== undefined && opts.cwd !== null) opts.cwd = getValidatedPath(opts.cwd, 'options.cwd') as string;
  if (opts.detached !== undefined && opts.detached !== null) validateBoolean(opts.detached, 'options.detached');
  if (opts.uid !== undefined && opts.uid !== null && !isInt32(opts.uid)) throw invalidArgType('options.uid', 'int32', opts.uid);
  if (opts.gid !== undefined && opts.gid !== null && !isInt32(opts.gid)) throw invalidArgType('options.gid', 'int32', opts.gid);
  if (opts.shell !== undefined && opts.shell !== null && typeof opts.shell !== 'boolean' && typeof opts.shell !== 'string') {
    throw invalidArgType('options.shell', ['boolean', 'string'], opts.shell);
  }
  if (opts.argv0 !== undefined && opts.argv0 !== null) {
    validateString(opts.argv0, 'options.argv0');
    validateArgumentNullCheck(opts.argv0, 'options.argv0');
  }
  if (opts.windowsHide !== undefined && opts.windowsHide !== null) validateBoolean(opts.windowsHide, 'options.windowsHide');
  if (opts.windowsVerbatimArguments !== undefined && opts.windowsVerbatimArguments !== null) {
    validateBoolean(opts.windowsVerbatimArguments, 'options.windowsVerbatimArguments');
  }
  let fileArgs = argList;
  let spawnfile = file;
  if (opts.shell) {
    validateArgumentNullCheck(opts.shell, 'options.shell');
    if (NODE_MAJOR >= 24 && argList.length > 0 && !emittedDEP0190) {
      emittedDEP0190 = true;
      process.emitWarning(
        'Passing args to a child process with shell option true can lead to security vulnerabilities, as the arguments are not escaped, only concatenated.',
        'DeprecationWarning',
        'DEP0190',
      );
    }
    // join(): null and undefined become '', a Symbol throws Node's TypeError.
    const command = [file, ...argList].join(' ');
    spawnfile = typeof opts.shell === 'string' ? opts.shell : '/bin/sh';
    fileArgs = ['-c', command];
  }
  const argv0 = typeof opts.argv0 === 'string' ? opts.argv0 : spawnfile;
  // The environment as Node builds envPairs: every enumerable key, own or
  // inherited (for..in, whatever env is), `${key}=${value}`.
  const env = (opts.env || process.env) as Record<string, unknown>;
  const envCopy: Record<string, string> = Object.create(null);
  if (process.env.NODE_V8_COVERAGE && (!opts.env || !Object.hasOwn(opts.env, 'NODE_V8_COVERAGE'))) envCopy.NODE_V8_COVERAGE = process.env.NODE_V8_COVERAGE;
  for (const key in env) {
    const value = env[key];
    if (value === undefined) continue;
    validateArgumentNullCheck(key, `options.env['${key}']`);
    validateArgumentNullCheck(value, `options.env['${key}']`);
    envCopy[key] = `${value as string}`;
  }
  opts.env = opts.env ? envCopy : undefined;
  const n: NormalizedSpawn = { file: spawnfile, args: fileArgs as string[], options: opts, spawnargs: [argv0, ...(fileArgs as string[])] };
  opts[kNormalized] = n;
  return n;
}

/**
 * Node's getValidStdio (lib/internal/child_process.js) as entries for the
 * core: one per fd, at least three. Numbers and `{ fd }` objects are taken
 * as Node's C++ takes them (ToInt32; a negative one is /dev/null for fds
 * 0-2 and nothing above). In the sync forms a string or buffer entry is
 * skipped, as Node skips it (the later entries move down). `inputs[fd]`,
 * when asked for, tells which pipes are the child's input.
 */
export function validStdio(stdio: unknown, sync: boolean, inputs?: boolean[]): StdioEntry[] {
  if (!stdio) stdio = 'pipe';
  let list: unknown[];
  if (typeof stdio === 'string') {
    list = stdioStringToArray(stdio);
  } else if (!Array.isArray(stdio)) {
    throw invalidArgValue('stdio', stdio);
  } else {
    list = stdio.slice();
  }
  while (list.length < 3) list.push(undefined);
  const out: StdioEntry[] = [];
  let ipc = false;
  for (let i = 0; i < list.length; i++) {
    let entry = list[i];
    if (entry === undefined || entry === null) entry = i < 3 ? 'pipe' : 'ignore';
    if (entry === 'ignore') out.push('ignore');
    else if (entry === 'pipe' || entry === 'overlapped' || (typeof entry === 'number' && entry < 0)) {
      // A pipe's direction is its entry's, not its fd's (Node: readable
      // when i === 0), which differ once a skipped entry moved it down.
      if (inputs) inputs[out.length] = i === 0;
      out.push(entry === 'overlapped' ? 'overlapped' : 'pipe');
    }
    else if (entry === 'ipc') {
      if (sync) throw codedError(Error, 'ERR_IPC_SYNC_FORK', 'IPC cannot be used with synchronous forks');
      if (ipc) throw codedError(Error, 'ERR_IPC_ONE_PIPE', 'Child process can have only one IPC pipe');
      ipc = true;
      out.push(IPC_STDIO as StdioEntry);
    } else if (entry === 'inherit') out.push(i);
    else if (typeof entry === 'number' || typeof (entry as { fd?: unknown }).fd === 'number') {
      const raw = typeof entry === 'number' ? entry : (entry as { fd: number }).fd;
      // As Node's C++ and libuv take it: ToInt32; -1 is EINVAL at the spawn
      // (coreOptions), another negative one /dev/null for fds 0-2 and nothing above.
      const fd = raw | 0;
      if (fd === -1) out.push(INVALID_FD);
      else if (fd < 0) out.push('ignore');
      else if (typeof entry === 'object' && fd === raw) out.push(entry as StdioEntry);
      else out.push(fd);
    } else if (isHandleWrap(entry) || isHandleWrap((entry as { handle?: unknown }).handle) || isHandleWrap((entry as { _handle?: unknown })._handle)) {
      out.push(entry as StdioEntry);
    } else if (ArrayBuffer.isView(entry) || typeof entry === 'string') {
      if (!sync) throw syncForkInput(entry);
    } else {
      throw invalidArgValue('stdio', entry);
    }
  }
  return out;
}

/** Node's stdioStringToArray: one stdio name for fds 0-2. */
export function stdioStringToArray(stdio: string): unknown[] {
  if (stdio === 'ignore' || stdio === 'overlapped' || stdio === 'pipe') return [stdio, stdio, stdio];
  if (stdio === 'inherit') return [0, 1, 2];
  throw invalidArgValue('stdio', stdio);
}

/**
 * Node's getHandleWrapType: one of its Pipe, TTY, TCP or UDP handles (a
 * net.Socket's or a TTY stream's `_handle`). Those classes are internal to
 * Node, so they are told by name.
 */
function isHandleWrap(handle: unknown): boolean {
  if (handle === null || typeof handle !== 'object') return false;
  const name = (handle as { constructor?: { name?: unknown } }).constructor?.name;
  return name === 'Pipe' || name === 'TTY' || name === 'TCP' || name === 'UDP';
}

/** A stdio entry that makes the spawn fail with EINVAL (libuv's answer for fd -1). */
const INVALID_FD = Object.freeze({ fd: -1 }) as unknown as StdioEntry;

/**
 * The core's options for a normalized Node-style request, with what Node
 * checks or converts after normalizeSpawnArguments: the async spawn's
 * stdio and serialization (ChildProcess.prototype.spawn), and the args as
 * its C++ takes them (each made a string; a Symbol throws).
 */
export function coreOptions(opts: SpawnSyncOptions, stdio: StdioName | StdioEntry[] | undefined, mode: 'async' | 'sync' = 'async') {
  const n = (opts as Record<symbol, NormalizedSpawn | undefined>)[kNormalized];
  let env: NodeJS.ProcessEnv | undefined = opts.env ?? undefined;
  let serialization: 'json' | 'advanced' = 'json';
  let ipcFd = -1;
  if (mode === 'async') {
    stdio = opts.stdio = validStdio(opts.stdio, false);
    serialization = validSerialization(opts.serialization);
    ipcFd = stdio.indexOf(IPC_STDIO as StdioEntry);
    if (ipcFd >= 0) env = ipcEnv(env ?? process.env, ipcFd, serialization);
  }
  if (n) {
    for (let i = 0; i < n.args.length; i++) n.args[i] = `${n.args[i] as unknown as string}`;
    if (mode === 'sync') n.spawnargs = n.spawnargs.map((a) => `${a as unknown as string}`);
  }
  // As Node's C++ reads cwd: the async spawn takes a string only, and an
  // empty one is no cwd (so is a Buffer); the sync one takes the value's
  // toString() (a Buffer's is its UTF-8), and '' fails there (ENOENT).
  let cwd: string | URL | undefined = opts.cwd ?? undefined;
  if (cwd instanceof Uint8Array) cwd = mode === 'async' ? undefined : String(cwd);
  if (mode === 'async' && cwd === '') cwd = undefined;
  if (Array.isArray(stdio) && stdio.includes(INVALID_FD)) throw new SystemError(EINVAL, 'spawn');
  // The sync forms' trailing 'ignore' entries past fd 2 map nothing: left
  // out, so that many of them (Node takes any number) stay within the
  // core's limits. (The async ChildProcess keeps one stdio slot per entry.)
  if (mode === 'sync' && Array.isArray(stdio)) {
    stdio = stdio.slice();
    while (stdio.length > 3 && stdio[stdio.length - 1] === 'ignore') stdio.pop();
  }
  for (const name of ['uid', 'gid'] as const) {
    const v = opts[name];
    // Node passes a negative id on as an unsigned one; -1 (no id at all to
    // set) fails in libuv with EINVAL: thrown by spawn, in the result of spawnSync.
    if (v === -1) throw new SystemError(EINVAL, 'spawn');
  }
  const id = (v: number | null | undefined) => (typeof v === 'number' ? v >>> 0 : undefined);
  return {
    cwd,
    env,
    argv0: n ? n.spawnargs[0] : opts.argv0 ?? undefined,
    stdio,
    detached: !!opts.detached,
    uid: id(opts.uid),
    gid: id(opts.gid),
    engine: opts.engine,
    killWithParent: opts.killWithParent,
  };
}
export type CoreOptions = ReturnType<typeof coreOptions>;

/** Node's check of `serialization` (validateOneOf), and its default. */
function validSerialization(ser: unknown): 'json' | 'advanced' {
  if (ser !== undefined && ser !== 'json' && ser !== 'advanced') throw invalidArgValue('options.serialization', ser, "must be one of: undefined, 'json', 'advanced'");
  return ser ?? 'json';
}

/** The IPC slot of a validated stdio list, and how its messages are framed: what the ChildProcess needs to set the channel up. */
export function ipcSlot(stdio: unknown, serialization: unknown): { fd: number; serialization: 'json' | 'advanced' } | null {
  const fd = Array.isArray(stdio) ? stdio.indexOf(IPC_STDIO) : -1;
  return fd < 0 ? null : { fd, serialization: validSerialization(serialization) };
}

/** What a Node child reads at startup to find its channel (Node appends the same two pairs). */
function ipcEnv(env: NodeJS.ProcessEnv | Record<string, string>, fd: number, serialization: string): Record<string, string | undefined> {
  return { ...env, NODE_CHANNEL_FD: String(fd), NODE_CHANNEL_SERIALIZATION_MODE: serialization };
}

/** Node's validateTimeout (lib/child_process.js). */
export function validateTimeout(timeout: unknown): void {
  if (timeout === undefined || timeout === null) return;
  if (!(typeof timeout === 'number' && Number.isInteger(timeout) && timeout >= 0)) throw outOfRange('timeout', 'an unsigned integer', timeout);
}

/** Node's validateAbortSignal: undefined, or an object with an `aborted` property. */
export function validateAbortSignal(signal: unknown, name: string): void {
  if (signal !== undefined && (signal === null || typeof signal !== 'object' || !('aborted' in signal))) {
    throw invalidArgType(name, 'AbortSignal', signal);
  }
}

/** Node's sanitizeKillSignal: the signal's number, or undefined (the default) for null and undefined. */
export function sanitizeKillSignal(killSignal: unknown): number | undefined {
  if (typeof killSignal === 'string' || typeof killSignal === 'number') return convertToValidSignal(killSignal);
  if (killSignal !== undefined && killSignal !== null) throw invalidArgType('options.killSignal', ['string', 'number'], killSignal);
  return undefined;
}

/**
 * Node's normalizeExecFileArgs (execFile, execFileSync): `(file, args?,
 * options?, callback?)` with either optional part left out.
 */
export function normalizeExecFileArgs(file: unknown, args: unknown, options: unknown, callback: unknown) {
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
  else if (options !== null && options !== undefined) validateObject(options, 'options');
  if (options === null || options === undefined || typeof options === 'function') options = {};
  if (callback !== null && callback !== undefined && typeof callback !== 'function') throw invalidArgType('callback', 'Function', callback);
  const o = options as { argv0?: unknown };
  if (o.argv0 !== undefined && o.argv0 !== null) {
    validateString(o.argv0, 'options.argv0');
    validateArgumentNullCheck(o.argv0, 'options.argv0');
  }
  return { file: file as string, args: args as string[], options: options as SpawnSyncOptions, callback: (callback ?? undefined) as ((...a: never[]) => void) | undefined };
}

/** Node's normalizeExecArgs (exec, execSync): the command checked, `shell` set. */
export function normalizeExecArgs(command: unknown, options: unknown): { file: string; options: SpawnSyncOptions } {
  validateString(command, 'command');
  validateArgumentNullCheck(command, 'command');
  const opts = ownProps<SpawnSyncOptions>(typeof options === 'function' ? undefined : options);
  opts.shell = typeof opts.shell === 'string' ? opts.shell : true;
  return { file: command, options: opts };
}

/**
 * What Node's ChildProcess.prototype.spawn(options) takes: options as
 * normalizeSpawnArguments makes them (`file`, `args` with argv[0] first,
 * `envPairs`, `cwd`, `stdio`, ...), checked as Node checks them.
 */
export function rawSpawnOptions(options: unknown): { file: string; args: string[]; spawnargs: unknown[]; core: CoreOptions } {
  validateObject(options, 'options');
  const o = options as Record<string, unknown>;
  const stdio = (o.stdio = validStdio(o.stdio, false));
  const serialization = validSerialization(o.serialization);
  // Node's order: the channel's env pairs are appended (envPairs checked) before the file is.
  if (stdio.includes(IPC_STDIO as StdioEntry) && o.envPairs !== undefined && !Array.isArray(o.envPairs)) throw invalidArgType('options.envPairs', 'Array', o.envPairs);
  validateString(o.file, 'options.file');
  let spawnargs: unknown[] = [];
  if (o.args !== undefined) {
    if (!Array.isArray(o.args)) throw invalidArgType('options.args', 'Array', o.args);
    spawnargs = o.args;
  }
  if (stdio.includes(INVALID_FD)) throw new SystemError(EINVAL, 'spawn');
  // As its C++ reads them: each arg a string, envPairs only as an array,
  // cwd only when not empty, ids only as int32, detached only when true.
  const argv = spawnargs.map((a) => `${a as string}`);
  let env: Record<string, string> | undefined;
  if (Array.isArray(o.envPairs)) {
    env = Object.create(null) as Record<string, string>;
    for (const pair of o.envPairs) {
      const s = `${pair as string}`;
      const eq = s.indexOf('=');
      if (eq > 0) env[s.slice(0, eq)] = s.slice(eq + 1);
    }
  }
  const ipcFd = stdio.indexOf(IPC_STDIO as StdioEntry);
  // As Node: the channel's two pairs are appended to envPairs, an empty list when none was given.
  if (ipcFd >= 0) env = ipcEnv(env ?? {}, ipcFd, serialization) as Record<string, string>;
  let cwd: string | undefined;
  if (typeof o.cwd === 'string' && o.cwd.length > 0) cwd = o.cwd;
  const id = (v: unknown) => (isInt32(v) ? v >>> 0 : undefined);
  const core = {
    cwd,
    env,
    argv0: argv.length > 0 ? argv[0] : o.file,
    stdio,
    detached: o.detached === true,
    uid: id(o.uid),
    gid: id(o.gid),
    engine: o.engine as Engine | undefined,
    killWithParent: o.killWithParent as boolean | undefined,
  };
  return { file: o.file, args: argv.slice(1), spawnargs, core };
}

export function validateMaxBuffer(maxBuffer: unknown): void {
  if (maxBuffer === undefined || maxBuffer === null) return;
  if (typeof maxBuffer !== 'number' || Number.isNaN(maxBuffer) || maxBuffer < 0) {
    throw outOfRange('options.maxBuffer', 'a positive number', maxBuffer);
  }
}
