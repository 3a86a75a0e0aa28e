// The helper engine (the default): one small helper process per Node
// process creates, watches and reaps every child (native/helper.c). The
// Node process then receives no SIGCHLD for them and no waitpid(-1) in it
// can see them. Each environment talks to the helper over its own
// SOCK_SEQPACKET socket; each child's exit record arrives twice: as an EXIT
// message on that socket (with the full rusage: `exited`, 'exit') and as
// the 24-byte struct clonefd_info in the child's record pipe, whose read
// end is the handle's `fd` (the contract, readable by any code).
// docs/ARCHITECTURE.md has the whole sequence.
import path from 'node:path';
import { Msg, MsgType } from '../abi';
import { binding, bindingPath, type NativeWatch } from '../binding';
import { O_CLOEXEC, O_NONBLOCK } from '../constants';
import { ExitDelivery, lostRecord, probePidfd, spawnError, type EngineChild, type ExitFn, type ExitRecord, type SpawnFn } from '../engine';
import { EAGAIN, EBADF, ECHILD, ECONNRESET, EPIPE, EPROTO, ESRCH } from '../errno';
import { SystemError } from '../errors';
import { spawnFlags, type SpawnRequest } from '../options';
import { SIGKILL } from '../signals';

/** A reply from the helper: a fresh array of its own (src/abi.ts Msg layout). */
type Reply = Float64Array;

const ensureOut = new Int32Array(2);
const spawnOut = new Int32Array(4);

/**
 * The helper executable on disk: the fallback when the embedded copy can't
 * run from a memfd. Next to the addon: `clonefd-helper` in a source build,
 * `clonefd-helper.<libc>` beside a prebuild's `<name>.<libc>.node` (one
 * folder per arch holds both the glibc and the musl build).
 */
export function helperFileFor(addon: string): string {
  const libc = /\.(glibc|musl)\.node$/.exec(addon);
  return path.join(path.dirname(addon), libc ? `clonefd-helper.${libc[1]}` : 'clonefd-helper');
}
const helperFile = helperFileFor(bindingPath);

/**
 * One environment's socket to one helper generation. A new generation
 * (the helper died, or Node's credentials changed) gets a new connection;
 * an old one lives until its children are done.
 */
class Connection {
  readonly fd: number;
  readonly watch: NativeWatch;
  readonly children = new Map<number, HelperChild>();
  #nextId = 1;
  #refs = 0;
  #closed = false;
  /** EXIT messages read while waiting for something else, by request id,
   *  until dispatched (next tick, or at once by a read() that needs one). */
  #queued = new Map<number, Reply>();

  constructor(readonly generation: number) {
    const fd = binding.helperConnect(generation);
    if (fd < 0) throw new SystemError(-fd, 'connect', { detail: 'cannot reach the clonefd helper' });
    this.fd = fd;
    const watch = binding.watchFd(fd, () => this.#onReadable());
    if (typeof watch === 'number') throw new SystemError(-watch, 'uv_poll_init'); // the watch closed fd
    this.watch = watch;
    binding.ref(watch, false); // an idle environment exits normally
  }

  get closed(): boolean {
    return this.#closed;
  }

  spawn(req: SpawnRequest, stdioFds: Int32Array, flags: number, onExit: ExitFn): HelperChild {
    const id = this.#nextId++;
    const userFlags = ((flags & O_CLOEXEC) !== 0 ? 1 : 0) | ((flags & O_NONBLOCK) !== 0 ? 2 : 0);
    const sent = binding.helperSpawn(this.fd, id, req.paths, req.argv, req.envp, req.cwd, stdioFds, spawnFlags(req), req.uid ?? 0, req.gid ?? 0, userFlags, spawnOut);
    if (sent < 0) {
      if (sent === -ECONNRESET || sent === -EPIPE) this.lost();
      throw spawnError(-sent, 0, req, 'sending the request to the clonefd helper failed');
    }
    // The exec's outcome is known (helperSpawn read it from the child); the
    // pid and pidfd come from the helper, which answers right after the clone.
    const [recordFd, toldPid, execErr, execStage] = spawnOut;
    const reply = this.#waitFor(MsgType.Spawned, id);
    this.#scheduleQueued();
    if (typeof reply === 'number') {
      binding.closeFd(recordFd);
      // The helper died before it could announce the child: if the child
      // told us its pid, it must not run on as an orphan of this failure.
      if (toldPid > 0) binding.killPid(toldPid, SIGKILL);
      this.lost();
      throw spawnError(reply === 0 ? ECONNRESET : -reply, 0, req, 'the clonefd helper went away during the spawn');
    }
    const failed = execErr !== 0 ? execErr : reply[Msg.Err];
    if (failed !== 0) {
      binding.closeFd(recordFd);
      // A child was created if the helper sent its pidfd: it exits at once
      // and the helper reaps it. Wait for that, so that nothing is left
      // once spawn() throws.
      if (reply[Msg.Fd] >= 0) {
        binding.closeFd(reply[Msg.Fd]);
        this.#awaitExitOf(id);
      }
      throw spawnError(failed, execErr !== 0 ? execStage : reply[Msg.Stage], req);
    }
    const child = new HelperChild(this, id, reply[Msg.Pid], reply[Msg.Fd], recordFd, flags, new ExitDelivery(onExit));
    this.children.set(id, child);
    this.setRef(child, true);
    return child;
  }

  setRef(child: HelperChild, on: boolean): void {
    if (child.refed === on) return;
    child.refed = on;
    this.#refs += on ? 1 : -1;
    if (!this.#closed) binding.ref(this.watch, this.#refs > 0);
  }

  /** The socket is readable: one message handled; true while there may be more. */
  #onReadable(): boolean {
    if (this.#closed) return false;
    const m = binding.helperRecv(this.fd, false);
    if (typeof m !== 'number') {
      if (m[Msg.Type] === MsgType.Exit) this.#dispatch(m, false);
      else this.#dropStray(m);
      return true;
    }
    if (m === -EAGAIN) return false;
    if (m === -EPROTO) return true; // dropped
    this.lost(); // EOF or a socket error: the helper is gone
    return false;
  }

  /**
   * Blocks until `child`'s EXIT arrives (read() has its 24 bytes already;
   * the helper sends EXIT right after writing them). Exits of others are
   * queued. If the socket fails first, the 24 bytes settle the child.
   */
  awaitExit(child: HelperChild, seed: ExitRecord | null): void {
    if (!this.children.has(child.id) || this.takeQueued(child)) return;
    const reply = this.#closed ? 0 : this.#waitFor(MsgType.Exit, child.id);
    if (typeof reply !== 'number') this.#dispatch(reply, true);
    this.#scheduleQueued();
    if (seed && this.children.has(child.id)) {
      // The 24 bytes are all there is: the record without rusage.
      this.forget(child);
      child.deliver(seed, true);
    }
    if (typeof reply === 'number') this.lost();
  }

  /** Blocks until the EXIT for request `id` (a failed spawn's child) or EOF. */
  #awaitExitOf(id: number): void {
    const reply = this.#waitFor(MsgType.Exit, id);
    this.#scheduleQueued();
    if (typeof reply === 'number') this.lost();
  }

  /**
   * Blocks reading the socket until the reply of `type` for request `id`
   * (returned), or the socket fails (0 at EOF or -errno: the helper is
   * gone). EXITs of other children met on the way are queued; answers
   * nobody waits for are dropped.
   */
  #waitFor(type: MsgType, id: number): Reply | number {
    for (;;) {
      const m = binding.helperRecv(this.fd, true);
      if (typeof m === 'number') {
        if (m === -EPROTO || m === -EAGAIN) continue;
        return m;
      }
      if (m[Msg.Type] === type && m[Msg.Id] === id) return m;
      if (m[Msg.Type] === MsgType.Exit) this.#queued.set(m[Msg.Id], m);
      else this.#dropStray(m);
    }
  }

  /** A SPAWNED nobody waits for any more: its pidfd must not stay open. */
  #dropStray(m: Reply): void {
    if (m[Msg.Fd] >= 0) binding.closeFd(m[Msg.Fd]);
  }

  #scheduleQueued(): void {
    if (this.#queued.size === 0) return;
    process.nextTick(() => {
      for (const [id, m] of [...this.#queued]) {
        this.#queued.delete(id);
        this.#dispatch(m, false);
      }
    });
  }

  /** A queued EXIT for this child, dispatched now (inside a read()). */
  takeQueued(child: HelperChild): boolean {
    const m = this.#queued.get(child.id);
    if (!m) return false;
    this.#queued.delete(child.id);
    this.#dispatch(m, true);
    return true;
  }

  #dispatch(m: Reply, sync: boolean): void {
    const child = this.children.get(m[Msg.Id]);
    if (!child) return;
    this.forget(child);
    child.deliver(m.subarray(Msg.Record), sync);
  }

  forget(child: HelperChild): void {
    this.children.delete(child.id);
    this.setRef(child, false);
    if (this.children.size === 0 && helper.current !== this) this.close();
  }

  /** The helper died: every outstanding record is recovered here (docs/ARCHITECTURE.md). */
  lost(): void {
    if (this.#closed) return;
    this.close();
    if (helper.current === this) helper.current = null;
    for (const child of [...this.children.values()]) child.recover();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    binding.unwatch(this.watch);
  }
}

/** This environment's view of the helper. */
const helper: { current: Connection | null } = { current: null };

function connection(): Connection {
  const gen = binding.helperEnsure(helperFile, ensureOut);
  if (gen < 0) {
    throw new SystemError(-gen, 'spawn clonefd-helper', {
      detail:
        `the clonefd helper could not be started (${ensureOut[1] ? 'exec failed' : 'memfd/socket failed'}): ` +
        "neither the embedded copy (memfd) nor the file next to the addon could be executed; use { engine: 'direct' }",
    });
  }
  let conn = helper.current;
  if (conn && (conn.closed || conn.generation !== gen)) {
    // A new helper (the old one died, or Node's credentials changed).
    if (!conn.closed && conn.children.size === 0) conn.close();
    conn = null;
  }
  if (!conn) {
    conn = new Connection(gen);
    helper.current = conn;
  }
  return conn;
}

class HelperChild implements EngineChild {
  refed = false;
  #pidfd: number; // private, CLOEXEC; -1 once reaped
  #recordFd: number; // the contract's fd; the user's once handed over
  #handedOver = false;
  #record: ExitRecord | null = null;
  #consumed = false;
  #settled = false;
  #recovering: NativeWatch | null = null;
  /** Settled by Node's own recovery (the helper died), not by EXIT. */
  #recovered = false;

  constructor(
    readonly conn: Connection,
    readonly id: number,
    readonly pid: number,
    pidfd: number,
    recordFd: number,
    private readonly flags: number,
    private readonly delivery: ExitDelivery,
  ) {
    this.#pidfd = pidfd;
    this.#recordFd = recordFd;
  }

  deliver(record: ExitRecord, sync: boolean): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#record = record;
    if (this.#recovering) {
      binding.unwatch(this.#recovering); // closes the pidfd it owned
      this.#recovering = null;
    } else if (this.#pidfd >= 0) {
      binding.closeFd(this.#pidfd);
    }
    this.#pidfd = -1;
    this.delivery.deliver(record, sync);
  }

  openUserFds(): { fd: number; pidfd: number } {
    if (this.#handedOver || this.#recordFd < 0 || this.#pidfd < 0) return { fd: -1, pidfd: -1 };
    const pidfd = binding.dupUserFd(this.#pidfd, (this.flags & O_CLOEXEC) !== 0, (this.flags & O_NONBLOCK) !== 0);
    if (pidfd < 0) throw new SystemError(-pidfd, 'dup');
    this.#handedOver = true;
    return { fd: this.#recordFd, pidfd };
  }

  userFdsClosed(): void {
    this.#recordFd = -1;
  }

  kill(signal: number): number {
    if (this.#pidfd < 0) return -ESRCH;
    return binding.killPidfd(this.#pidfd, signal);
  }

  ref(on: boolean): void {
    if (this.#settled) return;
    if (this.#recovering) {
      // The helper is gone: the recovery watch is what keeps the loop.
      this.refed = on;
      binding.ref(this.#recovering, on);
    } else {
      this.conn.setRef(this, on);
    }
  }

  readContract(block: boolean): ExitRecord | number | null {
    if (this.#consumed) return null;
    if (this.#recordFd < 0) {
      // The user closed the contract fd: the record is served from memory.
      if (!this.#settled) return block ? -EBADF : -EAGAIN;
      this.#consumed = true;
      return this.#record ?? -ECHILD;
    }
    // Once the exit is known the record is due (the helper sends EXIT, then
    // writes it) or the pipe is at EOF: waiting for it cannot hang.
    const r = binding.readRecord(this.#recordFd, block || this.#settled, this.#pidfd, this.pid);
    if (typeof r === 'number' && r < 0) return r;
    if (typeof r === 'number') {
      // EOF, no record in the pipe. Was it read by someone else, or did
      // the helper die without writing it? The socket tells: the EXIT
      // message (then a raw read(2) took the record) or its EOF.
      if (!this.#settled && !this.conn.closed) this.conn.awaitExit(this, null);
      if (this.#settled && !this.#recovered) {
        this.#consumed = true;
        return null;
      }
      // The helper died: the record is recovered here.
      if (!this.#settled && !this.#tryRecover(true)) {
        if (!block) return -EAGAIN; // still running: nothing consumed
        binding.waitReadable(this.#pidfd);
        this.#tryRecover(true);
      }
      this.#consumed = true;
      return this.#record ?? -ECHILD;
    }
    // The helper writes the record, then sends EXIT (with the rusage): it
    // is at most a moment away.
    this.#consumed = true;
    if (!this.#settled) this.conn.awaitExit(this, r);
    return this.#record;
  }

  release(): void {
    if (!this.#handedOver && this.#recordFd >= 0) {
      binding.closeFd(this.#recordFd);
      this.#recordFd = -1;
    }
  }

  /** The helper died with this child outstanding. */
  recover(): void {
    if (this.#settled || this.#pidfd < 0) return;
    if (this.#tryRecover(false)) return;
    // Still running: watch its pidfd (the watch owns it from now on).
    const watch = binding.watchFd(this.#pidfd, () => {
      this.#tryRecover(false);
      return false;
    });
    if (typeof watch === 'number') {
      this.#pidfd = -1; // closed by the failed watch
      this.conn.forget(this);
      this.deliver(lostRecord(this.pid, -watch), false);
      return;
    }
    this.#recovering = watch;
    binding.ref(watch, this.refed);
  }

  #tryRecover(sync: boolean): boolean {
    if (this.#settled) return true;
    const r = binding.recoverExit(this.#pidfd, this.pid);
    if (typeof r === 'number') return false; // -EAGAIN: still running
    this.#recovered = true;
    this.conn.forget(this);
    this.deliver(r, sync);
    return true;
  }
}

export const spawnHelper: SpawnFn = (req, stdioFds, flags, onExit) => {
  probePidfd();
  const conn = connection();
  return conn.spawn(req, stdioFds, flags, onExit);
};

/** For tests and diagnostics: the helper's pid (0 when none runs). */
export function helperPid(): number {
  return binding.helperPid();
}
