// What an engine is: something that creates a child from a validated
// request, watches it, reaps it and hands back the raw record. The
// Subprocess layer above is the same for every engine.
import type { SpawnRequest } from './options';

/** Native record (binding.ts Slot layout) or a negative errno. */
export type RawExit = Float64Array | number;

export interface EngineChild {
  readonly pid: number;
  /**
   * Opens the fds handed to the user: the contract's readable-at-exit fd
   * and the pidfd (the same fd for the direct engine), with the caller's
   * O_CLOEXEC / O_NONBLOCK choice. The engine keeps private duplicates.
   */
  openUserFds(cloexec: boolean, nonblock: boolean): { fd: number; pidfd: number };
  /** 0, or -errno (-ESRCH once reaped). */
  kill(signal: number): number;
  /** Whether a running child keeps the event loop alive. */
  ref(on: boolean): void;
  /** Reap synchronously: the record, -EAGAIN when still running (block=false), -ECHILD when already reaped. */
  reapNow(block: boolean): RawExit;
}

/**
 * Creates the child; throws a SystemError if it could not be created or
 * could not exec (nothing is left behind then). `stdioFds[i]` is the fd
 * the child gets as fd i (-1: /dev/null for 0-2, closed beyond). `onExit`
 * runs once, from the event loop, unless `reapNow` got the record first.
 */
export type SpawnFn = (req: SpawnRequest, stdioFds: Int32Array, onExit: (raw: RawExit) => void) => EngineChild;
