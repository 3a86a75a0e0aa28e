// The handle every spawn returns: the seed's contract (fd, read) and the
// everyday process API (streams, exited, kill, ref) over one engine child.
import { EventEmitter } from 'node:events';
import { closeSync, fstatSync } from 'node:fs';
import net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { binding } from './binding';
import { O_CLOEXEC, O_NONBLOCK } from './constants';
import { lostErrno, type EngineChild, type ExitRecord, type SpawnFn } from './engine';
import { invalidArgType, SystemError } from './errors';
import { ClonefdInfo } from './info';
import { spawnFlags, type SpawnRequest, type StdioPlan } from './options';
import { SpawnFlag } from './abi';
import { Readiness, type NotifyMessage, type ReadyInfo } from './readiness';
import { SIGKILL, toSignalNumber, type SignalName } from './signals';
import { EAGAIN, EBADF, ECHILD, EINVAL, ESRCH } from './errno';
import { ChildCgroup, createChildCgroup, removeChildCgroup, type TreeInfo } from './cgroup';
import { killTreeByProcess, trackTree, untrackTree } from './tree';
import { codedError } from './errors';


/**
 * @internal The drop-in's ChildProcess sets its exit state here, before
 * stdin is destroyed and 'exit' is emitted (Node's order of state changes).
 */
export const onSettled = Symbol('clonefd.onSettled');

/**
 * @internal The drop-in takes the parent's end of an 'ipc' slot here (once;
 * -1 when there is none) to make it the IPC channel.
 */
export const takeChannelFd = Symbol('clonefd.takeChannelFd');

/** @internal The drop-in's IPC channel still has messages to deliver: the exit waits for them as for pipes (ExitSink). */
export const channelInUse = Symbol('clonefd.channelInUse');

/** Marks a stream handed to a child as its stdio: the child reads it now, not us (Node's kIsUsedAsStdio). */
const usedAsStdio = Symbol('clonefd.usedAsStdio');

export interface SubprocessEvents {
  exit: [info: ClonefdInfo];
  error: [err: Error];
  /** sd_notify readiness: each STATUS= the child sends. */
  status: [status: string];
  /** sd_notify readiness: each datagram with a valid KEY=VALUE line. */
  notify: [message: NotifyMessage];
}

/** User-owned fds not closed by the user: closed on GC, with a warning. */
interface FdLease {
  fds: number[];
  /** Each fd's file as "dev:ino" when handed out (see the finalizer). */
  ids: string[];
  pid: number;
}

function fileId(fd: number): string | null {
  try {
    const st = fstatSync(fd);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

const leaks = new FinalizationRegistry<FdLease>((lease) => {
  lease.fds.forEach((fd, i) => {
    // A user who closed the fd with fs.closeSync() let its number be
    // reused: close it only if it is still the file handed out.
    const id = fileId(fd);
    if (id === null || id !== lease.ids[i]) return;
    binding.closeFd(fd);
    process.emitWarning(`Closing clonefd file descriptor ${fd} (child ${lease.pid}) on garbage collection; call close() when done with it`, 'Warning');
  });
});

interface CreateParams {
  req: SpawnRequest;
  engine: SpawnFn;
  /** clonefd(): open the user's fds now with these flags; spawn(): undefined (lazy). */
  flags: number | undefined;
}

/**
 * A child process created by `spawn()` or `clonefd()`.
 *
 * `fd` is the seed's clonefd: it polls readable (POLLIN) once the exit
 * record can be read. `read()` consumes that record once; later reads
 * return `null` (EOF). `exited` and `'exit'` deliver the record too, without
 * consuming it.
 */
export class Subprocess extends EventEmitter<SubprocessEvents> {
  /** The child's process id. */
  readonly pid: number;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Every stdio slot: a stream for 'pipe', else `null`. */
  readonly stdio: (net.Socket | null)[];
  /** Settles once the child has exited and been reaped: the record (rejects only if the status was lost). */
  readonly exited: Promise<ClonefdInfo>;
  /** The exit code once the child exited normally, else `null`. */
  exitCode: number | null = null;
  /** The name of the signal that killed the child, else `null`. */
  signalCode: SignalName | null = null;
  /** The exit record once known (not consumed by reading it here). */
  info: ClonefdInfo | null = null;
  /** With the `readiness` option: resolves when the child says it is ready, rejects (ERR_CLONEFD_NOT_READY) if it exits first; else `null`. */
  readonly ready: Promise<ReadyInfo> | null;
  /** sd_notify readiness: the last MAINPID= the child sent (its claim, unverified; kill() still signals `pid`), else `null`. */
  mainPid: number | null = null;
  #readiness: Readiness | null = null;

  #child: EngineChild;
  /** The child's own cgroup (options.cgroup), until the tree is gone. */
  #tree: ChildCgroup | null = null;
  /** The child's process group when it leads one (detached, or killMode 'tree'), else 0. */
  #pgid = 0;
  #killMode: 'process' | 'tree';
  /** What is kept of the request: a live child must not hold its argv, env and PATH candidates. */
  #killSignal: number;
  #abortSignal: AbortSignal | undefined;
  #flags: number;
  #lease: FdLease | null = null;
  /** The user's fds once asked for (undefined: not yet); -1 when none could be had. */
  #userFd: number | undefined;
  #userPidfd: number | undefined;
  #closed = false;
  #settled = false;
  #timer: NodeJS.Timeout | undefined;
  #onAbort: (() => void) | undefined;
  #resolve!: (info: ClonefdInfo) => void;
  #reject!: (err: Error) => void;
  /** @internal See onSettled. */
  [onSettled]?: (info: ClonefdInfo) => void;
  /** @internal See channelInUse. */
  [channelInUse]?: () => boolean;
  #channelFd = -1;

  /** @internal Use `spawn()` or `clonefd()`. */
  constructor(params: CreateParams) {
    super();
    const { req, engine } = params;
    this.#killSignal = req.killSignal;
    this.#abortSignal = req.signal;
    this.#killMode = req.killMode;
    this.#flags = params.flags ?? O_CLOEXEC | O_NONBLOCK;
    this.exited = new Promise<ClonefdInfo>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // A rejection nobody awaits must not crash the process: `exited` is
    // an offer, not an obligation.
    this.exited.catch(() => {});

    const { fds, parentEnds } = openStdio(req);
    let child: EngineChild;
    let group: { dir: string; fd: number } | null = null;
    let tree: ChildCgroup | null = null;
    try {
      if (req.cgroup !== null) {
        group = createChildCgroup(req.cgroup, req.limits);
        tree = new ChildCgroup(group.dir);
      }
      this.#readiness = Readiness.open(req, fds, this);
      child = engine(req, fds, this.#flags, {
        onExit: (record, sync) => this.#settle(record, sync),
        pipesInUse: () => this.#pipesInUse(),
      }, group ? group.fd : -1);
    } catch (err) {
      this.#readiness?.close();
      for (const end of parentEnds) if (end >= 0) binding.closeFd(end);
      if (tree) tree.abandon();
      else if (group) removeChildCgroup(group.dir);
      throw err;
    } finally {
      closeChildEnds(req, fds);
      if (group) closeSync(group.fd);
      this.#readiness?.spawned();
    }
    this.#tree = tree;
    if (tree) trackTree(tree, req.killWithParent && req.killMode === 'tree');
    if (req.detached || (spawnFlags(req) & SpawnFlag.Setpgid) !== 0) this.#pgid = child.pid;
    this.ready = this.#readiness?.promise ?? null;
    this.#child = child;
    this.pid = child.pid;
    const streams: (net.Socket | null)[] = [];
    try {
      for (const [i, plan] of req.stdio.entries()) {
        // Node's shape: only `readable` is chosen (stdin not, the others
        // yes); the sockets stay writable, as child_process's do.
        streams.push(plan.type === 'pipe' ? adoptSocket(parentEnds[i], i > 0) : null);
        if (plan.type === 'ipc') this.#channelFd = parentEnds[i];
      }
      this.stdio = streams;
      if (params.flags !== undefined) {
        this.#takeFd();
        this.#takePidfd();
      }
      if (req.signal) {
        const signal = req.signal;
        const killSignal = req.killSignal;
        this.#onAbort = () => this.#killForOption(killSignal);
        signal.addEventListener('abort', this.#onAbort, { once: true });
      }
    } catch (err) {
      // The child exists but its handle cannot be completed: it must not
      // outlive this failed spawn. The engine still reaps it.
      child.kill(SIGKILL);
      this.#readiness?.close();
      this.#channelFd = -1;
      for (const [i, end] of parentEnds.entries()) {
        const stream = streams[i];
        if (stream) stream.destroy();
        else if (end >= 0) binding.closeFd(end);
      }
      throw err;
    }
    this.stdin = this.stdio[0] ?? null;
    this.stdout = this.stdio[1] ?? null;
    this.stderr = this.stdio[2] ?? null;
    detachStdioStreams(req.stdio);
    if (req.timeout > 0) {
      const killSignal = req.killSignal;
      this.#timer = setTimeout(() => this.#killForOption(killSignal), req.timeout);
      this.#timer.unref();
    }
  }

  /**
   * The seed's clonefd: readable once the exit record can be read (the
   * record pipe with the helper engine, the pidfd with the direct engine).
   * Owned by you once you have read this property: release it with
   * `close()`. For a `spawn()` child it is handed over on first access; -1
   * if first asked after the child was reaped (the record is still
   * available from `read()`).
   */
  get fd(): number {
    if (this.#userFd === undefined && !this.#closed) this.#takeFd();
    return this.#userFd ?? -1;
  }

  /** The kernel's process fd for the child (see `fd` for ownership). */
  get pidfd(): number {
    if (this.#userPidfd === undefined && !this.#closed) this.#takePidfd();
    return this.#userPidfd ?? -1;
  }

  /**
   * The contract's read: the first successful read returns the record,
   * every later one `null` (EOF). Before the child exits it throws
   * `EAGAIN` on a non-blocking handle (every `spawn()` child) and blocks
   * the calling thread on a blocking one (`clonefd()` without O_NONBLOCK).
   * With the helper engine a plain read(2) of `fd` consumes the record
   * too; this then returns `null`.
   */
  read(): ClonefdInfo | null {
    const raw = this.#child.readContract((this.#flags & O_NONBLOCK) === 0);
    if (raw === null) return null;
    // Read while its delivery waits for the pipes (ExitDelivery): settle now.
    if (typeof raw !== 'number' && !this.#settled) this.#settle(raw, true);
    if (raw === -EAGAIN) throw new SystemError(EAGAIN, 'read', { detail: `child ${this.pid} is still running` });
    if (typeof raw === 'number' || this.info === null) {
      // The status was lost (see `exited`): report it as the read's error.
      const errno = typeof raw === 'number' ? -raw : lostErrno(raw) || ECHILD;
      throw new SystemError(errno, 'read', { detail: `the status of child ${this.pid} was lost` });
    }
    return this.info;
  }

  /** Resolves at exit with the record if no read consumed it yet, else `null`. Never blocks. */
  readAsync(): Promise<ClonefdInfo | null> {
    return this.exited.then(() => this.read());
  }

  /**
   * Sends a signal (default 'SIGTERM') through the pidfd. Returns `false`
   * once the child has been reaped: a recycled pid is never signalled.
   */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    const num = toSignalNumber(signal);
    if (this.#settled) return false;
    const r = this.#child.kill(num);
    if (r === 0) return true;
    if (r === -ESRCH) return false;
    throw new SystemError(-r, 'pidfd_send_signal', { detail: `child ${this.pid}` });
  }

  /** The directory of the child's own cgroup (`cgroup` option), else `null`. */
  get cgroup(): string | null {
    return this.#tree?.dir ?? null;
  }

  /**
   * Signals the child's whole tree (default SIGKILL) and resolves once the
   * signal was sent to every member. With a cgroup: SIGKILL through
   * `cgroup.kill`, which reaches every process in the group, `setsid()`
   * daemons and double-forked grandchildren included, and any forked
   * meanwhile; another signal goes to each member through a pidfd, with the
   * tree frozen, then (thawed) waits until each has taken it and looks again,
   * until a round finds no member it has not signalled. Without a cgroup it is
   * best-effort: the child, its process group when it leads one (`detached`,
   * or `killMode: 'tree'`), and its descendants found in /proc now; a
   * descendant that left the group and was orphaned is out of reach.
   */
  async killTree(signal: NodeJS.Signals | number = 'SIGKILL'): Promise<void> {
    const num = toSignalNumber(signal);
    if (this.#tree) {
      // Each member once: the child is one (unless it left the group). A
      // second SIGKILL after cgroup.kill changes nothing.
      const sent = await this.#tree.killStill(num);
      if (sent === null || !sent.has(this.pid)) this.#killQuietly(num);
      return;
    }
    killTreeByProcess(this.#settled ? 0 : this.pid, this.#pgid, num, () => (this.#settled ? -ESRCH : this.#child.kill(num)));
  }

  /**
   * Settles when the last process of the child's tree is gone (its cgroup's
   * `cgroup.events` says `populated 0`) and the child's own exit has been
   * delivered, with the tree's CPU time and peaks (TreeInfo); the group is
   * removed by then. Needs the `cgroup` option (else it rejects with
   * ERR_CLONEFD_CGROUP_REQUIRED). Asking for it keeps the event loop alive
   * until the tree is gone, as a running child does; a tree nobody asks
   * about does not.
   */
  get treeExited(): Promise<TreeInfo> {
    if (this.#tree === null) return rejectedQuietly(cgroupRequired('treeExited'));
    this.#tree.ref(true);
    return this.#tree.exited;
  }

  /** Pauses every process of the tree (`cgroup.freeze`); resolves once `cgroup.events` says `frozen 1`. Needs `cgroup`. */
  freeze(): Promise<void> {
    if (this.#tree === null) return rejectedQuietly(cgroupRequired('freeze()'));
    return this.#tree.userSetFrozen(true);
  }

  /** Resumes a frozen tree; resolves once `cgroup.events` says `frozen 0`. Needs `cgroup`. */
  thaw(): Promise<void> {
    if (this.#tree === null) return rejectedQuietly(cgroupRequired('thaw()'));
    return this.#tree.userSetFrozen(false);
  }

  /** A running child keeps the event loop alive (the default). */
  ref(): this {
    if (!this.#settled) this.#child.ref(true);
    return this;
  }

  /** A running child no longer keeps the event loop alive; it is still reaped. */
  unref(): this {
    if (!this.#settled) this.#child.ref(false);
    return this;
  }

  /**
   * Releases the fds handed to you (`fd`, `pidfd`). Never kills; idempotent.
   * `exited` still settles and `kill()` keeps working until the reap.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#releaseFds();
  }

  /** Kills the child (`killSignal`, default SIGTERM), waits for its exit, then closes. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#settled) this.#killQuietly(this.#killSignal);
    try {
      await this.exited;
    } finally {
      this.close();
    }
  }

  #takeFd(): void {
    this.#userFd = this.#child.openUserFd();
    this.#own(this.#userFd);
  }

  #takePidfd(): void {
    this.#userPidfd = this.#child.openUserPidfd();
    this.#own(this.#userPidfd);
  }

  /** fd is the user's now: released by close(), or by the GC finalizer. */
  #own(fd: number): void {
    if (fd < 0) return;
    if (this.#lease === null) {
      this.#lease = { fds: [], ids: [], pid: this.pid };
      leaks.register(this, this.#lease, this.#lease);
    }
    if (!this.#lease.fds.includes(fd)) {
      this.#lease.fds.push(fd);
      this.#lease.ids.push(fileId(fd) ?? '');
    }
  }

  #releaseFds(): void {
    const lease = this.#lease;
    if (lease === null) return;
    leaks.unregister(lease);
    for (const fd of lease.fds) binding.closeFd(fd);
    lease.fds = [];
    lease.ids = [];
    if (this.#userFd !== undefined) this.#userFd = -1;
    if (this.#userPidfd !== undefined) this.#userPidfd = -1;
    this.#child.userFdsClosed();
  }

  /** @internal See takeChannelFd. */
  [takeChannelFd](): number {
    const fd = this.#channelFd;
    this.#channelFd = -1;
    return fd;
  }

  /** Output still to read here, or input still being written (ExitSink). */
  #pipesInUse(): boolean {
    if (this[channelInUse]?.()) return true;
    return this.stdio.some((s, i) => {
      if (s === null) return false;
      if (i === 0) return !s.destroyed && s.writableLength > 0;
      return s.readable && !s.readableEnded && !(s as { [usedAsStdio]?: boolean })[usedAsStdio];
    });
  }

  #killQuietly(signal: number): void {
    if (this.#settled) return;
    this.#child.kill(signal); // ESRCH: it exited meanwhile, nothing to do
  }

  /** `timeout` and `signal`: the child, or with killMode 'tree' its tree. */
  #killForOption(signal: number): void {
    if (this.#killMode !== 'tree') return this.#killQuietly(signal);
    // A rejection: the group went away meanwhile, nothing left to kill.
    this.killTree(signal).catch(() => {});
  }

  #stopKillOptions(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#onAbort) this.#abortSignal?.removeEventListener('abort', this.#onAbort);
  }

  #settle(record: ExitRecord, sync: boolean): void {
    if (this.#settled) return;
    this.#settled = true;
    // killMode 'tree' with a cgroup: timeout and signal go on applying to
    // the tree while it lives on without the child.
    const untilTree = this.#tree !== null && this.#killMode === 'tree';
    if (!untilTree) this.#stopKillOptions();
    if (this.#tree) {
      // The record is in; the tree may live on (treeExited waits for it).
      const tree = this.#tree;
      const done = () => {
        untrackTree(tree);
        if (untilTree) this.#stopKillOptions();
      };
      tree.exited.then(done, done);
      tree.childDone();
    }
    // A spawn() child whose fds nobody took: the engine may let go of
    // what only served the contract (the record stays readable here).
    if (this.#userFd === undefined) this.#child.release();
    const lost = lostErrno(record);
    if (lost !== 0) {
      this.stdin?.destroy();
      const err = new SystemError(lost, 'waitid', {
        detail: lost === ECHILD ? `child ${this.pid} was reaped by someone else and this kernel kept no status (Linux < 6.15)` : `child ${this.pid}`,
      });
      this.#readiness?.exit(null, err);
      this.#reject(err);
      if (this.listenerCount('error') > 0) {
        if (sync) process.nextTick(() => this.emit('error', err));
        else this.emit('error', err);
      }
      return;
    }
    // Node's order: the exit state first, then stdin goes (nobody can read
    // what is written to a dead child), then 'exit', then the flush. A
    // library that sees stdin close finds the exit code already set.
    const info = ClonefdInfo.fromRecord(record);
    this.info = info;
    this.exitCode = info.exitCode;
    this.signalCode = info.signal;
    this[onSettled]?.(info);
    this.stdin?.destroy();
    if (this.#readiness && this.#tree) {
      // With a cgroup, "exited before it was ready" means the whole tree.
      // Until then the pending wait keeps the loop alive, as the child did.
      const readiness = this.#readiness;
      const tree = this.#tree;
      if (readiness.childExited() && this.ready) {
        tree.hold();
        const release = () => tree.release();
        this.ready.then(release, release);
      }
      const end = () => readiness.exit(info, undefined, true);
      tree.exited.then(end, end);
    } else {
      this.#readiness?.exit(info);
    }
    this.#resolve(info);
    if (sync) process.nextTick(() => this.emit('exit', info));
    else this.emit('exit', info);
    if (this.stdio.some((s) => s !== null)) process.nextTick(flushStdio, this.stdio);
  }
}

function cgroupRequired(what: string): Error {
  return codedError(Error, 'ERR_CLONEFD_CGROUP_REQUIRED', `${what} needs a child spawned with the cgroup option (cgroup: true)`);
}

function rejectedQuietly<T>(err: Error): Promise<T> {
  const p = Promise.reject<T>(err);
  p.catch(() => {});
  return p;
}

/** A parent end as a Node stream: from now on its libuv handle owns the fd. */
export function adoptSocket(fd: number, readable: boolean): net.Socket {
  const socket = new net.Socket({ fd, readable });
  binding.releaseFd(fd);
  return socket;
}

/**
 * After the exit, every stdio stream still readable is resumed, as Node
 * does (flushStdio in lib/internal/child_process.js): output nobody reads
 * is drained and discarded, so the pipes reach EOF and close instead of
 * holding their fds forever, and a stream paused after its 'data' listener
 * was added (unpipe(), pause()) still ends. It runs a tick after 'exit', a
 * last chance to start reading. Streams handed to another child as its
 * stdio are that child's to read and are left alone.
 */
export function flushStdio(stdio: readonly (Readable | Writable | null)[]): void {
  for (const s of stdio) {
    const stream = s as (Readable & { [usedAsStdio]?: boolean }) | null; // our stdio streams are net.Sockets
    if (stream && stream.readable && !stream[usedAsStdio]) stream.resume();
  }
}

/**
 * Streams given as a child's stdio (a socket, a pipe, another child's
 * stdout): the child reads them now, so we stop, as Node does; otherwise
 * this process and the child would race for the same data.
 */
export function detachStdioStreams(plans: readonly StdioPlan[]): void {
  for (const plan of plans) {
    if (plan.type !== 'fd' || plan.stream === undefined) continue;
    // Like Node, only libuv streams are handed over; a stream with an fd
    // of its own (process.stdin, an fs stream) is shared as that fd and
    // this process goes on reading it.
    if (typeof (plan.stream as { fd?: unknown }).fd === 'number') continue;
    const stream = plan.stream as Readable & { _handle?: { reading?: boolean; readStop?: () => number } | null; [usedAsStdio]?: boolean };
    const handle = stream._handle;
    if (!handle || typeof handle.readStop !== 'function') continue; // not a libuv stream (an fs stream, a plain fd holder)
    handle.reading = false;
    handle.readStop();
    if (typeof stream.pause === 'function') stream.pause();
    const state = (stream as unknown as { _readableState?: { flowing: boolean | null; reading: boolean } })._readableState;
    if (state) {
      state.flowing = false;
      state.reading = false;
    }
    stream[usedAsStdio] = true;
  }
}

function openStdio(req: SpawnRequest): { fds: Int32Array; parentEnds: number[] } {
  // A closed fd number must fail now: any fd the spawn opens next (a pipe,
  // /dev/null in the child) could take that number and be passed instead.
  req.stdio.forEach((plan, i) => {
    if (plan.type === 'fd' && !binding.fdValid(plan.fd)) {
      throw new SystemError(EBADF, `spawn ${req.file}`, { path: req.file, spawnargs: req.args, detail: `stdio[${i}] is fd ${plan.fd}, which is not open` });
    }
  });
  const fds = new Int32Array(req.stdio.length).fill(-1);
  const parentEnds: number[] = new Array(req.stdio.length).fill(-1);
  try {
    req.stdio.forEach((plan, i) => {
      if (plan.type === 'pipe' || plan.type === 'ipc') {
        const pair = binding.socketPair();
        if (typeof pair === 'number') throw new SystemError(-pair, 'socketpair');
        parentEnds[i] = pair[0];
        fds[i] = pair[1];
      } else if (plan.type === 'fd') fds[i] = plan.fd;
      else fds[i] = -1;
    });
  } catch (err) {
    for (const end of parentEnds) if (end >= 0) binding.closeFd(end);
    closeChildEnds(req, fds);
    throw err;
  }
  return { fds, parentEnds };
}

function closeChildEnds(req: SpawnRequest, fds: Int32Array): void {
  req.stdio.forEach((plan, i) => {
    if ((plan.type === 'pipe' || plan.type === 'ipc') && fds[i] >= 0) binding.closeFd(fds[i]);
  });
}

export function validateFlags(flags: unknown): number {
  if (flags === undefined || flags === null) return O_CLOEXEC;
  if (typeof flags !== 'number' || !Number.isInteger(flags)) throw invalidArgType('options.flags', 'of type number (an integer)', flags);
  // Range first: & works on 32 bits and would let 2**32 + x through.
  if (flags < 0 || flags > 0x7fffffff || (flags & ~(O_CLOEXEC | O_NONBLOCK)) !== 0) {
    throw new SystemError(EINVAL, 'clonefd', { detail: `flags 0o${flags.toString(8)}: only O_CLOEXEC | O_NONBLOCK are allowed` });
  }
  return flags;
}
