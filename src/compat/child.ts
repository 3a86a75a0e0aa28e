// The drop-in's ChildProcess and spawn(): Node's shapes and order of
// events (lib/internal/child_process.js) over a core Subprocess.
import { EventEmitter } from 'node:events';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { binding } from '../binding';
import { CLD_DUMPED, CLD_KILLED, O_CLOEXEC } from '../constants';
import { AbortError, codedError, invalidArgType, SystemError } from '../errors';
import type { ClonefdInfo } from '../info';
import { clonefd, spawn as coreSpawn, type Subprocess } from '../index';
import { adoptSocket, channelInUse, detachStdioStreams, flushStdio, onSettled, takeChannelFd } from '../subprocess';
import { expandStdio, isPipeEntry, searchPath, type StdioPlan } from '../options';
import { convertToValidSignal, DEFAULT_KILL_SIGNAL, signalName } from '../signals';
import {
  coreOptions,
  getValidatedPath,
  ipcSlot,
  normalizeSpawnArguments,
  rawSpawnOptions,
  sanitizeKillSignal,
  stdioStringToArray,
  validateAbortSignal,
  validateArgumentNullCheck,
  validateArgumentsNullCheck,
  validateObject,
  validateTimeout,
  type CoreOptions,
  type SpawnOptions,
} from './args';
import { channelInUse as ipcInUse, setupChannel, type IpcTarget, type Serialization } from './ipc';

type IpcSlot = { fd: number; serialization: Serialization } | null;

type Signal = NodeJS.Signals | number;

/** Errors Node reports through an 'error' event rather than a throw (lib/internal/child_process.js). */
const ASYNC_SPAWN_ERRORS = new Set(['EACCES', 'EAGAIN', 'EMFILE', 'ENFILE', 'ENOENT']);

/**
 * execvp's fallback, as Node has it through libuv: an executable without
 * a #! line (ENOEXEC) runs through /bin/sh. The file is resolved the way
 * the search would have found it (relative PATH entries mean the child's
 * cwd, where sh will run).
 */
function viaShell(file: string, args: string[], env: NodeJS.ProcessEnv | undefined, cwd: string | URL | undefined): { file: string; args: string[] } | null {
  let resolved = file;
  if (!file.includes('/')) {
    const base = cwd === undefined ? process.cwd() : cwd instanceof URL ? fileURLToPath(cwd) : resolve(cwd);
    const found = searchPath(file, env ? env.PATH : process.env.PATH).find((p) => {
      try {
        const abs = resolve(base, p);
        accessSync(abs, fsConstants.X_OK);
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

/**
 * Starts the core child, with the /bin/sh fallback for ENOEXEC. `raw`: a
 * clonefd() handle with its fds opened at once (the sync forms read them).
 */
export function start(file: string, args: string[], options: CoreOptions, raw: boolean): Subprocess {
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

/**
 * As Node's ErrnoException for a failed spawn: code, errno, syscall, path,
 * spawnargs, and Node's message. A failure that is not the spawn's own (no
 * pidfds on this kernel, no helper) keeps clonefd's error, which says why.
 */
export function spawnFailure(err: SystemError, syscall: string, file: string, spawnargs: string[]): SystemError {
  if (!err.syscall.startsWith('spawn ') || err.syscall === 'spawn clonefd-helper') return err;
  return new SystemError(-err.errno, `${syscall} ${file}`, { path: file, spawnargs: spawnargs.slice(1) });
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
  #exited = false;
  #spawnCalled = false;
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
  _attach(sub: Subprocess, ipc: IpcSlot): void {
    this.#spawnCalled = true;
    this.#sub = sub;
    this.pid = sub.pid;
    this.stdio = sub.stdio;
    this.stdin = sub.stdin;
    this.stdout = sub.stdout;
    this.stderr = sub.stderr;
    this.#watchClose(sub.stdio);
    sub[onSettled] = (info) => this.#setExitState(info);
    sub.once('exit', () => this.#onExit());
    sub.exited.catch((err: Error) => {
      this.#rejectExited(err);
      this.emit('error', err);
    });
    if (ipc) {
      this.#setupChannel(sub[takeChannelFd](), ipc.serialization);
      // Messages the child sent before it exited come before 'exit'.
      sub[channelInUse] = () => ipcInUse(this as unknown as IpcTarget);
    }
    process.nextTick(() => this.emit('spawn'));
  }

  /** Node's send()/'message'/disconnect() over the parent's end of the 'ipc' slot; the channel's end counts towards 'close'. */
  #setupChannel(fd: number, serialization: Serialization): void {
    this.#closesNeeded++;
    setupChannel(this as unknown as IpcTarget, fd, serialization, () => this.#maybeClose());
  }

  /** @internal A spawn that failed the way Node reports by an event. */
  _fail(err: SystemError, stdio: unknown, streams: readonly StdioPlan[], ipc: IpcSlot): void {
    this.#spawnCalled = true;
    // As Node: the 'pipe' slots still get sockets (whose other end is
    // closed, so they end at once); no 'spawn'; a tick later exitCode is
    // the negative errno, stdin is destroyed, 'error' is emitted, the
    // readable streams are flushed, and 'close' follows once they closed.
    this.stdio = expandStdio(stdio, 'pipe').map((entry, i) => {
      if (!isPipeEntry(entry, i)) return null;
      const pair = binding.socketPair();
      if (typeof pair === 'number') return null;
      binding.closeFd(pair[1]);
      return adoptSocket(pair[0], i > 0);
    });
    this.stdin = (this.stdio[0] as Writable | null) ?? null;
    this.stdout = (this.stdio[1] as Readable | null) ?? null;
    this.stderr = (this.stdio[2] as Readable | null) ?? null;
    this.#watchClose(this.stdio);
    // As Node: the channel too is set up, with nobody at its other end (it
    // ends at once: 'disconnect').
    if (ipc) {
      const pair = binding.socketPair();
      if (typeof pair !== 'number') {
        binding.closeFd(pair[1]);
        this.#setupChannel(pair[0], ipc.serialization);
      }
    }
    // As Node: streams given as stdio stop being read even by a failed spawn.
    detachStdioStreams(streams);
    this.#rejectExited(err);
    process.nextTick(() => {
      this.exitCode = err.errno;
      this.stdin?.destroy();
      this.emit('error', err);
      process.nextTick(flushStdio, this.stdio);
      this.#maybeClose();
    });
  }

  #watchClose(streams: readonly (Readable | Writable | null)[]): void {
    for (const stream of streams) {
      if (!stream) continue;
      this.#closesNeeded++;
      stream.once('close', () => this.#maybeClose());
    }
  }

  /** Before stdin is destroyed (see onSettled). */
  #setExitState(info: ClonefdInfo): void {
    this.info = info;
    if (info.code === CLD_KILLED || info.code === CLD_DUMPED) this.signalCode = signalName(info.status) as NodeJS.Signals;
    else this.exitCode = info.status;
    this.#exited = true;
  }

  #onExit(): void {
    this.#resolveExited(this.info!);
    this.emit('exit', this.exitCode, this.signalCode);
    this.#maybeClose();
  }

  #maybeClose(): void {
    this.#closesGot++;
    if (this.#closesGot === this.#closesNeeded) this.emit('close', this.exitCode, this.signalCode);
  }

  kill(signal?: Signal): boolean {
    // Node's rule: 0 as is, undefined the default, anything else a valid signal (null too).
    const sig = signal === 0 ? 0 : signal === undefined ? DEFAULT_KILL_SIGNAL : convertToValidSignal(signal);
    if (!this.#sub || this.#exited) return false;
    try {
      this.#sub.kill(sig);
    } catch (err) {
      // As Node: EINVAL/ENOSYS throw, anything else (EPERM) is an 'error' event.
      const e = err as SystemError;
      if (e.code === 'EINVAL' || e.code === 'ENOSYS') throw err;
      this.emit('error', new SystemError(e.errno, 'kill'));
      return false;
    }
    // Not sent (ESRCH) while 'exit' is still to come: the child has died
    // and the helper reaped it, where Node would still find a zombie that
    // takes the signal. Node's answer then is true.
    this.killed = true;
    return true;
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

  /**
   * Node's ChildProcess.prototype.spawn(options), for code that builds its
   * own ChildProcess: options as Node's normalizeSpawnArguments makes them
   * (`file`, `args` with argv[0] first, `envPairs`, `stdio`, ...), checked
   * as Node checks them (src/compat/args.ts rawSpawnOptions). Returns 0, or
   * the negative errno of a spawn that failed with an 'error' event.
   */
  spawn(options: unknown): number {
    // Node runs a second spawn on the same handle and then aborts in
    // libuv (an assertion in uv__wait_children): refused here instead.
    if (this.#spawnCalled) throw codedError(Error, 'ERR_CLONEFD_ALREADY_SPAWNED', 'This ChildProcess has already been spawned; create a new one');
    const raw = rawSpawnOptions(options);
    this.#spawnCalled = true;
    this.spawnfile = raw.file;
    this.spawnargs = raw.spawnargs as string[];
    const ipc = ipcSlot(raw.core.stdio, (options as { serialization?: unknown }).serialization);
    try {
      this._attach(start(raw.file, raw.args, raw.core, false), ipc);
      return 0;
    } catch (err) {
      const e = err as SystemError;
      if (!(e instanceof SystemError) || !ASYNC_SPAWN_ERRORS.has(e.code)) throw err;
      this._fail(spawnFailure(e, 'spawn', raw.file, raw.spawnargs as string[]), raw.core.stdio, streamPlans(raw.core.stdio), ipc);
      return e.errno;
    }
  }
}

/** The stdio entries that are streams, as plans for detachStdioStreams (a failed spawn has no request). */
function streamPlans(stdio: unknown): StdioPlan[] {
  const plans: StdioPlan[] = [];
  if (Array.isArray(stdio)) for (const entry of stdio) if (entry !== null && typeof entry === 'object') plans.push({ type: 'fd', fd: -1, stream: entry });
  return plans;
}

/** `child_process.spawn(file, args?, options?)`. */
export function spawn(file: string, args?: readonly string[] | SpawnOptions, options?: SpawnOptions): ChildProcess {
  const n = normalizeSpawnArguments(file, args, options);
  const opts = n.options;
  validateTimeout(opts.timeout);
  validateAbortSignal(opts.signal, 'options.signal');
  const killSignal = sanitizeKillSignal(opts.killSignal) ?? DEFAULT_KILL_SIGNAL;
  const child = new ChildProcess();
  child.spawnfile = n.file;
  child.spawnargs = n.spawnargs;
  let sub: Subprocess;
  const core = coreOptions(opts, opts.stdio);
  const ipc = ipcSlot(core.stdio, opts.serialization);
  try {
    sub = start(n.file, n.args, core, false);
  } catch (err) {
    const e = err as SystemError;
    if (e instanceof SystemError && ASYNC_SPAWN_ERRORS.has(e.code)) {
      child._fail(spawnFailure(e, 'spawn', n.file, n.spawnargs), opts.stdio, streamPlans(opts.stdio), ipc);
      return child;
    }
    throw err;
  }
  child._attach(sub, ipc);
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

export interface ForkOptions extends SpawnOptions {
  execPath?: string;
  execArgv?: string[];
  silent?: boolean;
}

/**
 * `child_process.fork(modulePath, args?, options?)`, as Node's: a Node
 * child (`execPath`, default this one) running modulePath with `execArgv`
 * (default this process's, without an -e script), its IPC channel on the
 * fd after stdio (inherited, or piped with `silent`), or where `stdio`
 * puts 'ipc'.
 */
export function fork(modulePath: unknown, args?: unknown, options?: unknown): ChildProcess {
  const validated = getValidatedPath(modulePath, 'modulePath');
  const path = typeof validated === 'string' ? validated : Buffer.from(validated).toString();
  if (args === undefined || args === null) args = [];
  else if (typeof args === 'object' && !Array.isArray(args)) {
    options = args;
    args = [];
  } else if (!Array.isArray(args)) throw invalidArgType('args', 'Array', args);
  if (options !== undefined && options !== null) validateObject(options, 'options');
  const opts = { ...(options as ForkOptions | undefined), shell: false } as ForkOptions & { __proto__?: null };
  Object.setPrototypeOf(opts, null);
  opts.execPath = opts.execPath || process.execPath;
  validateArgumentNullCheck(opts.execPath, 'options.execPath');
  let execArgv = opts.execArgv || process.execArgv;
  validateArgumentsNullCheck(execArgv, 'options.execArgv');
  const evalScript = (process as { _eval?: string | null })._eval;
  if (execArgv === process.execArgv && evalScript != null) {
    // Without the -e script: the child would run it again, and fork again.
    const index = execArgv.lastIndexOf(evalScript);
    if (index > 0) {
      execArgv = execArgv.slice();
      execArgv.splice(index - 1, 2);
    }
  }
  const argv = [...execArgv, path, ...(args as string[])];
  if (typeof opts.stdio === 'string') opts.stdio = [...stdioStringToArray(opts.stdio), 'ipc'] as SpawnOptions['stdio'];
  else if (!Array.isArray(opts.stdio)) opts.stdio = [...stdioStringToArray(opts.silent ? 'pipe' : 'inherit'), 'ipc'] as SpawnOptions['stdio'];
  else if (!opts.stdio.includes('ipc' as never)) {
    throw codedError(Error, 'ERR_CHILD_PROCESS_IPC_REQUIRED', "Forked processes must have an IPC channel, missing value 'ipc' in options.stdio");
  }
  return spawn(opts.execPath, argv, opts);
}
