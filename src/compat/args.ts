// The drop-in's argument rules: Node's normalizeSpawnArguments and the
// validators of lib/child_process.js, and the translation of a Node-style
// request into the core's options. Node's code is the reference for every
// rule here (lib/child_process.js).
import { ownProps, type Engine, type StdioEntry, type StdioName } from '../options';
import { codedError, invalidArgType, invalidArgValue, outOfRange, SystemError } from '../errors';
import { EINVAL } from '../errno';

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

export function ipcUnsupported(what: string): Error {
  return codedError(Error, 'ERR_CLONEFD_IPC_UNSUPPORTED', `${what} is not supported by clonefd/child_process: its children have no IPC channel. Use node:child_process for that.`);
}

/** Node's error for an unknown string in a stdio array. */
function syncForkInput(value: string): TypeError {
  return codedError(TypeError, 'ERR_INVALID_SYNC_FORK_INPUT', `Asynchronous forks do not support Buffer, TypedArray, DataView or string input: ${value}`);
}

export interface NormalizedSpawn {
  file: string;
  args: string[];
  options: SpawnSyncOptions;
  /** argv as the child sees it: [argv0, ...args]. */
  spawnargs: string[];
}

/** Node's rules for `(file, args?, options?)`, including `shell`. */
export function normalizeSpawnArguments(file: unknown, args: unknown, options: unknown): NormalizedSpawn {
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
  const opts = ownProps<SpawnSyncOptions>(options);
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
  if (stdio === ('ipc' as unknown) || (Array.isArray(stdio) && stdio.includes('ipc' as StdioEntry))) throw ipcUnsupported("'ipc' in stdio");
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

/** The core's options for a normalized Node-style request. */
export function coreOptions(opts: SpawnSyncOptions, stdio: StdioName | StdioEntry[] | undefined) {
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
export type CoreOptions = ReturnType<typeof coreOptions>;

export function validateTimeout(timeout: unknown): void {
  if (timeout === undefined || timeout === null) return;
  if (!(typeof timeout === 'number' && Number.isInteger(timeout) && timeout >= 0)) throw outOfRange('timeout', 'an unsigned integer', timeout);
}

export function validateAbortSignal(signal: unknown, name: string): void {
  const s = signal as Partial<AbortSignal> | null;
  if (s === null || typeof s !== 'object' || typeof s.aborted !== 'boolean' || typeof s.addEventListener !== 'function') {
    throw invalidArgType(name, 'an instance of AbortSignal', signal);
  }
}

export function validateMaxBuffer(maxBuffer: unknown): void {
  if (maxBuffer === undefined || maxBuffer === null) return;
  if (typeof maxBuffer !== 'number' || Number.isNaN(maxBuffer) || maxBuffer < 0) {
    throw outOfRange('options.maxBuffer', 'a positive number', maxBuffer);
  }
}
