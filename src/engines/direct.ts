// The direct engine: the addon clones the child in this process
// (CLONE_VM|CLONE_VFORK|CLONE_PIDFD, exit signal 0), watches its pidfd with
// uv_poll on this environment's loop and reaps it with waitid(P_PIDFD)
// (native/addon/direct.cc).
import { binding, type NativeWatch } from '../binding';
import { O_CLOEXEC, O_NONBLOCK } from '../constants';
import { ExitDelivery, probePidfd, spawnError, type EngineChild, type ExitRecord, type SpawnFn } from '../engine';
import { ECHILD, ESRCH } from '../errno';
import { SystemError } from '../errors';
import { spawnFlags } from '../options';

const out = new Int32Array(3);

class DirectChild implements EngineChild {
  #record: ExitRecord | null = null;
  #consumed = false;
  #reaped = false;

  constructor(
    readonly pid: number,
    private readonly native: NativeWatch,
    private readonly flags: number,
    private readonly delivery: ExitDelivery,
  ) {}

  /** From the uv_poll callback (or a synchronous reap). */
  deliver(record: ExitRecord, sync: boolean): void {
    this.#reaped = true;
    this.#record = record;
    this.delivery.deliver(record, sync);
  }

  /** The user's pidfd (-2: not opened yet): with this engine it is also the contract's fd. */
  #userFd = -2;

  openUserFd(): number {
    if (this.#userFd !== -2) return this.#userFd;
    if (this.#reaped) return (this.#userFd = -1);
    const fd = binding.openPidfd(this.native, (this.flags & O_CLOEXEC) !== 0, (this.flags & O_NONBLOCK) !== 0);
    if (fd === -ESRCH) return (this.#userFd = -1); // reaped elsewhere meanwhile
    if (fd < 0) throw new SystemError(-fd, 'pidfd_open');
    return (this.#userFd = fd);
  }

  openUserPidfd(): number {
    return this.openUserFd();
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

  readContract(block: boolean): ExitRecord | number | null {
    if (this.#consumed) return null;
    if (!this.#reaped) {
      // A pidfd cannot be read(2): the record comes from a reap done now.
      const raw = binding.reap(this.native, block);
      if (typeof raw === 'number') return raw; // -EAGAIN, or the reap failed: nothing consumed
      this.deliver(raw, true);
    }
    this.#consumed = true;
    return this.#record ?? -ECHILD;
  }

  release(): void {}
}

export const spawnDirect: SpawnFn = (req, stdioFds, flags, sink, cgroupFd) => {
  probePidfd();
  let child: DirectChild | undefined;
  const native = binding.spawn(
    req.paths, req.argv, req.envp, req.cwd, stdioFds, spawnFlags(req), req.uid ?? 0, req.gid ?? 0,
    (record: ExitRecord) => child!.deliver(record, false),
    out,
    cgroupFd,
  );
  if (native === undefined) throw spawnError(out[0], out[1], req);
  child = new DirectChild(out[2], native, flags, new ExitDelivery(sink));
  return child;
};
