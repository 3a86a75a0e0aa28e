// What an engine is: something that creates a child from a validated
// request, watches it, reaps it and hands back its record. The Subprocess
// layer above is the same for every engine; the engines are
// src/engines/direct.ts and src/engines/helper.ts. This file also holds
// what both share: the pidfd probe, spawn errors, and the one place exits
// are delivered.
import { AsyncResource } from 'node:async_hooks';
import { CODE_LOST, Slot, Stage } from './abi';
import { binding } from './binding';
import { SystemError } from './errors';
import type { SpawnRequest } from './options';

/**
 * A child's record (src/abi.ts Slot layout). Code CODE_LOST means the
 * status was lost; its `status` slot is the errno then.
 */
export type ExitRecord = Float64Array;

/** A record saying that the status of `pid` was lost, with errno `err`. */
export function lostRecord(pid: number, err: number): ExitRecord {
  const rec = new Float64Array(Slot.Count);
  rec[Slot.Code] = CODE_LOST;
  rec[Slot.Status] = err;
  rec[Slot.Utime] = rec[Slot.Stime] = -1;
  rec[Slot.Pid] = pid;
  return rec;
}

/** The errno of a lost record, or 0 when the record has a status. */
export function lostErrno(rec: ExitRecord): number {
  return rec[Slot.Code] === CODE_LOST ? rec[Slot.Status] : 0;
}

/** Where a child's exit goes (the Subprocess). */
export interface ExitSink {
  /**
   * Called once per child with its record. `sync` is true when a
   * synchronous read() produced it, so events must be deferred rather than
   * emitted from inside the read.
   */
  onExit(record: ExitRecord, sync: boolean): void;
  /** Whether the child's stdio pipes have events the exit must not overtake (see ExitDelivery). */
  pipesInUse(): boolean;
}

export interface EngineChild {
  readonly pid: number;
  /**
   * The contract's readable-at-exit fd, handed to the user with the flags
   * given at spawn; from now on the user owns it. -1 when the child has
   * been reaped and none can be made any more. Asked at most once.
   */
  openUserFd(): number;
  /** The child's pidfd for the user, likewise (the same fd as openUserFd() with the direct engine). */
  openUserPidfd(): number;
  /** The user closed the fds handed out: stop using them. */
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
  readContract(block: boolean): ExitRecord | number | null;
  /** After the exit, if the user never took the fds: release what only served the contract. */
  release(): void;
}

/**
 * Creates the child; throws a SystemError if it could not be created or
 * could not exec (nothing is left behind then). `stdioFds[i]` is the fd
 * the child gets as fd i (-1: /dev/null for 0-2, closed beyond). `flags`
 * (O_CLOEXEC | O_NONBLOCK) apply to the user's fds. `cgroupFd` (-1: none)
 * is a cgroup v2 directory the child starts in; it stays the caller's.
 */
export type SpawnFn = (req: SpawnRequest, stdioFds: Int32Array, flags: number, sink: ExitSink, cgroupFd: number) => EngineChild;

let probed = false;

/** pidfds are needed by every engine: probed once (waitid(P_PIDFD) exists since 5.4). */
export function probePidfd(): void {
  if (probed) return;
  const r = binding.probe();
  if (r < 0) {
    throw new SystemError(-r, 'waitid', {
      detail: 'clonefd needs pidfds (Linux >= 5.4 with waitid(P_PIDFD)); this kernel has none',
    });
  }
  probed = true;
}

/** Words that say which step of the spawn failed (src/abi.ts Stage). */
export function stageDetail(stage: number, req: SpawnRequest): string | undefined {
  switch (stage) {
    case Stage.Stdio: return 'while mapping stdio into the child';
    case Stage.DevNull: return 'while opening /dev/null for ignored stdio';
    case Stage.Close: return 'while closing inherited fds in the child';
    case Stage.Chdir: return `while changing to cwd ${JSON.stringify(req.cwd ?? process.cwd())}`;
    case Stage.Setsid: return 'while starting a new session (detached)';
    case Stage.Setgid: return `while setting gid ${req.gid}`;
    case Stage.Setuid: return `while setting uid ${req.uid}`;
    case Stage.Signals: return 'while resetting signals in the child';
    case Stage.Clone: return 'clone failed: no child was created';
    case Stage.Watch: return 'the child could not be watched and was killed';
    case Stage.Cgroup: return 'while joining the child\'s cgroup';
    case Stage.Setpgid: return 'while making a process group for the child (killMode: \'tree\')';
    default: return undefined;
  }
}

/** The SystemError of a spawn that failed with errno at stage. */
export function spawnError(errno: number, stage: number, req: SpawnRequest, detail?: string): SystemError {
  return new SystemError(errno, `spawn ${req.file}`, { path: req.file, spawnargs: req.args, detail: detail ?? stageDetail(stage, req) });
}

/**
 * The one place a child's exit reaches the layers above, for both engines.
 * The delivery runs in the child's own async context, made at spawn (so
 * AsyncLocalStorage and async_hooks see the spawner's), and a listener
 * that throws is reported as an uncaught exception right there, inside
 * that context, without stopping the delivery of other exits.
 *
 * An exit is never delivered before what the child's pipes already say:
 * the kernel closes a dying child's fds before it signals the exit, so its
 * last output (and the EPIPE of a write it will never read) is ready by the
 * time the record is, but the loop may run the record's callback first, and
 * libuv stops reading a pipe after a short read, so the EOF of a pipe it
 * just read from is only seen in the next poll. While the child's pipes are
 * in use, the exit waits for the end of this poll phase (one setImmediate,
 * which is still before the close phase: a write that failed with EPIPE has
 * reported it, and stdin's 'close' comes after 'exit', as in Node), and, if
 * output is still unended then, for one more poll phase. A reader that
 * starts on stdout once stderr has ended is not cut off by the exit's
 * flush. Pipes a grandchild keeps open are not waited for beyond that; Node
 * does not wait for them either.
 */
export class ExitDelivery {
  readonly #resource = new AsyncResource('CLONEFD_CHILD');
  #done = false;

  constructor(private readonly sink: ExitSink) {}

  deliver(record: ExitRecord, sync: boolean): void {
    if (this.#done) return;
    this.#done = true;
    if (sync) {
      // Inside a read(): the Subprocess defers its events to a tick.
      this.sink.onExit(record, true);
      this.#resource.emitDestroy();
    } else if (this.sink.pipesInUse()) {
      // One turn: what the poll batch of the record held has run (an EPIPE
      // on stdin among it, so stdin's 'close' still comes after 'exit'). A
      // second while output is still unended: libuv stops reading a pipe
      // after a short read, so its EOF is only seen in the next poll.
      setImmediate(() => {
        if (this.sink.pipesInUse()) setImmediate(() => this.#deliverScoped(record));
        else this.#deliverScoped(record);
      });
    } else {
      this.#deliverScoped(record);
    }
  }

  #deliverScoped(record: ExitRecord): void {
    this.#resource.runInAsyncScope(this.#run, this, record);
    this.#resource.emitDestroy();
  }

  #run(record: ExitRecord): void {
    try {
      this.sink.onExit(record, false);
    } catch (err) {
      binding.fatalException(err);
    }
  }
}
