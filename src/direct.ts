// The direct engine: the addon clones the child in this process
// (CLONE_VM|CLONE_VFORK|CLONE_PIDFD, exit signal 0), watches its pidfd with
// uv_poll on this environment's loop and reaps it with waitid(P_PIDFD).
import { binding, PlanFlag, Stage, type NativeChild } from './binding';
import type { EngineChild, RawExit, SpawnFn } from './engine';
import { SystemError } from './errors';
import type { SpawnRequest } from './options';

let probed = false;

function probe(): void {
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
    case Stage.Chdir: return `while changing to cwd ${JSON.stringify(req.cwd)}`;
    case Stage.Setsid: return 'while starting a new session (detached)';
    case Stage.Setgid: return `while setting gid ${req.gid}`;
    case Stage.Setuid: return `while setting uid ${req.uid}`;
    case Stage.Signals: return 'while resetting signal dispositions';
    case Stage.Clone: return 'clone failed: no child was created';
    case Stage.Watch: return 'the child could not be watched and was killed';
    default: return undefined;
  }
}

class DirectChild implements EngineChild {
  constructor(readonly pid: number, private readonly native: NativeChild) {}

  openUserFds(cloexec: boolean, nonblock: boolean): { fd: number; pidfd: number } {
    const fd = binding.openPidfd(this.native, cloexec, nonblock);
    if (fd < 0) throw new SystemError(-fd, 'pidfd_open');
    return { fd, pidfd: fd };
  }

  kill(signal: number): number {
    return binding.kill(this.native, signal);
  }

  ref(on: boolean): void {
    binding.ref(this.native, on);
  }

  reapNow(block: boolean): RawExit {
    return binding.reap(this.native, block);
  }
}

export const spawnDirect: SpawnFn = (req, stdioFds, onExit) => {
  probe();
  let flags = 0;
  if (req.detached) flags |= PlanFlag.Setsid;
  if (req.uid !== undefined) flags |= PlanFlag.Setuid;
  if (req.gid !== undefined) flags |= PlanFlag.Setgid;
  const native = binding.spawn(req.paths, req.argv, req.envp, req.cwd, stdioFds, flags, req.uid ?? 0, req.gid ?? 0, onExit, out);
  if (native === undefined) {
    throw new SystemError(out[0], `spawn ${req.file}`, {
      path: req.file,
      spawnargs: req.args,
      detail: stageDetail(out[1], req),
    });
  }
  return new DirectChild(out[2], native);
};
