/**
 * clonefd: launch and manage child processes through file descriptors,
 * without SIGCHLD. The 2015 CLONE_FD design on today's pidfds.
 */
import { binding } from './binding';
import type { SpawnFn } from './engine';
import { spawnDirect } from './engines/direct';
import { spawnHelper } from './engines/helper';
import { normalize, type ClonefdOptions, type Engine, type SpawnOptions } from './options';
import { Subprocess, validateFlags } from './subprocess';

export { ClonefdInfo, type Rusage } from './info';
export { O_CLOEXEC, O_NONBLOCK, CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLONEFD_INFO_SIZE } from './constants';
export { SystemError, AbortError } from './errors';
export { Subprocess, type SubprocessEvents } from './subprocess';
export type { SpawnOptions, ClonefdOptions, StdioEntry, StdioName, Engine } from './options';

/** Clock ticks per second (`sysconf(_SC_CLK_TCK)`): the unit of `utime` and `stime`. */
export const CLK_TCK: number = binding.clockTicks;

/** The handle `clonefd()` returns: `{ pid, fd, pidfd, read(), readAsync(), close() }` and more. */
export type ClonefdHandle = Subprocess;

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
export function spawn(file: string, args?: readonly string[], options?: SpawnOptions): Subprocess;
export function spawn(file: string, options?: SpawnOptions): Subprocess;
export function spawn(file: string, args?: unknown, options?: unknown): Subprocess {
  const req = normalize(file, args, options, 'pipe');
  return new Subprocess({ req, engine: engineFor(req.engine), flags: undefined });
}

/**
 * The mirror of the seed's `clone4(CLONE_FD)`: starts `file` and hands you
 * `fd`, which polls readable when the child exits, and reading it (`read()`)
 * yields the `clonefd_info`. `flags` accepts `O_CLOEXEC | O_NONBLOCK`
 * (default `O_CLOEXEC`); anything else throws EINVAL and spawns nothing.
 * stdio defaults to 'inherit'. You own `fd` and `pidfd`: `close()` them.
 */
export function clonefd(file: string, args?: readonly string[], options?: ClonefdOptions): ClonefdHandle;
export function clonefd(file: string, options?: ClonefdOptions): ClonefdHandle;
export function clonefd(file: string, args?: unknown, options?: unknown): ClonefdHandle {
  // clonefd(file, options) as spawn(file, options): the flags are in there.
  const opts = options ?? (args !== null && typeof args === 'object' && !Array.isArray(args) ? args : undefined);
  const flags = validateFlags(opts !== null && typeof opts === 'object' && Object.hasOwn(opts, 'flags') ? (opts as ClonefdOptions).flags : undefined);
  const req = normalize(file, args, options, 'inherit');
  return new Subprocess({ req, engine: engineFor(req.engine), flags });
}
