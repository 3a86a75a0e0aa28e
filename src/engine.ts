// What an engine is: something that creates a child from a validated
// request, watches it, reaps it and hands back the raw record. The
// Subprocess layer above is the same for every engine.
import type { SpawnRequest } from './options';

/** Native record (binding.ts Slot layout) or a negative errno. */
export type RawExit = Float64Array | number;

/**
 * Called once per child with its record (or -errno when the status was
 * lost). `sync` is true when a synchronous read() produced it, so events
 * must be deferred rather than emitted from inside the read.
 */
export type ExitFn = (raw: RawExit, sync: boolean) => void;

export interface EngineChild {
  readonly pid: number;
  /**
   * The fds handed to the user: the contract's readable-at-exit fd and the
   * pidfd (the same fd for the direct engine), with the flags given at
   * spawn. From now on the user owns them. -1 when the child has been
   * reaped and none can be made any more.
   */
  openUserFds(): { fd: number; pidfd: number };
  /** The user closed the fds from openUserFds(): stop using them. */
  userFdsClosed(): void;
  /** 0, or -errno (-ESRCH once reaped). */
  kill(signal: number): number;
  /** Whether a running child keeps the event loop alive. */
  ref(on: boolean): void;
  /**
   * The contract's read. The first successful read returns the record
   * (the exit has been delivered through ExitFn by then), later ones
   * `null` (EOF). -EAGAIN before exit when block is false; other -errno.
   */
  readContract(block: boolean): RawExit | null;
  /** After the exit, if the user never took the fds: release what only served the contract. */
  release(): void;
}

/**
 * Creates the child; throws a SystemError if it could not be created or
 * could not exec (nothing is left behind then). `stdioFds[i]` is the fd
 * the child gets as fd i (-1: /dev/null for 0-2, closed beyond). `flags`
 * (O_CLOEXEC | O_NONBLOCK) apply to the user's fds.
 */
export type SpawnFn = (req: SpawnRequest, stdioFds: Int32Array, flags: number, onExit: ExitFn) => EngineChild;
