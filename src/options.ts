// Argument validation and normalisation: everything a spawn needs is
// checked here, before anything is created, and turned into a plain
// request that an engine executes.
import { isMainThread } from 'node:worker_threads';
import type { Stream } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { MAX_STDIO, MAX_STDIO_HELPER, SpawnFlag } from './abi';
import { AbortError, invalidArgType, invalidArgValue, outOfRange } from './errors';
import { DEFAULT_KILL_SIGNAL, toSignalNumber } from './signals';
import type { CgroupLimits } from './cgroup';
import { normalizeReadiness, type ReadinessOption, type ReadinessPlan } from './readiness';

export type StdioName = 'pipe' | 'overlapped' | 'ignore' | 'inherit';
/** A stream (net.Socket, fs stream, process.stdout...) that has an fd. */
export type StdioStream = { fd?: number | null; _handle?: { fd?: number } | null };
export type StdioEntry = StdioName | number | Stream | StdioStream | null | undefined;

export type Engine = 'helper' | 'direct';

/** What `stdio` accepts: one name for fds 0-2, or one entry per fd. */
export type StdioOption = StdioName | readonly StdioEntry[];

/**
 * `S` is the type of `stdio`, so that `spawn()` can tell which of
 * stdin/stdout/stderr are streams (src/index.ts `Spawned`).
 */
export interface SpawnOptions<S extends StdioOption | undefined = StdioOption | undefined> {
  /** Working directory of the child. */
  cwd?: string | URL | undefined;
  /** Environment of the child (default: `process.env`). Its `PATH` is searched. */
  env?: Record<string, string | number | boolean | undefined> | undefined;
  /** `argv[0]` seen by the child (default: `file`). */
  argv0?: string | undefined;
  /** As in child_process. `spawn()` defaults to 'pipe', `clonefd()` to 'inherit'. */
  stdio?: S | undefined;
  /** Run the child in a new session (setsid). */
  detached?: boolean | undefined;
  uid?: number | undefined;
  gid?: number | undefined;
  /** Aborting it kills the child with `killSignal`. */
  signal?: AbortSignal | undefined;
  /** Milliseconds after which the child is killed with `killSignal`. */
  timeout?: number | undefined;
  /** Default 'SIGTERM'. */
  killSignal?: NodeJS.Signals | number | undefined;
  /**
   * Kill the child (SIGKILL) when its creator goes away: with the helper
   * engine, when this environment (main thread or worker) ends; with the
   * direct engine, when the spawning thread exits (PR_SET_PDEATHSIG).
   */
  killWithParent?: boolean | undefined;
  /** Which engine creates and reaps the child: 'helper' (default) or 'direct'. */
  engine?: Engine | undefined;
  /**
   * Start the child in a cgroup v2 group of its own, made for it under this
   * process's own group (`true`) or under the given cgroup directory (an
   * absolute path): the child's whole tree stays in it (killTree,
   * treeExited, freeze). Removed once the tree is gone.
   */
  cgroup?: boolean | string | undefined;
  /** Limits written into the child's group before it starts (needs `cgroup` and the controllers delegated). */
  limits?: CgroupLimits | undefined;
  /**
   * What `timeout`, `signal` (AbortSignal) and `killWithParent` kill:
   * 'process' (the child, the default) or 'tree' (`killTree()`; without a
   * cgroup the child then gets a process group of its own).
   */
  killMode?: 'process' | 'tree' | undefined;
  /** How the child says it is ready (`Subprocess.ready`): `{ fd: N }` (s6's notification fd) or 'sd_notify' (systemd's NOTIFY_SOCKET). */
  readiness?: ReadinessOption | undefined;
}

export interface ClonefdOptions<S extends StdioOption | undefined = StdioOption | undefined> extends SpawnOptions<S> {
  /** `O_CLOEXEC | O_NONBLOCK` (default `O_CLOEXEC`), like the seed's clonefd_flags. */
  flags?: number | undefined;
}

/**
 * @internal The drop-in's 'ipc' entry (src/compat/args.ts): a socketpair
 * like 'pipe', whose parent end becomes the IPC channel (src/compat/ipc.ts)
 * instead of a stream. The core's own API has no IPC.
 */
export const IPC_STDIO: object = Object.freeze({ ipc: true });

export type StdioPlan =
  | { type: 'pipe' }
  | { type: 'ipc' }
  | { type: 'ignore' }
  | { type: 'fd'; fd: number; /** The stream the fd came from (the parent stops reading it: detachStdioStreams). */ stream?: object };

export interface SpawnRequest {
  file: string;
  /** The arguments after argv[0] (Node's `spawnargs` on errors). */
  args: string[];
  argv: string[];
  /** Executable candidates in execvp order (PATH searched here, in the parent). */
  paths: string[];
  /** `null`: the process's own environment (exactly `process.env` on the main thread). */
  envp: string[] | null;
  cwd: string | null;
  stdio: StdioPlan[];
  detached: boolean;
  uid: number | undefined;
  gid: number | undefined;
  timeout: number;
  killSignal: number;
  signal: AbortSignal | undefined;
  killWithParent: boolean;
  engine: Engine;
  /** null: no cgroup; true: under this process's own group; else the parent group's directory. */
  cgroup: true | string | null;
  limits: CgroupLimits | null;
  killMode: 'process' | 'tree';
  /** src/readiness.ts; an fd's slot is reserved in `stdio` as 'ignore'. */
  readiness: ReadinessPlan | null;
}

const INT32_MAX = 2 ** 31 - 1;
const DEFAULT_PATH = '/usr/bin:/bin';

function noNul(value: string, name: string): string {
  if (value.includes('\u0000')) throw invalidArgValue(name, value, 'must be a string without null bytes');
  return value;
}

function validateString(value: unknown, name: string): string {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value);
  return noNul(value, name);
}

function validateId(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw invalidArgType(name, 'of type number (an integer)', value);
  if (value < 0 || value > 0xfffffffe) throw outOfRange(name, '>= 0 && <= 4294967294', value);
  return value;
}

/**
 * The `stdio` option as one entry per fd, at least three (Node's rules): a
 * string stands for all three, a short array is padded with `undefined`.
 * Anything else is ERR_INVALID_ARG_VALUE.
 */
export function expandStdio(stdio: unknown, defaultName: StdioName): unknown[] {
  if (stdio === undefined || stdio === null) return [defaultName, defaultName, defaultName];
  if (typeof stdio === 'string') return [stdio, stdio, stdio];
  if (Array.isArray(stdio)) return stdio.length < 3 ? [...stdio, ...Array(3 - stdio.length).fill(undefined)] : [...stdio];
  throw invalidArgValue('options.stdio', stdio);
}

/** A stdio entry that gives the child one end of a new pipe (`null`/`undefined` count for fds 0-2). */
export function isPipeEntry(entry: unknown, fd: number): boolean {
  return entry === 'pipe' || entry === 'overlapped' || ((entry === undefined || entry === null) && fd < 3);
}

function normalizeStdio(stdio: unknown, defaultName: StdioName): StdioPlan[] {
  const entries = expandStdio(stdio, defaultName);
  if (entries.length > MAX_STDIO) throw outOfRange('options.stdio.length', `<= ${MAX_STDIO}`, entries.length);
  return entries.map((entry, i): StdioPlan => {
    const name = `options.stdio[${i}]`;
    if (isPipeEntry(entry, i)) return { type: 'pipe' };
    if (entry === undefined || entry === null) return { type: 'ignore' };
    if (entry === 'ignore') return { type: 'ignore' };
    if (entry === 'inherit') return { type: 'fd', fd: i };
    if (entry === IPC_STDIO) return { type: 'ipc' };
    if (entry === 'ipc') throw invalidArgValue(name, entry, "is not an option of clonefd's spawn(): IPC is clonefd/child_process's (fork(), or 'ipc' in its spawn()'s stdio)");
    if (typeof entry === 'number') {
      if (!Number.isInteger(entry) || entry < 0 || entry > INT32_MAX) throw outOfRange(name, `>= 0 && <= ${INT32_MAX}`, entry);
      return { type: 'fd', fd: entry };
    }
    if (typeof entry === 'object') {
      const s = entry as StdioStream;
      const fd = typeof s.fd === 'number' ? s.fd : s._handle?.fd;
      if (typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 && fd <= INT32_MAX) return { type: 'fd', fd, stream: entry };
      throw invalidArgValue(name, entry, 'is a stream without a file descriptor (open it first)');
    }
    throw invalidArgValue(name, entry);
  });
}

function envPairs(env: Record<string, unknown>): string[] {
  const pairs: string[] = [];
  // for..in like Node, so inherited properties count too.
  for (const key in env) {
    const value = env[key];
    if (value === undefined) continue;
    noNul(key, `options.env['${key}']`);
    pairs.push(`${key}=${noNul(String(value), `options.env['${key}']`)}`);
  }
  return pairs;
}

/**
 * Node's rule for an options object: only its own properties count (Node
 * copies them onto a null-prototype object), so a polluted Object.prototype
 * cannot set uid, cwd, shell, env or timeout. Later sources win.
 */
export function ownProps<T>(...sources: unknown[]): T {
  const out = Object.create(null) as Record<string, unknown>;
  for (const s of sources) if (s !== null && s !== undefined && typeof s === 'object') Object.assign(out, s);
  return out as T;
}

/**
 * 'helper', unless the environment variable CLONEFD_ENGINE says 'direct'
 * (read at each spawn, so a test or an application can switch globally).
 */
export function defaultEngine(): Engine {
  return process.env.CLONEFD_ENGINE === 'direct' ? 'direct' : 'helper';
}

/** execvp's search, done in the parent so the child only calls execve. */
export function searchPath(file: string, pathVar: string | undefined): string[] {
  if (file.includes('/')) return [file];
  const dirs = (pathVar ?? DEFAULT_PATH).split(':');
  return dirs.map((dir) => `${dir === '' ? '.' : dir}/${file}`);
}

/** The options `spawn()` knows (SpawnOptions); `clonefd()` adds `flags`. */
const SPAWN_OPTIONS: ReadonlySet<string> = new Set([
  'cwd', 'env', 'argv0', 'stdio', 'detached', 'uid', 'gid', 'signal', 'timeout', 'killSignal', 'killWithParent', 'engine',
  'cgroup', 'limits', 'killMode',
  'readiness',
]);

/** options.cgroup: false/undefined → null, true, or an absolute directory. */
function normalizeCgroup(value: unknown): true | string | null {
  if (value === undefined || value === null || value === false) return null;
  if (value === true) return true;
  if (typeof value !== 'string') throw invalidArgType('options.cgroup', ['boolean', 'string'], value);
  noNul(value, 'options.cgroup');
  if (!value.startsWith('/')) throw invalidArgValue('options.cgroup', value, 'must be true or an absolute path of a cgroup v2 directory');
  return value;
}

const LIMIT_KEYS = new Set(['memoryMax', 'pidsMax', 'cpuMax']);

/** options.limits: integers (or 'max') for memory and pids, "$MAX $PERIOD" (or 'max') for cpu. */
function normalizeLimits(value: unknown, cgroup: true | string | null): CgroupLimits | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) throw invalidArgType('options.limits', 'of type object', value);
  const o = ownProps<Record<string, unknown>>(value);
  const out: CgroupLimits = {};
  for (const key of Object.keys(o)) {
    const v = o[key];
    if (v === undefined) continue;
    const name = `options.limits.${key}`;
    if (!LIMIT_KEYS.has(key)) throw invalidArgValue(name, v, 'is not a limit clonefd knows (memoryMax, pidsMax, cpuMax)');
    if (key === 'cpuMax') {
      // The kernel's bounds: a period of 1 ms to 1 s, a quota of at least 1 ms.
      const m = typeof v === 'string' ? /^(max|\d+)(?: (\d+))?$/.exec(v) : null;
      const period = m?.[2] === undefined ? 100_000 : Number(m[2]);
      const quota = m?.[1] === 'max' ? Infinity : Number(m?.[1]);
      if (!m || period < 1000 || period > 1_000_000 || quota < 1000) {
        throw invalidArgValue(name, v, "must be 'max' or \"$MAX $PERIOD\" in microseconds (period 1000 to 1000000, quota 1000 or more), e.g. '50000 100000'");
      }
      out.cpuMax = v as string;
    } else {
      if (v !== 'max' && !(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) throw invalidArgValue(name, v, "must be 'max' or a non-negative integer");
      out[key as 'memoryMax' | 'pidsMax'] = v as number | 'max';
    }
  }
  if (Object.keys(out).length === 0) return null;
  if (cgroup === null) throw invalidArgValue('options.limits', value, 'needs options.cgroup: limits are written into the child\'s own cgroup');
  return out;
}

/**
 * An option the core does not know is an error, not silently ignored:
 * `shell`, `encoding`, `input` belong to clonefd/child_process, and a typo
 * (`timout`) would otherwise run the child without what was asked. An own
 * property whose value is `undefined` counts as absent.
 */
function rejectUnknownOptions(o: Record<string, unknown>, api: 'spawn' | 'clonefd'): void {
  for (const key of Object.keys(o)) {
    if (o[key] === undefined || SPAWN_OPTIONS.has(key) || (api === 'clonefd' && key === 'flags')) continue;
    const hint = key === 'shell' ? ": run spawn('/bin/sh', ['-c', command]), or use clonefd/child_process, which has Node's shell" : '';
    throw invalidArgValue(`options.${key}`, o[key], `is not an option of clonefd's ${api}()${hint}`);
  }
}

export function normalize(file: unknown, args: unknown, options: unknown, defaultStdio: StdioName, api: 'spawn' | 'clonefd'): SpawnRequest {
  validateString(file, 'file');
  if ((file as string).length === 0) throw invalidArgValue('file', file, 'cannot be empty');
  if (args === undefined || args === null) args = [];
  else if (!Array.isArray(args)) {
    // spawn(file, options) is allowed, as in child_process.
    if (typeof args === 'object' && (options === undefined || options === null)) {
      options = args;
      args = [];
    } else throw invalidArgType('args', 'an instance of Array', args);
  }
  // A loop, not map(): holes in a sparse array must be reported too.
  const argList: string[] = [];
  for (let i = 0; i < (args as unknown[]).length; i++) argList.push(validateString((args as unknown[])[i], `args[${i}]`));
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  const o = ownProps<SpawnOptions & Record<string, unknown>>(options);
  rejectUnknownOptions(o, api);

  let cwd: string | null = null;
  if (o.cwd !== undefined && o.cwd !== null) {
    if (o.cwd instanceof URL) cwd = fileURLToPath(o.cwd);
    else cwd = validateString(o.cwd, 'options.cwd');
    noNul(cwd, 'options.cwd');
  }

  let envp: string[] | null = null;
  let pathVar: string | undefined;
  if (o.env !== undefined && o.env !== null) {
    if (typeof o.env !== 'object') throw invalidArgType('options.env', 'of type object', o.env);
    envp = envPairs(o.env);
    pathVar = o.env.PATH === undefined ? undefined : String(o.env.PATH);
  } else {
    pathVar = process.env.PATH;
    // A worker's process.env is its own copy, not the real environment.
    if (!isMainThread) envp = envPairs(process.env);
  }

  let argv0 = file as string;
  if (o.argv0 !== undefined && o.argv0 !== null) argv0 = validateString(o.argv0, 'options.argv0');

  if (o.detached !== undefined && typeof o.detached !== 'boolean') throw invalidArgType('options.detached', 'of type boolean', o.detached);

  let timeout = 0;
  if (o.timeout !== undefined && o.timeout !== null) {
    if (typeof o.timeout !== 'number' || !Number.isInteger(o.timeout)) throw invalidArgType('options.timeout', 'of type number (an integer)', o.timeout);
    if (o.timeout < 0 || o.timeout > INT32_MAX) throw outOfRange('options.timeout', `>= 0 && <= ${INT32_MAX}`, o.timeout);
    timeout = o.timeout;
  }
  const killSignal = o.killSignal === undefined || o.killSignal === null ? DEFAULT_KILL_SIGNAL : toSignalNumber(o.killSignal, 'options.killSignal');

  if (o.signal !== undefined && o.signal !== null) {
    const sig = o.signal as Partial<AbortSignal>;
    if (typeof sig !== 'object' || typeof sig.aborted !== 'boolean' || typeof sig.addEventListener !== 'function' || typeof sig.removeEventListener !== 'function') {
      throw invalidArgType('options.signal', 'an instance of AbortSignal', o.signal);
    }
    if (o.signal.aborted) throw new AbortError(undefined, { cause: o.signal.reason });
  }

  let engine: Engine = defaultEngine();
  if (o.engine !== undefined && o.engine !== null) {
    if (o.engine !== 'direct' && o.engine !== 'helper') throw invalidArgValue('options.engine', o.engine, "must be 'helper' or 'direct'");
    engine = o.engine;
  }
  if (o.killWithParent !== undefined && typeof o.killWithParent !== 'boolean') {
    throw invalidArgType('options.killWithParent', 'of type boolean', o.killWithParent);
  }
  const cgroup = normalizeCgroup(o.cgroup);
  const limits = normalizeLimits(o.limits, cgroup);
  if (o.killMode !== undefined && o.killMode !== null && o.killMode !== 'process' && o.killMode !== 'tree') {
    throw invalidArgValue('options.killMode', o.killMode, "must be 'process' or 'tree'");
  }
  const stdio = normalizeStdio(o.stdio, defaultStdio);
  if (engine === 'helper' && stdio.length > MAX_STDIO_HELPER) {
    throw outOfRange('options.stdio.length', `<= ${MAX_STDIO_HELPER} with the helper engine`, stdio.length);
  }
  const readiness = normalizeReadiness(o.readiness, stdio, engine);

  return {
    file: file as string,
    args: argList,
    argv: [argv0, ...argList],
    paths: searchPath(file as string, pathVar),
    envp,
    cwd,
    stdio,
    detached: o.detached === true,
    uid: validateId(o.uid, 'options.uid'),
    gid: validateId(o.gid, 'options.gid'),
    timeout,
    killSignal,
    signal: o.signal ?? undefined,
    killWithParent: o.killWithParent === true,
    engine,
    cgroup,
    limits,
    killMode: o.killMode === 'tree' ? 'tree' : 'process',
    readiness,
  };
}

/** The request's spawn flags (src/abi.ts SpawnFlag), the same for every engine. */
export function spawnFlags(req: SpawnRequest): number {
  let flags = 0;
  if (req.detached) flags |= SpawnFlag.Setsid;
  if (req.uid !== undefined) flags |= SpawnFlag.Setuid;
  if (req.gid !== undefined) flags |= SpawnFlag.Setgid;
  if (req.killWithParent) flags |= SpawnFlag.KillWithParent;
  if (req.killWithParent && req.killMode === 'tree') flags |= SpawnFlag.KillTree;
  // A tree without a cgroup is the child's process group: it needs one of its own.
  if (req.killMode === 'tree' && req.cgroup === null && !req.detached) flags |= SpawnFlag.Setpgid;
  return flags;
}
