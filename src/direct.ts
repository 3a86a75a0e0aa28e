// The direct engine: the addon clones the child in this process
// (CLONE_VM|CLONE_VFORK|CLONE_PIDFD, exit signal 0), watches its pidfd with
// uv_poll on this environment's loop and reaps it with waitid(P_PIDFD).
import { binding, Stage, type NativeChild } from './binding';
import { O_CLOEXEC, O_NONBLOCK } from './constants';
import type { EngineChild, ExitFn, RawExit, SpawnFn } from './engine';
import { SystemError } from './errors';
import { spawnFlags, type SpawnRequest } from './options';
import { EAGAIN, ECHILD, ESRCH } from './errno';

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

const out = new Int32Array(3);

/** Words that say which step of the spawn failed (native/child.h stages). */
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
    default: return undefined;
  }
}

export function spawnError(errno: number, stage: number, req: SpawnRequest): SystemError {
  return new SystemError(errno, `spawn ${req.file}`, { path: req.file, spawnargs: req.args, detail: stageDetail(stage, req) });
}

class DirectChild implements EngineChild {
  #record: Float64Array | null = null;
  #consumed = false;
  #reaped = false;

  constructor(
    readonly pid: number,
    private readonly native: NativeChild,
    private readonly flags: number,
    private readonly onExit: ExitFn,
  ) {}

  /** From the uv_poll callback (or a synchronous reap). */
  deliver(raw: RawExit, sync: boolean): void {
    this.#reaped = true;
    if (typeof raw !== 'number') this.#record = raw;
    this.onExit(raw, sync);
  }

  openUserFds(): { fd: number; pidfd: number } {
    if (this.#reaped) return { fd: -1, pidfd: -1 };
    const fd = binding.openPidfd(this.native, (this.flags & O_CLOEXEC) !== 0, (this.flags & O_NONBLOCK) !== 0);
    if (fd === -ESRCH) return { fd: -1, pidfd: -1 }; // reaped elsewhere meanwhile
    if (fd < 0) throw new SystemError(-fd, 'pidfd_open');
    return { fd, pidfd: fd };
  }

  userFdsClosed(): void {
    // The contract's record lives in memory with this engine: nothing to do.
  }

  kill(signal: number): number {
    return binding.kill(this.native, signal);
  }

  ref(on: boolean): void {
    binding.ref(this.native, on);
  }

  readContract(block: boolean): RawExit | null {
    if (this.#consumed) return null;
    if (!this.#reaped) {
      // A pidfd cannot be read(2): the record comes from a reap done now.
      const raw = binding.reap(this.native, block);
      if (raw === -EAGAIN) return raw;
      if (raw !== -ECHILD) this.deliver(raw, true);
    }
    this.#consumed = true;
    return this.#record ?? -ECHILD;
  }

  release(): void {}
}

export const spawnDirect: SpawnFn = (req, stdioFds, flags, onExit) => {
  probePidfd();
  let child: DirectChild | undefined;
  const native = binding.spawn(
    req.paths, req.argv, req.envp, req.cwd, stdioFds, spawnFlags(req), req.uid ?? 0, req.gid ?? 0,
    (raw: RawExit) => child!.deliver(raw, false),
    out,
  );
  if (native === undefined) throw spawnError(out[0], out[1], req);
  child = new DirectChild(out[2], native, flags, onExit);
  return child;
};
