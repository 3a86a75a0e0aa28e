/**
 * clonefd: launch and manage child processes through file descriptors,
 * without SIGCHLD. The 2015 CLONE_FD design on today's pidfds.
 */
import type { Readable, Writable } from 'node:stream';
import { binding } from './binding';
import type { SpawnFn } from './engine';
import { spawnDirect } from './engines/direct';
import { spawnHelper } from './engines/helper';
import { normalize, type ClonefdOptions, type Engine, type SpawnOptions, type StdioName, type StdioOption } from './options';
import { Subprocess, validateFlags } from './subprocess';

export { ClonefdInfo, type Rusage } from './info';
export { O_CLOEXEC, O_NONBLOCK, CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLONEFD_INFO_SIZE } from './constants';
export { SystemError, AbortError } from './errors';
export { Subprocess, type SubprocessEvents } from './subprocess';
export type { SpawnOptions, ClonefdOptions, StdioEntry, StdioName, StdioOption, Engine } from './options';
export type { SignalName } from './signals';
export type { TreeInfo, CgroupLimits } from './cgroup';
export type { ReadinessOption, ReadyInfo, NotifyMessage, NotReadyError } from './readiness';

/** Clock ticks per second (`sysconf(_SC_CLK_TCK)`): the unit of `utime` and `stime`. */
export const CLK_TCK: number = binding.clockTicks;

/** The handle `clonefd()` returns: `{ pid, fd, pidfd, read(), readAsync(), close() }` and more. */
export type ClonefdHandle = Subprocess;

// What `stdio` makes of fds 0-2, in types: a 'pipe' slot (or a missing,
// null or undefined one) is a stream, anything else `null`. A plain array
// or a union gives `stream | null`, as at runtime one cannot tell either.
type PipeEntry = 'pipe' | 'overlapped' | null | undefined;
type EntryAt<S, I extends 0 | 1 | 2, D extends StdioName> = S extends undefined | null
  ? D
  : S extends string
    ? S
    : S extends readonly unknown[]
      ? number extends S['length']
        ? S[number] | undefined // an array of unknown length: any entry, or none
        : `${I}` extends keyof S
          ? S[`${I}` & keyof S]
          : undefined // a tuple too short for this fd: the slot is a pipe
      : never;
type StreamAt<S, I extends 0 | 1 | 2, D extends StdioName, T> = EntryAt<S, I, D> extends infer E ? (E extends PipeEntry ? T : null) : never;

/**
 * A `Subprocess` whose `stdin`, `stdout` and `stderr` are typed by its
 * `stdio` (`S`; `D` is the default: 'pipe' for `spawn()`, 'inherit' for
 * `clonefd()`): `spawn('cat')` has three non-null streams,
 * `spawn('cat', { stdio: ['pipe', 'inherit', 'ignore'] })` only `stdin`.
 */
export type Spawned<S extends StdioOption | undefined = undefined, D extends StdioName = 'pipe'> = Subprocess & {
  readonly stdin: StreamAt<S, 0, D, Writable>;
  readonly stdout: StreamAt<S, 1, D, Readable>;
  readonly stderr: StreamAt<S, 2, D, Readable>;
};

const engines: Record<Engine, SpawnFn> = { direct: spawnDirect, helper: spawnHelper };

function engineFor(name: Engine): SpawnFn {
  return engines[name];
}

/**
 * Starts `file` with `args`. Returns at once with the pid known; exec
 * errors (ENOENT, EACCES, ENOEXEC...) throw here as SystemErrors. stdio
 * defaults to 'pipe'. The handle is non-blocking: `read()` throws EAGAIN
 * before exit.
 */
export function spawn<const S extends StdioOption | undefined = undefined>(file: string, args?: readonly string[], options?: SpawnOptions<S>): Spawned<S, 'pipe'>;
export function spawn<const S extends StdioOption | undefined = undefined>(file: string, options?: SpawnOptions<S>): Spawned<S, 'pipe'>;
export function spawn(file: string, args?: unknown, options?: unknown): Subprocess {
  const req = normalize(file, args, options, 'pipe', 'spawn');
  return new Subprocess({ req, engine: engineFor(req.engine), flags: undefined });
}

/**
 * The mirror of the seed's `clone4(CLONE_FD)`: starts `file` and hands you
 * `fd`, which polls readable when the child exits, and reading it (`read()`)
 * yields the `clonefd_info`. `flags` accepts `O_CLOEXEC | O_NONBLOCK`
 * (default `O_CLOEXEC`); anything else throws EINVAL and spawns nothing.
 * stdio defaults to 'inherit'. You own `fd` and `pidfd`: `close()` them.
 */
export function clonefd<const S extends StdioOption | undefined = undefined>(file: string, args?: readonly string[], options?: ClonefdOptions<S>): Spawned<S, 'inherit'>;
export function clonefd<const S extends StdioOption | undefined = undefined>(file: string, options?: ClonefdOptions<S>): Spawned<S, 'inherit'>;
export function clonefd(file: string, args?: unknown, options?: unknown): ClonefdHandle {
  // clonefd(file, options) as spawn(file, options): the flags are in there.
  const opts = options ?? (args !== null && typeof args === 'object' && !Array.isArray(args) ? args : undefined);
  const flags = validateFlags(opts !== null && typeof opts === 'object' && Object.hasOwn(opts, 'flags') ? (opts as ClonefdOptions).flags : undefined);
  const req = normalize(file, args, options, 'inherit', 'clonefd');
  return new Subprocess({ req, engine: engineFor(req.engine), flags });
}
