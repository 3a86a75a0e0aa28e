/**
 * clonefd/child_process: a drop-in for `node:child_process` whose children
 * are clonefd children (no SIGCHLD, pidfd kill, the exit record with its
 * rusage). Change one import:
 *
 *   import { spawn, execFile, exec, spawnSync, execFileSync, execSync } from 'clonefd/child_process';
 *
 * Same signatures, options, callbacks, promisified forms and errors as
 * Node's, fork() and IPC included (Node's own protocol, so the children
 * are ordinary Node programs).
 *
 * This file is the public façade; the implementation follows Node's own
 * seams in src/compat/: args.ts (argument rules), child.ts (ChildProcess,
 * spawn), exec.ts (execFile, exec), sync.ts (the sync forms).
 *
 * Types. Everything here is typed with Node's own declarations
 * (`@types/node`'s `node:child_process`, whatever version the user has),
 * so code written against `node:child_process` compiles unchanged: the
 * options are Node's option types plus clonefd's two extras (`engine`,
 * `killWithParent`), the overloads are Node's (stdio tuples, encodings,
 * callbacks, `__promisify__`), and every ChildProcess type is Node's with
 * the clonefd extras (`fd`, `exited`, `info`) on top, so it can be passed
 * wherever a Node `ChildProcess` is expected. The values below are the
 * implementations of src/compat/ under these types (no wrapper: the same
 * functions, the same `util.promisify.custom`).
 */
import type * as cp from 'node:child_process';
import type { EventEmitter } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { ClonefdInfo } from './info';
import type { Engine } from './options';
import { ChildProcess as ChildProcessImpl, fork as forkImpl, spawn as spawnImpl } from './compat/child';
import { exec as execImpl, execFile as execFileImpl } from './compat/exec';
import { execFileSync as execFileSyncImpl, execSync as execSyncImpl, spawnSync as spawnSyncImpl } from './compat/sync';

// Node's types that clonefd uses as they are.
export type {
  CommonExecOptions,
  CommonOptions,
  CommonSpawnOptions,
  ExecException,
  ExecFileException,
  IOType,
  MessageOptions,
  MessagingOptions,
  ProcessEnvOptions,
  SendHandle,
  Serializable,
  SerializationType,
  SpawnSyncReturns,
  StdioNull,
  StdioOptions,
  StdioPipe,
  StdioPipeNamed,
} from 'node:child_process';

/** Node's Buffer as `node:child_process` hands it out (`NonSharedBuffer` in recent `@types/node`, `Buffer` before). */
type OutputBuffer = Exclude<ReturnType<typeof cp.execSync>, string>;

// ---- ChildProcess ------------------------------------------------------

/** What every clonefd ChildProcess has on top of Node's. */
export interface ClonefdChildProcessExtras {
  /** clonefd: the seed's clonefd of this child: readable at exit (see clonefd's `Subprocess.fd`); -1 before the spawn succeeded. */
  readonly fd: number;
  /** clonefd: settles with the exit record (code, status, utime, stime, rusage); rejects if the spawn failed or the status was lost. */
  readonly exited: Promise<ClonefdInfo>;
  /** clonefd: the exit record once known, else `null`. */
  readonly info: ClonefdInfo | null;
}

/**
 * Node's `ChildProcess` plus the clonefd extras. Assignable to Node's
 * `ChildProcess` (it extends it), so it goes wherever Node's is expected.
 * The other way round a Node `ChildProcess` is not one of these: it has no
 * `fd`, `exited` or `info`.
 *
 * IPC: `send()`, `disconnect()` and `channel` are declared because Node's
 * type declares them on every ChildProcess, although they only exist on
 * children with an IPC channel (fork(), or 'ipc' in `stdio`), as in Node:
 * on any other child `send` and `disconnect` are `undefined`, `channel` is
 * absent and `connected` is `false`.
 */
export interface ChildProcess extends cp.ChildProcess, ClonefdChildProcessExtras {}
/** Node's `ChildProcessWithoutNullStreams` plus the clonefd extras: what `spawn()` returns with all of fds 0-2 piped. */
export interface ChildProcessWithoutNullStreams extends cp.ChildProcessWithoutNullStreams, ClonefdChildProcessExtras {}
/** Node's `ChildProcessByStdio` plus the clonefd extras: what `spawn()` returns for a stdio tuple. */
export interface ChildProcessByStdio<I extends null | Writable, O extends null | Readable, E extends null | Readable>
  extends cp.ChildProcessByStdio<I, O, E>,
    ClonefdChildProcessExtras {}

/** The members of Node's ChildProcess type that only exist with IPC (see `ChildProcess`). */
type IpcMembers = 'send' | 'disconnect' | 'channel';
// The implementation is checked against the type, but for the IPC members,
// `stdio` (Node's type declares a 5-tuple, the runtime has one entry per
// stdio slot, as Node's) and EventEmitter's members (the implementation is
// an EventEmitter; the typed event overloads are Node's declarations).
const checkedChildProcess: new () => Omit<ChildProcess, IpcMembers | 'stdio' | keyof EventEmitter> & EventEmitter = ChildProcessImpl;

/** `child_process.ChildProcess` with the clonefd extras. */
export const ChildProcess = checkedChildProcess as unknown as { new (): ChildProcess; readonly prototype: ChildProcess };

/** Node's PromiseWithChild, with clonefd's ChildProcess (so also Node's). */
export interface PromiseWithChild<T> extends Promise<T> {
  child: ChildProcess;
}

// ---- options -----------------------------------------------------------

/** clonefd's options on top of Node's, accepted by every function here. */
export interface ClonefdExtraOptions {
  /** clonefd: which engine runs the child: 'helper' (default) or 'direct'. */
  engine?: Engine | undefined;
  /** clonefd: SIGKILL the child when its creator goes away. */
  killWithParent?: boolean | undefined;
}

export interface SpawnOptions extends cp.SpawnOptions, ClonefdExtraOptions {}
export interface SpawnOptionsWithoutStdio extends cp.SpawnOptionsWithoutStdio, ClonefdExtraOptions {}
export interface SpawnOptionsWithStdioTuple<
  Stdin extends cp.StdioNull | cp.StdioPipe,
  Stdout extends cp.StdioNull | cp.StdioPipe,
  Stderr extends cp.StdioNull | cp.StdioPipe,
> extends cp.SpawnOptionsWithStdioTuple<Stdin, Stdout, Stderr>,
    ClonefdExtraOptions {}
export interface ExecOptions extends cp.ExecOptions, ClonefdExtraOptions {}
export interface ExecOptionsWithStringEncoding extends cp.ExecOptionsWithStringEncoding, ClonefdExtraOptions {}
export interface ExecOptionsWithBufferEncoding extends cp.ExecOptionsWithBufferEncoding, ClonefdExtraOptions {}
export interface ExecFileOptions extends cp.ExecFileOptions, ClonefdExtraOptions {}
export interface ExecFileOptionsWithStringEncoding extends cp.ExecFileOptionsWithStringEncoding, ClonefdExtraOptions {}
export interface ExecFileOptionsWithBufferEncoding extends cp.ExecFileOptionsWithBufferEncoding, ClonefdExtraOptions {}
export interface ExecFileOptionsWithOtherEncoding extends cp.ExecFileOptionsWithOtherEncoding, ClonefdExtraOptions {}
export interface SpawnSyncOptions extends cp.SpawnSyncOptions, ClonefdExtraOptions {}
export interface SpawnSyncOptionsWithStringEncoding extends cp.SpawnSyncOptionsWithStringEncoding, ClonefdExtraOptions {}
export interface SpawnSyncOptionsWithBufferEncoding extends cp.SpawnSyncOptionsWithBufferEncoding, ClonefdExtraOptions {}
export interface ExecSyncOptions extends cp.ExecSyncOptions, ClonefdExtraOptions {}
export interface ExecSyncOptionsWithStringEncoding extends cp.ExecSyncOptionsWithStringEncoding, ClonefdExtraOptions {}
export interface ExecSyncOptionsWithBufferEncoding extends cp.ExecSyncOptionsWithBufferEncoding, ClonefdExtraOptions {}
export interface ExecFileSyncOptions extends cp.ExecFileSyncOptions, ClonefdExtraOptions {}
export interface ExecFileSyncOptionsWithStringEncoding extends cp.ExecFileSyncOptionsWithStringEncoding, ClonefdExtraOptions {}
export interface ExecFileSyncOptionsWithBufferEncoding extends cp.ExecFileSyncOptionsWithBufferEncoding, ClonefdExtraOptions {}

// ---- the functions: Node's overloads, in Node's order ------------------

type StdioNull = cp.StdioNull;
type StdioPipe = cp.StdioPipe;
type Tuple<I extends StdioNull | StdioPipe, O extends StdioNull | StdioPipe, E extends StdioNull | StdioPipe> = SpawnOptionsWithStdioTuple<I, O, E>;

/** `child_process.spawn()`'s overloads. */
export interface Spawn {
  (command: string, options?: SpawnOptionsWithoutStdio): ChildProcessWithoutNullStreams;
  (command: string, options: Tuple<StdioPipe, StdioPipe, StdioPipe>): ChildProcessByStdio<Writable, Readable, Readable>;
  (command: string, options: Tuple<StdioPipe, StdioPipe, StdioNull>): ChildProcessByStdio<Writable, Readable, null>;
  (command: string, options: Tuple<StdioPipe, StdioNull, StdioPipe>): ChildProcessByStdio<Writable, null, Readable>;
  (command: string, options: Tuple<StdioNull, StdioPipe, StdioPipe>): ChildProcessByStdio<null, Readable, Readable>;
  (command: string, options: Tuple<StdioPipe, StdioNull, StdioNull>): ChildProcessByStdio<Writable, null, null>;
  (command: string, options: Tuple<StdioNull, StdioPipe, StdioNull>): ChildProcessByStdio<null, Readable, null>;
  (command: string, options: Tuple<StdioNull, StdioNull, StdioPipe>): ChildProcessByStdio<null, null, Readable>;
  (command: string, options: Tuple<StdioNull, StdioNull, StdioNull>): ChildProcessByStdio<null, null, null>;
  (command: string, options: SpawnOptions): ChildProcess;
  (command: string, args?: readonly string[], options?: SpawnOptionsWithoutStdio): ChildProcessWithoutNullStreams;
  (command: string, args: readonly string[], options: Tuple<StdioPipe, StdioPipe, StdioPipe>): ChildProcessByStdio<Writable, Readable, Readable>;
  (command: string, args: readonly string[], options: Tuple<StdioPipe, StdioPipe, StdioNull>): ChildProcessByStdio<Writable, Readable, null>;
  (command: string, args: readonly string[], options: Tuple<StdioPipe, StdioNull, StdioPipe>): ChildProcessByStdio<Writable, null, Readable>;
  (command: string, args: readonly string[], options: Tuple<StdioNull, StdioPipe, StdioPipe>): ChildProcessByStdio<null, Readable, Readable>;
  (command: string, args: readonly string[], options: Tuple<StdioPipe, StdioNull, StdioNull>): ChildProcessByStdio<Writable, null, null>;
  (command: string, args: readonly string[], options: Tuple<StdioNull, StdioPipe, StdioNull>): ChildProcessByStdio<null, Readable, null>;
  (command: string, args: readonly string[], options: Tuple<StdioNull, StdioNull, StdioPipe>): ChildProcessByStdio<null, null, Readable>;
  (command: string, args: readonly string[], options: Tuple<StdioNull, StdioNull, StdioNull>): ChildProcessByStdio<null, null, null>;
  (command: string, args: readonly string[], options: SpawnOptions): ChildProcess;
}

type ExecCb<T> = (error: cp.ExecException | null, stdout: T, stderr: T) => void;
type ExecFileCb<T> = (error: cp.ExecFileException | null, stdout: T, stderr: T) => void;
type Output<T> = { stdout: T; stderr: T };
type Args = readonly string[] | undefined | null;

/** `child_process.exec()`'s overloads and its promisified form. */
export interface Exec {
  (command: string, callback?: ExecCb<string>): ChildProcess;
  (command: string, options: ExecOptionsWithBufferEncoding, callback?: ExecCb<OutputBuffer>): ChildProcess;
  (command: string, options: ExecOptionsWithStringEncoding, callback?: ExecCb<string>): ChildProcess;
  (command: string, options: ExecOptions | undefined | null, callback?: ExecCb<string | OutputBuffer>): ChildProcess;
  /**
   * What `util.promisify(exec)` returns, as `@types/node` declares it (a
   * type-level device: at runtime `exec` carries `util.promisify.custom`).
   */
  __promisify__: {
    (command: string): PromiseWithChild<Output<string>>;
    (command: string, options: ExecOptionsWithBufferEncoding): PromiseWithChild<Output<OutputBuffer>>;
    (command: string, options: ExecOptionsWithStringEncoding): PromiseWithChild<Output<string>>;
    (command: string, options: ExecOptions | undefined | null): PromiseWithChild<Output<string | OutputBuffer>>;
  };
}

/** `child_process.execFile()`'s overloads and its promisified form. */
export interface ExecFile {
  (file: string, callback?: ExecFileCb<string>): ChildProcess;
  (file: string, args: Args, callback?: ExecFileCb<string>): ChildProcess;
  (file: string, options: ExecFileOptionsWithBufferEncoding, callback?: ExecFileCb<OutputBuffer>): ChildProcess;
  (file: string, args: Args, options: ExecFileOptionsWithBufferEncoding, callback?: ExecFileCb<OutputBuffer>): ChildProcess;
  (file: string, options: ExecFileOptionsWithStringEncoding, callback?: ExecFileCb<string>): ChildProcess;
  (file: string, args: Args, options: ExecFileOptionsWithStringEncoding, callback?: ExecFileCb<string>): ChildProcess;
  (file: string, options: ExecFileOptions | undefined | null, callback: ExecFileCb<string | OutputBuffer> | undefined | null): ChildProcess;
  (file: string, args: Args, options: ExecFileOptions | undefined | null, callback: ExecFileCb<string | OutputBuffer> | undefined | null): ChildProcess;
  /** What `util.promisify(execFile)` returns (see `Exec.__promisify__`). */
  __promisify__: {
    (file: string): PromiseWithChild<Output<string>>;
    (file: string, args: Args): PromiseWithChild<Output<string>>;
    (file: string, options: ExecFileOptionsWithBufferEncoding): PromiseWithChild<Output<OutputBuffer>>;
    (file: string, args: Args, options: ExecFileOptionsWithBufferEncoding): PromiseWithChild<Output<OutputBuffer>>;
    (file: string, options: ExecFileOptionsWithStringEncoding): PromiseWithChild<Output<string>>;
    (file: string, args: Args, options: ExecFileOptionsWithStringEncoding): PromiseWithChild<Output<string>>;
    (file: string, options: ExecFileOptions | undefined | null): PromiseWithChild<Output<string | OutputBuffer>>;
    (file: string, args: Args, options: ExecFileOptions | undefined | null): PromiseWithChild<Output<string | OutputBuffer>>;
  };
}

type SyncReturns<T> = cp.SpawnSyncReturns<T>;

/** `child_process.spawnSync()`'s overloads. */
export interface SpawnSync {
  (command: string): SyncReturns<OutputBuffer>;
  (command: string, options: SpawnSyncOptionsWithStringEncoding): SyncReturns<string>;
  (command: string, options: SpawnSyncOptionsWithBufferEncoding): SyncReturns<OutputBuffer>;
  (command: string, options?: SpawnSyncOptions): SyncReturns<string | OutputBuffer>;
  (command: string, args: readonly string[]): SyncReturns<OutputBuffer>;
  (command: string, args: readonly string[], options: SpawnSyncOptionsWithStringEncoding): SyncReturns<string>;
  (command: string, args: readonly string[], options: SpawnSyncOptionsWithBufferEncoding): SyncReturns<OutputBuffer>;
  (command: string, args?: readonly string[], options?: SpawnSyncOptions): SyncReturns<string | OutputBuffer>;
}

/** `child_process.execSync()`'s overloads. */
export interface ExecSync {
  (command: string): OutputBuffer;
  (command: string, options: ExecSyncOptionsWithStringEncoding): string;
  (command: string, options: ExecSyncOptionsWithBufferEncoding): OutputBuffer;
  (command: string, options?: ExecSyncOptions): string | OutputBuffer;
}

/** `child_process.execFileSync()`'s overloads. */
export interface ExecFileSync {
  (file: string): OutputBuffer;
  (file: string, options: ExecFileSyncOptionsWithStringEncoding): string;
  (file: string, options: ExecFileSyncOptionsWithBufferEncoding): OutputBuffer;
  (file: string, options?: ExecFileSyncOptions): string | OutputBuffer;
  (file: string, args: readonly string[]): OutputBuffer;
  (file: string, args: readonly string[], options: ExecFileSyncOptionsWithStringEncoding): string;
  (file: string, args: readonly string[], options: ExecFileSyncOptionsWithBufferEncoding): OutputBuffer;
  (file: string, args?: readonly string[], options?: ExecFileSyncOptions): string | OutputBuffer;
}

export interface ForkOptions extends cp.ForkOptions, ClonefdExtraOptions {}

/** `child_process.fork()`'s signature (Node's), returning clonefd's ChildProcess. */
export interface Fork {
  (modulePath: string | URL, options?: ForkOptions): ChildProcess;
  (modulePath: string | URL, args?: readonly string[], options?: ForkOptions): ChildProcess;
}

/** `child_process.spawn(command, args?, options?)`. */
export const spawn = spawnImpl as unknown as Spawn;
/** `child_process.exec(command, options?, callback?)`; `util.promisify(exec)` resolves `{ stdout, stderr }`. */
export const exec = execImpl as unknown as Exec;
/** `child_process.execFile(file, args?, options?, callback?)`; `util.promisify(execFile)` resolves `{ stdout, stderr }`. */
export const execFile = execFileImpl as unknown as ExecFile;
/** `child_process.spawnSync(command, args?, options?)`. */
export const spawnSync = spawnSyncImpl as unknown as SpawnSync;
/** `child_process.execSync(command, options?)`. */
export const execSync = execSyncImpl as unknown as ExecSync;
/** `child_process.execFileSync(file, args?, options?)`. */
export const execFileSync = execFileSyncImpl as unknown as ExecFileSync;

/** `child_process.fork(modulePath, args?, options?)`: a Node child with Node's IPC channel (`send()`, `'message'`). */
export const fork = forkImpl as unknown as Fork;

/** clonefd's loose internal types, kept for code that used them. */
export type { ExecCallback, ExecError } from './compat/exec';

export default { spawn, execFile, exec, spawnSync, execFileSync, execSync, fork, ChildProcess };
