// The helper engine (the default): one small helper process per Node
// process creates, watches and reaps every child (native/helper.c). The
// Node process then receives no SIGCHLD for them and no waitpid(-1) in it
// can see them. Each environment talks to the helper over its own
// SOCK_SEQPACKET socket; each child's exit record arrives twice: as an EXIT
// message on that socket (with the full rusage: `exited`, 'exit') and as
// the 24-byte struct clonefd_info in the child's record pipe, whose read
// end is the handle's `fd` (the contract, readable by any code).
import { AsyncResource } from 'node:async_hooks';
import path from 'node:path';
import { binding, bindingPath, type NativeChild } from './binding';
import { O_CLOEXEC, O_NONBLOCK } from './constants';
import { probePidfd, spawnError } from './direct';
import type { EngineChild, ExitFn, RawExit, SpawnFn } from './engine';
import { SystemError } from './errors';
import { spawnFlags, type SpawnRequest } from './options';
import { EAGAIN, EBADF, ECHILD, ECONNRESET, EPIPE, EPROTO, ESRCH } from './errno';


/** native/protocol.h */
const enum MsgType {
  Spawned = 3,
  Exit = 4,
}
/** native/addon.cc MsgSlot */
const enum Msg {
  Type = 0,
  Id,
  Pid,
  Err,
  Stage,
  Fd,
  Record,
}

const msg = new Float64Array(binding.messageSize);
const ensureOut = new Int32Array(2);
const execOut = new Int32Array(3);
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
  readonly watch: NativeChild;
  readonly children = new Map<number, HelperChild>();
  #nextId = 1;
  #refs = 0;
  #closed = false;
  /** EXIT messages read while waiting for something else, by request id,
   *  until dispatched (next tick, or at once by a read() that needs one). */
  #queued = new Map<number, Float64Array>();

  constructor(readonly generation: number) {
    const fd = binding.helperConnect(generation);
    if (fd < 0) throw new SystemError(-fd, 'connect', { detail: 'cannot reach the clonefd helper' });
    this.fd = fd;
    const watch = binding.watchFd(fd, () => this.drain());
    if (typeof watch === 'number') {
      binding.closeFd(fd);
      throw new SystemError(-watch, 'uv_poll_init');
    }
    this.watch = watch;
    binding.ref(watch, false); // an idle environment exits normally
  }

  get closed(): boolean {
    return this.#closed;
  }

  spawn(req: SpawnRequest, stdioFds: Int32Array, flags: number, onExit: ExitFn): HelperChild {
    const record = binding.recordPipe((flags & O_CLOEXEC) !== 0, (flags & O_NONBLOCK) !== 0);
    if (typeof record === 'number') throw new SystemError(-record, 'pipe2');
    const exec = binding.pipe();
    if (typeof exec === 'number') {
      binding.closeFd(record[0]);
      binding.closeFd(record[1]);
      throw new SystemError(-exec, 'pipe2');
    }
    const [readEnd, writeEnd] = record;
    const id = this.#nextId++;
    const sent = binding.helperSpawn(this.fd, id, req.paths, req.argv, req.envp, req.cwd, stdioFds, spawnFlags(req), req.uid ?? 0, req.gid ?? 0, writeEnd, exec[1]);
    // The helper (and through it the child) has its own copies now.
    binding.closeFd(writeEnd);
    binding.closeFd(exec[1]);
    if (sent < 0) {
      binding.closeFd(readEnd);
      binding.closeFd(exec[0]);
      if (sent === -ECONNRESET || sent === -EPIPE) this.lost();
      throw new SystemError(-sent, `spawn ${req.file}`, { path: req.file, spawnargs: req.args, detail: 'sending the request to the clonefd helper failed' });
    }
    // spawn() is synchronous. The exec's outcome comes straight from the
    // child (EOF: it exec'd; else its errno), the pid and pidfd from the
    // helper, which answers right after the clone.
    const execResult = binding.waitExec(exec[0], execOut);
    binding.closeFd(exec[0]);
    const type = this.#waitFor(MsgType.Spawned, id);
    if (type <= 0) {
      binding.closeFd(readEnd);
      // The helper died before it could announce the child: if the child
      // told us its pid, it must not run on as an orphan of this failure.
      if (execOut[0] > 0) binding.killPid(execOut[0], 9);
      this.#scheduleQueued();
      this.lost();
      throw new SystemError(type === 0 ? ECONNRESET : -type, `spawn ${req.file}`, {
        path: req.file,
        spawnargs: req.args,
        detail: 'the clonefd helper went away during the spawn',
      });
    }
    this.#scheduleQueued();
    const failed = execResult === 1 ? execOut[1] : execResult < 0 ? -execResult : msg[Msg.Err];
    if (failed !== 0) {
      const stage = execResult === 1 ? execOut[2] : msg[Msg.Stage];
      const pidfd = msg[Msg.Fd];
      binding.closeFd(readEnd);
      // A child was created if the helper sent its pidfd: it exits at once
      // and the helper reaps it. Wait for that, so that nothing is left
      // once spawn() throws.
      if (pidfd >= 0) {
        binding.closeFd(pidfd);
        this.#awaitExitOf(id);
      }
      throw spawnError(failed, stage, req);
    }
    const child = new HelperChild(this, id, msg[Msg.Pid], msg[Msg.Fd], readEnd, flags, onExit);
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

  /** Everything waiting on the socket, without blocking. `sync`: inside a read(). */
  drain(sync = false): void {
    for (;;) {
      if (this.#closed) return;
      const type = binding.helperRecv(this.fd, msg, false);
      if (type === -EAGAIN) return;
      if (type === MsgType.Exit) this.#dispatch(msg, sync);
      else if (type === MsgType.Spawned) this.#dropStray(msg);
      else if (type === -EPROTO) continue;
      else {
        this.lost(); // EOF or a socket error: the helper is gone
        return;
      }
    }
  }

  /**
   * Blocks until `child`'s EXIT arrives (read() has its 24 bytes already;
   * the helper sends EXIT right after writing them). Exits of others are
   * queued. If the socket fails first, the 24 bytes settle the child.
   */
  awaitExit(child: HelperChild, seed: Float64Array | null): void {
    if (!this.children.has(child.id) || this.takeQueued(child)) return;
    const gone = this.#closed || this.#waitFor(MsgType.Exit, child.id) <= 0;
    if (!gone) this.#dispatch(msg, true);
    this.#scheduleQueued();
    if (seed && this.children.has(child.id)) {
      // The 24 bytes are all there is: the record without rusage.
      const rec = new Float64Array(binding.recordSize);
      rec.set(seed.subarray(0, 4));
      rec[4] = child.pid;
      this.forget(child);
      child.deliver(rec, true);
    }
    if (gone) this.lost();
  }

  /** Blocks until the EXIT for request `id` (a failed spawn's child) or EOF. */
  #awaitExitOf(id: number): void {
    const gone = this.#waitFor(MsgType.Exit, id) <= 0;
    this.#scheduleQueued();
    if (gone) this.lost();
  }

  /**
   * Blocks reading the socket until the message of `type` for request `id`
   * is in `msg` (returns `type`), or the socket fails (returns 0 at EOF or
   * -errno: the helper is gone). EXITs of other children met on the way
   * are queued; answers nobody waits for are dropped.
   */
  #waitFor(type: MsgType, id: number): number {
    for (;;) {
      const got = binding.helperRecv(this.fd, msg, true);
      if (got === type && msg[Msg.Id] === id) return got;
      if (got === MsgType.Exit) this.#queue(msg);
      else if (got === MsgType.Spawned) this.#dropStray(msg);
      else if (got !== -EPROTO && got !== -EAGAIN) return got;
    }
  }

  /** A SPAWNED nobody waits for any more: its pidfd must not stay open. */
  #dropStray(m: Float64Array): void {
    if (m[Msg.Fd] >= 0) binding.closeFd(m[Msg.Fd]);
  }

  #queue(m: Float64Array): void {
    this.#queued.set(m[Msg.Id], m.slice());
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

  #dispatch(m: Float64Array, sync: boolean): void {
    const child = this.children.get(m[Msg.Id]);
    if (!child) return;
    this.forget(child);
    const record = m.slice(Msg.Record);
    // code 0: the helper could not obtain the status; status is its errno.
    child.deliver(record[0] === 0 ? -record[1] : record, sync);
  }

  forget(child: HelperChild): void {
    this.children.delete(child.id);
    this.setRef(child, false);
    if (this.children.size === 0 && helper.current !== this) this.close();
  }

  /** The helper died: every outstanding record is recovered here (SPEC §5). */
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
  #record: Float64Array | null = null;
  #consumed = false;
  #settled = false;
  #recovering: NativeChild | null = null;
  /** Settled by Node's own recovery (the helper died), not by EXIT. */
  #recovered = false;
  readonly #resource = new AsyncResource('CLONEFD_CHILD');

  constructor(
    readonly conn: Connection,
    readonly id: number,
    readonly pid: number,
    pidfd: number,
    recordFd: number,
    private readonly flags: number,
    private readonly onExit: ExitFn,
  ) {
    this.#pidfd = pidfd;
    this.#recordFd = recordFd;
  }

  deliver(raw: RawExit, sync: boolean): void {
    if (this.#settled) return;
    this.#settled = true;
    if (typeof raw !== 'number') this.#record = raw;
    if (this.#recovering) {
      binding.unwatch(this.#recovering); // closes the pidfd it owned
      this.#recovering = null;
    } else if (this.#pidfd >= 0) {
      binding.closeFd(this.#pidfd);
    }
    this.#pidfd = -1;
    if (sync) {
      this.onExit(raw, true);
    } else {
      try {
        this.#resource.runInAsyncScope(this.onExit, null, raw, false);
      } catch (err) {
        // A throwing 'exit' listener is the application's uncaught
        // exception; it must not stop the delivery of other exits.
        process.nextTick(() => {
          throw err;
        });
      }
    }
    this.#resource.emitDestroy();
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

  readContract(block: boolean): RawExit | null {
    if (this.#consumed) return null;
    if (this.#recordFd < 0) {
      // The user closed the contract fd: the record is served from memory.
      if (!this.#settled) return block ? -EBADF : -EAGAIN;
      this.#consumed = true;
      return this.#record ?? -ECHILD;
    }
    // Once the exit is known the record is due (the helper sends EXIT, then
    // writes it) or the pipe is at EOF: waiting for it cannot hang.
    const r = binding.readRecord(this.#recordFd, block || this.#settled, this.#pidfd);
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
      // The helper died: the record is recovered here (SPEC §5).
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
    const watch = binding.watchFd(this.#pidfd, () => this.#tryRecover(false));
    if (typeof watch === 'number') {
      this.conn.forget(this);
      this.deliver(watch, false);
      return;
    }
    this.#recovering = watch;
    binding.ref(watch, this.refed);
  }

  #tryRecover(sync: boolean): boolean {
    if (this.#settled) return true;
    const r = binding.recoverExit(this.#pidfd, this.pid);
    if (r === -EAGAIN) return false;
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

