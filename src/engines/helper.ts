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
import { Msg, MsgType, Stage } from '../abi';
import { binding, bindingPath, type NativeWatch } from '../binding';
import { O_CLOEXEC, O_NONBLOCK } from '../constants';
import { ExitDelivery, lostRecord, probePidfd, spawnError, type EngineChild, type ExitSink, type ExitRecord, type SpawnFn } from '../engine';
import { EACCES, EAGAIN, ECANCELED, EBADF, ECHILD, ECONNRESET, ENOENT, ENOEXEC, EPERM, EPIPE, EPROTO, ESRCH, ETIMEDOUT } from '../errno';
import { codedError, errnoName, SystemError } from '../errors';
import { spawnFlags, type SpawnRequest } from '../options';
import { SIGKILL } from '../signals';

/** A reply from the helper: a fresh array of its own (src/abi.ts Msg layout). */
type Reply = Float64Array;

/** helperSpawn's out slots (native/addon/helper_client.cc SpawnOut). */
const enum Out { RecordFd, Pid, Pidfd, ExecErr, ExecStage, Err, Stage, Step, Size }
const enum Step { Local = 1, Send = 2, Reply = 3, Umask = 4 }

const ensureOut = new Int32Array(2);
const connectOut = new Int32Array(2);
const spawnOut = new Int32Array(Out.Size);

/**
 * How long a spawn waits for the helper to answer (of this process's
 * running time): CLONEFD_HELPER_TIMEOUT_MS, default 5 s. A helper that
 * does not answer in time (stopped, or wedged) is abandoned: the spawn
 * fails with ERR_CLONEFD_HELPER_UNRESPONSIVE and the next one starts a
 * new helper.
 */
function helperTimeoutMs(): number {
  const v = Number(process.env.CLONEFD_HELPER_TIMEOUT_MS);
  return Number.isInteger(v) && v > 0 ? v : 5000;
}

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

/** A reply nobody waits for (never sent on the event socket by our helper): its fd must not stay open. */
function dropStray(m: Reply): void {
  if (m[Msg.Fd] >= 0) binding.closeFd(m[Msg.Fd]);
}

/** The error of a helper that did not answer within the deadline. */
function unresponsive(req: SpawnRequest | null, ms: number): Error {
  const err = codedError(Error, 'ERR_CLONEFD_HELPER_UNRESPONSIVE',
    `${req ? `spawn ${req.file}: ` : ''}the clonefd helper did not answer within ${ms} ms (is it stopped?); it is abandoned and the next spawn starts a new one`);
  if (req) Object.assign(err, { path: req.file, spawnargs: req.args });
  return err;
}

/**
 * One environment's connection to one helper generation: a request socket
 * (SPAWN and its SPAWNED, read synchronously by spawn()) and an event
 * socket (EXIT, read by this environment's loop). A new generation (the
 * helper died, was abandoned, or Node's credentials changed) gets a new
 * connection; an old one lives until its children are done.
 */
class Connection {
  readonly fd: number;
  readonly efd: number;
  readonly watch: NativeWatch;
  readonly children = new Map<number, HelperChild>();
  #nextId = 1;
  #refs = 0;
  #closed = false;
  /** EXITs read off the event socket by a read() waiting for its own, until dispatched from the loop. */
  #queued = new Map<number, Reply>();
  #queueScheduled = false;
  /** While children are outstanding: notices a helper that stopped reaping them (see #check). */
  #watchdog: NodeJS.Timeout | undefined;
  /** Children seen exited (pidfd readable) at the last check, still without their EXIT. */
  #seenExited = new Set<number>();

  constructor(readonly generation: number) {
    const r = binding.helperConnect(generation, connectOut);
    if (r < 0) throw new SystemError(-r, 'connect', { detail: 'cannot reach the clonefd helper' });
    [this.fd, this.efd] = connectOut;
    const watch = binding.watchFd(this.efd, () => this.#onEvent());
    if (typeof watch === 'number') {
      binding.closeFd(this.fd); // the failed watch closed efd
      throw new SystemError(-watch, 'uv_poll_init');
    }
    this.watch = watch;
    binding.ref(watch, false); // an idle environment exits normally
  }

  get closed(): boolean {
    return this.#closed;
  }

  spawn(req: SpawnRequest, stdioFds: Int32Array, flags: number, sink: ExitSink, cgroupFd: number): HelperChild {
    const id = this.#nextId++;
    const userFlags = ((flags & O_CLOEXEC) !== 0 ? 1 : 0) | ((flags & O_NONBLOCK) !== 0 ? 2 : 0);
    const timeout = helperTimeoutMs();
    const r = binding.helperSpawn(this.fd, id, req.paths, req.argv, req.envp, req.cwd, stdioFds, spawnFlags(req), req.uid ?? 0, req.gid ?? 0, userFlags, timeout, spawnOut, cgroupFd);
    // undefined: the addon could not act (this environment is shutting down).
    if (typeof r !== 'number') throw spawnError(ECANCELED, 0, req, 'this environment is shutting down');
    if (r < 0) {
      const step = spawnOut[Out.Step];
      if (step === Step.Local) throw spawnError(-r, 0, req);
      // The umask can only be read without changing it from /proc/self/status.
      if (step === Step.Umask) throw spawnError(-r, 0, req, "while reading this process's umask from /proc/self/status (the helper engine needs /proc mounted; engine: 'direct' does not)");
      if (r === -ETIMEDOUT) {
        // A child it made before it stopped answering must not run on for
        // a spawn that fails (it is still ours: a zombie keeps its pid).
        if (spawnOut[Out.Pid] > 0) binding.killPid(spawnOut[Out.Pid], SIGKILL);
        this.abandon();
        throw unresponsive(req, timeout);
      }
      if (step === Step.Reply && spawnOut[Out.Pid] > 0) {
        // The helper went away before it could announce the child: it must
        // not run on as an orphan of this failure.
        binding.killPid(spawnOut[Out.Pid], SIGKILL);
      }
      if (r === -ECONNRESET || r === -EPIPE || step === Step.Reply) this.lost();
      if (step === Step.Send && (r === -ECONNRESET || r === -EPIPE)) {
        // Nothing reached the helper (it went away since the last spawn):
        // safe to try once more, with a new connection or a new helper.
        throw Object.assign(spawnError(-r, 0, req, 'sending the request to the clonefd helper failed'), { [retry]: true });
      }
      throw spawnError(-r, 0, req, step === Step.Send ? 'sending the request to the clonefd helper failed' : 'the clonefd helper went away during the spawn');
    }
    const recordFd = spawnOut[Out.RecordFd];
    const pidfd = spawnOut[Out.Pidfd];
    const execErr = spawnOut[Out.ExecErr];
    const failed = execErr !== 0 ? execErr : spawnOut[Out.Err];
    if (failed !== 0) {
      binding.closeFd(recordFd);
      // A child was created if the helper sent its pidfd: it exits at once
      // and the helper reaps it. Wait for that, so that nothing is left
      // once spawn() throws.
      if (pidfd >= 0) {
        binding.closeFd(pidfd);
        this.#awaitExit(id, timeout);
      }
      throw spawnError(failed, execErr !== 0 ? spawnOut[Out.ExecStage] : spawnOut[Out.Stage], req);
    }
    const child = new HelperChild(this, id, spawnOut[Out.Pid], pidfd, recordFd, flags, new ExitDelivery(sink));
    this.children.set(id, child);
    this.setRef(child, true);
    if (!this.#watchdog) {
      this.#watchdog = setInterval(() => this.#check(), timeout);
      this.#watchdog.unref();
    }
    return child;
  }

  /**
   * A helper reaps a child as soon as it exits. A child that has been
   * exited (its pidfd readable) for a whole period without its EXIT means
   * the helper stopped working (SIGSTOP, wedged): it is abandoned and its
   * children's records recovered here, so `exited` settles anyway.
   */
  #check(): void {
    // EXITs still queued on the event socket: the helper did answer, this
    // loop has not read them yet (a busy event loop, a burst of exits).
    // Judged at a later check, once the backlog is read.
    const queued = new Uint8Array(1);
    binding.pollReadable(Int32Array.of(this.efd), queued);
    if (queued[0]) {
      this.#seenExited.clear();
      return;
    }
    const pending = [...this.children.values()].filter((c) => c.exitFd() >= 0);
    const fds = Int32Array.from(pending, (c) => c.exitFd());
    const readable = new Uint8Array(fds.length);
    binding.pollReadable(fds, readable);
    const now = new Set<number>();
    let stuck = false;
    pending.forEach((c, i) => {
      if (!readable[i]) return;
      now.add(c.id);
      if (this.#seenExited.has(c.id)) stuck = true;
    });
    this.#seenExited = now;
    if (stuck) this.abandon();
  }

  setRef(child: HelperChild, on: boolean): void {
    if (child.refed === on) return;
    child.refed = on;
    this.#refs += on ? 1 : -1;
    if (!this.#closed) binding.ref(this.watch, this.#refs > 0);
  }

  /** The event socket is readable: one message handled; true while there may be more. */
  #onEvent(): boolean {
    if (this.#closed) return false;
    const m = binding.helperRecv(this.efd, 0);
    if (typeof m !== 'number') {
      if (m[Msg.Type] === MsgType.Exit) this.#dispatch(m, false);
      else dropStray(m);
      return true;
    }
    if (m === -EAGAIN) return false;
    if (m === -EPROTO) return true; // dropped
    this.lost(); // EOF or a socket error: the helper is gone
    return false;
  }

  /**
   * Blocks until `child`'s EXIT arrives (read() has its 24 bytes already;
   * the helper sends EXIT right after writing them). If the socket fails
   * or the helper does not answer in time, the 24 bytes settle the child.
   */
  awaitExit(child: HelperChild, seed: ExitRecord | null): void {
    if (!this.children.has(child.id) || this.takeQueued(child)) return;
    const timeout = helperTimeoutMs();
    const reply = this.#closed ? 0 : this.#awaitExit(child.id, timeout);
    if (typeof reply !== 'number') this.#dispatch(reply, true);
    if (seed && this.children.has(child.id)) {
      // The 24 bytes are all there is: the record without rusage.
      this.forget(child);
      child.deliver(seed, true);
    }
  }

  /**
   * Blocks reading the event socket until the EXIT of request `id`
   * (returned), queueing the others for the loop; 0 or -errno when the
   * socket fails (the helper is gone) or the helper did not answer in
   * time (abandoned).
   */
  #awaitExit(id: number, timeout: number): Reply | number {
    for (;;) {
      const m = binding.helperRecv(this.efd, timeout);
      if (typeof m !== 'number') {
        if (m[Msg.Type] !== MsgType.Exit) {
          dropStray(m);
          continue;
        }
        if (m[Msg.Id] === id) return m;
        this.#queued.set(m[Msg.Id], m);
        this.#scheduleQueued();
        continue;
      }
      if (m === -EPROTO) continue;
      if (m === -ETIMEDOUT) this.abandon();
      else this.lost();
      return m;
    }
  }

  /** Queued EXITs are delivered from the loop (a macrotask), never in the tick of the read() that found them. */
  #scheduleQueued(): void {
    if (this.#queueScheduled) return;
    this.#queueScheduled = true;
    setImmediate(() => {
      this.#queueScheduled = false;
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

  /** The helper did not answer in time: give it up (a new one serves the next spawn), recover its children. */
  abandon(): void {
    binding.helperAbandon(this.generation);
    this.lost();
  }

  /** The helper died (or was abandoned): every outstanding record is recovered here (docs/ARCHITECTURE.md). */
  lost(): void {
    if (this.#closed) return;
    this.close();
    if (helper.current === this) helper.current = null;
    for (const child of [...this.children.values()]) child.recover();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#watchdog) clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    binding.unwatch(this.watch); // closes efd
    binding.closeFd(this.fd);
  }
}

/** This environment's view of the helper. */
const helper: { current: Connection | null } = { current: null };

/** Why no helper could be started: its own code when none can be executed, else the resource that ran out. */
function helperStartError(errno: number, stage: number): Error {
  const name = errnoName(errno) ?? `E${errno}`;
  if (stage === Stage.Exec && (errno === ENOENT || errno === EACCES || errno === EPERM || errno === ENOEXEC)) {
    const err = codedError(Error, 'ERR_CLONEFD_HELPER_UNAVAILABLE',
      `no clonefd helper can be executed (${name}): the embedded copy could not run from a memfd (vm.memfd_noexec, or a policy forbids it) ` +
        `and ${helperFile} is missing or not executable; use { engine: 'direct' }`);
    return Object.assign(err, { errno: -errno, syscall: 'spawn clonefd-helper' });
  }
  const what = stage === Stage.Clone ? 'its clone failed' : stage === Stage.None ? 'its memfd or socket could not be made' : 'it failed before its exec';
  return new SystemError(errno, 'spawn clonefd-helper', { detail: `the clonefd helper could not be started: ${what}` });
}

function connection(): Connection {
  const gen = binding.helperEnsure(helperFile, ensureOut);
  if (gen < 0) throw helperStartError(-gen, ensureOut[1]);
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
  /** Inside readContract: a recovery delivers synchronously (events deferred). */
  #inRead = false;

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

  openUserFd(): number {
    // Once the child is reaped the record lives in memory: a spawn() child
    // whose fd is first asked for then gets -1 (its read() still works).
    if (this.#handedOver || this.#recordFd < 0 || this.#settled) return -1;
    this.#handedOver = true;
    return this.#recordFd;
  }

  openUserPidfd(): number {
    if (this.#pidfd < 0) return -1;
    const pidfd = binding.dupUserFd(this.#pidfd, (this.flags & O_CLOEXEC) !== 0, (this.flags & O_NONBLOCK) !== 0);
    if (pidfd < 0) throw new SystemError(-pidfd, 'dup');
    return pidfd;
  }

  userFdsClosed(): void {
    if (this.#handedOver) this.#recordFd = -1;
  }

  kill(signal: number): number {
    if (this.#pidfd < 0) return -ESRCH;
    return binding.killPidfd(this.#pidfd, signal);
  }

  /** The private pidfd while the helper still owes this child's EXIT, else -1. */
  exitFd(): number {
    return this.#settled || this.#recovering ? -1 : this.#pidfd;
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
    const r = binding.readRecord(this.#recordFd, block || this.#settled, this.#pidfd, this.pid, helperTimeoutMs());
    if (r === -ETIMEDOUT) {
      // The child has exited but its helper does not write the record: it
      // is abandoned, and this child's record recovered from its pidfd.
      this.#inRead = true;
      try {
        this.conn.abandon();
      } finally {
        this.#inRead = false;
      }
      if (!this.#settled) return -EAGAIN;
      this.#consumed = true;
      return this.#record ?? -ECHILD;
    }
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

  /** The helper died (or was abandoned) with this child outstanding. */
  recover(): void {
    if (this.#settled || this.#pidfd < 0) return;
    if (this.#tryRecover(this.#inRead)) return;
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
    // A helper that is alive but unreachable (its socket shut down, or
    // abandoned) still writes the 24 bytes: if nobody took the fd, they are
    // the best record there is (times known). Never wait for them here.
    if (!this.#handedOver && this.#recordFd >= 0) {
      const rec = binding.readRecord(this.#recordFd, false, -1, this.pid, 0);
      if (typeof rec !== 'number') {
        binding.closeFd(this.#recordFd);
        this.#recordFd = -1; // read() serves it from memory now
        this.#recovered = true;
        this.conn.forget(this);
        this.deliver(rec, sync);
        return true;
      }
    }
    const r = binding.recoverExit(this.#pidfd, this.pid);
    if (typeof r === 'number') return false; // -EAGAIN: still running
    this.#recovered = true;
    this.conn.forget(this);
    this.deliver(r, sync);
    return true;
  }
}

/** Marks a spawn error after which trying again is safe (nothing was sent). */
const retry = Symbol('clonefd.retry');

export const spawnHelper: SpawnFn = (req, stdioFds, flags, sink, cgroupFd) => {
  probePidfd();
  try {
    return connection().spawn(req, stdioFds, flags, sink, cgroupFd);
  } catch (err) {
    if (!(err as { [retry]?: boolean })[retry]) throw err;
    return connection().spawn(req, stdioFds, flags, sink, cgroupFd);
  }
};

/** For tests and diagnostics: the helper's pid (0 when none runs). */
export function helperPid(): number {
  return binding.helperPid();
}
