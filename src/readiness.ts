// Readiness notification (the `readiness` option): a way for the child to
// say "ready", and `Subprocess.ready`, which resolves when it does.
//
// - `{ fd: N }`, s6's notification-fd: the child gets a pipe's write end as
//   fd N and writes a newline when ready. The parent's read end is a watch
//   (channel.cc), not a stdio stream: `subprocess.stdio[N]` is `null`.
// - `'sd_notify'`, systemd's protocol (sd_notify(3)): an AF_UNIX datagram
//   socket bound in a fresh private directory (0700), NOTIFY_SOCKET in the
//   child's environment, SO_PASSCRED for each sender's pid. READY=1
//   resolves `ready`, STATUS= emits 'status', MAINPID= sets `mainPid`,
//   every datagram emits 'notify'.
//
// Both end at the child's exit: what it sent before is read first, then a
// child that was never ready rejects `ready` (ERR_CLONEFD_NOT_READY), and
// the fds, the socket file and its directory are gone.
import { AsyncResource } from 'node:async_hooks';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { MAX_STDIO, MAX_STDIO_HELPER } from './abi';
import { binding, type NativeWatch } from './binding';
import { EAGAIN, ECANCELED, EINVAL } from './errno';
import { codedError, invalidArgType, invalidArgValue, outOfRange, SystemError } from './errors';
import type { ClonefdInfo } from './info';
import type { Engine, SpawnRequest, StdioPlan } from './options';
import type { Subprocess } from './subprocess';

/** The `readiness` option: s6's notification fd, or systemd's sd_notify socket. */
export type ReadinessOption = { fd: number } | 'sd_notify';

/** @internal The validated option, in the SpawnRequest. */
export type ReadinessPlan = { kind: 'fd'; fd: number } | { kind: 'sd_notify' };

/** What `ready` resolves with. */
export interface ReadyInfo {
  /** Milliseconds from the spawn to the notification (performance.now()). */
  readyMs: number;
  /** sd_notify: the last valid MAINPID= received up to READY=1 (what the child claims; see `Subprocess.mainPid`). */
  mainPid?: number;
  /** sd_notify: the last STATUS= received up to READY=1. */
  status?: string;
  /** sd_notify: the pid that sent READY=1 (SCM_CREDENTIALS; 0 if unknown). */
  senderPid?: number;
}

/** One sd_notify datagram ('notify' event). */
export interface NotifyMessage {
  /** Its valid `KEY=VALUE` lines (null prototype; a key repeated: the last value). */
  fields: Record<string, string>;
  /** The sender's pid (SCM_CREDENTIALS, as this pid namespace sees it; 0 if unknown). */
  pid: number;
}

/** The error `ready` rejects with when the child exits before it is ready. */
export interface NotReadyError extends Error {
  code: 'ERR_CLONEFD_NOT_READY';
  /** How the child ended (`null` only when its status was lost; then `cause` says why). */
  info: ClonefdInfo | null;
}

const INT32_MAX = 2 ** 31 - 1;
/** sd_notify datagrams longer than this are truncated by recvmsg and ignored. */
export const NOTIFY_DATAGRAM_MAX = 64 * 1024;
/** Reads per wake-up of the watch: a flood cannot hold the loop (level-triggered: the rest comes next turn). */
const READS_PER_EVENT = 16;
const KEY = /^[A-Za-z0-9_]+$/;
const PID = /^[1-9][0-9]{0,9}$/;

/**
 * Validates `options.readiness` (after `stdio`): `{ fd: N }` with N an
 * integer from 3 up to the engine's stdio limit, at a slot `stdio` leaves
 * unused or 'ignore'; or 'sd_notify'. The fd's slot is reserved in `stdio`
 * as 'ignore' (padding it with 'ignore' up to N); the spawn puts the pipe
 * there.
 */
export function normalizeReadiness(value: unknown, stdio: StdioPlan[], engine: Engine): ReadinessPlan | null {
  if (value === undefined || value === null) return null;
  if (value === 'sd_notify') return { kind: 'sd_notify' };
  if (typeof value !== 'object') throw invalidArgValue('options.readiness', value, "must be { fd: N } or 'sd_notify'");
  const keys = Object.keys(value);
  if (keys.length !== 1 || keys[0] !== 'fd') throw invalidArgValue('options.readiness', value, "must be { fd: N } or 'sd_notify'");
  const fd = (value as { fd: unknown }).fd;
  if (typeof fd !== 'number' || !Number.isInteger(fd)) throw invalidArgType('options.readiness.fd', 'of type number (an integer)', fd);
  const max = (engine === 'helper' ? MAX_STDIO_HELPER : MAX_STDIO) - 1;
  if (fd < 3) throw invalidArgValue('options.readiness.fd', fd, 'must be 3 or more (fds 0-2 are stdin, stdout and stderr)');
  if (fd > max) throw outOfRange('options.readiness.fd', `<= ${max}${engine === 'helper' ? ' with the helper engine' : ''}`, fd);
  if (fd < stdio.length && stdio[fd].type !== 'ignore') {
    throw invalidArgValue('options.readiness', value, `names fd ${fd}, which options.stdio[${fd}] already gives the child`);
  }
  while (stdio.length <= fd) stdio.push({ type: 'ignore' });
  return { kind: 'fd', fd };
}

// sd_notify socket paths of this environment not yet removed: removed at
// process.exit() too (a natural end or a worker's teardown removes them
// natively, native/addon/notify.cc).
const livePaths = new Set<string>();
function removeLivePaths(): void {
  for (const p of livePaths) binding.notifyUnlink(p);
  livePaths.clear();
}

function describeExit(info: ClonefdInfo | null): string {
  if (info === null) return 'ended (its status was lost)';
  if (info.signal !== null) return `was killed by ${info.signal}${info.coreDumped ? ' (core dumped)' : ''}`;
  return `exited with code ${info.exitCode}`;
}

/**
 * One child's readiness channel, from the spawn to the exit. Opened before
 * the spawn (it edits the request: the fd's slot, or NOTIFY_SOCKET in the
 * environment); `close()` releases everything and may be called at any
 * point, more than once.
 */
export class Readiness {
  readonly promise: Promise<ReadyInfo>;
  #resolve!: (info: ReadyInfo) => void;
  #reject!: (err: Error) => void;
  #plan: ReadinessPlan;
  #sub: Subprocess;
  #start = performance.now();
  #resource = new AsyncResource('CLONEFD_READINESS');
  /** The child's end of the s6 pipe until the spawn is over. */
  #childEnd = -1;
  #fd = -1;
  #watch: NativeWatch | null = null;
  #path: string | null = null;
  #done = false;
  #closed = false;
  #status: string | undefined;
  #mainPid: number | undefined;
  readonly #buf: Buffer;
  readonly #out = new Int32Array(3);

  private constructor(plan: ReadinessPlan, sub: Subprocess) {
    this.#plan = plan;
    this.#sub = sub;
    this.#buf = Buffer.allocUnsafe(plan.kind === 'fd' ? 512 : NOTIFY_DATAGRAM_MAX);
    this.promise = new Promise<ReadyInfo>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // An offer, as `exited`: nobody has to await it.
    this.promise.catch(() => {});
  }

  /**
   * The channel for req (null without the option): the pipe's write end
   * goes into stdioFds at its slot; sd_notify's NOTIFY_SOCKET into
   * req.envp (the environment made explicit when it was process.env).
   * Throws a SystemError with nothing left open.
   */
  static open(req: SpawnRequest, stdioFds: Int32Array, sub: Subprocess): Readiness | null {
    const plan = req.readiness;
    if (!plan) return null;
    const r = new Readiness(plan, sub);
    try {
      if (plan.kind === 'fd') r.#openPipe(stdioFds, plan.fd);
      else r.#openSocket(req);
    } catch (err) {
      r.close();
      throw err;
    }
    return r;
  }

  #openPipe(stdioFds: Int32Array, fd: number): void {
    const pair = binding.pipe();
    if (typeof pair === 'number') throw new SystemError(-pair, 'pipe', { detail: `the readiness fd ${fd}` });
    this.#fd = pair[0];
    this.#childEnd = pair[1];
    stdioFds[fd] = pair[1];
  }

  #openSocket(req: SpawnRequest): void {
    const dir = mkdtempSync(path.join(tmpdir(), 'clonefd-notify-')); // mode 0700
    const sockPath = path.join(dir, 'notify');
    const fd = binding.notifySocket(sockPath);
    if (typeof fd !== 'number' || fd < 0) {
      rmdirSync(dir);
      throw new SystemError(typeof fd === 'number' ? -fd : EINVAL, 'bind', { path: sockPath, detail: `the sd_notify socket ${sockPath}` });
    }
    this.#fd = fd;
    this.#path = sockPath;
    if (livePaths.size === 0) process.on('exit', removeLivePaths);
    livePaths.add(sockPath);
    const env = req.envp ?? envPairsOf(process.env);
    req.envp = [...env.filter((kv) => !kv.startsWith('NOTIFY_SOCKET=')), `NOTIFY_SOCKET=${sockPath}`];
  }

  /**
   * The spawn is over: the child has its copy of the pipe's write end,
   * ours goes. Unless the spawn failed (close() came first), the watch
   * starts; if it cannot, `ready` rejects with why (the child runs on).
   */
  spawned(): void {
    if (this.#childEnd >= 0) binding.closeFd(this.#childEnd);
    this.#childEnd = -1;
    if (this.#closed || this.#watch !== null) return;
    const fd = this.#fd;
    this.#fd = -1; // the watch's from now on, also if this fails
    const watch = binding.channelWatch(fd, () => this.#resource.runInAsyncScope(this.#onReadable, this));
    if (typeof watch !== 'object' || watch === null) {
      // -errno, or undefined: this environment is going away.
      this.#done = true;
      this.#reject(new SystemError(typeof watch === 'number' ? -watch : ECANCELED, 'uv_poll_init', { detail: 'the readiness channel' }));
      this.close();
      return;
    }
    this.#watch = watch;
    this.#fd = fd;
    // The child keeps the loop alive (or not: unref()), never its channel.
    binding.ref(watch, false);
  }

  #onReadable(): void {
    this.#drain(READS_PER_EVENT);
  }

  /** Reads up to max times (Infinity: until nothing is left). */
  #drain(max: number): void {
    for (let i = 0; i < max && this.#watch !== null; i++) {
      if (this.#plan.kind === 'fd') {
        const n = binding.notifyRead(this.#fd, this.#buf);
        if (n === -EAGAIN) return;
        if (n <= 0) {
          // EOF (or an error) without a newline: never ready (a close by
          // the child and its death look alike here; the exit rejects).
          this.#unwatch();
          return;
        }
        if (this.#buf.subarray(0, n).includes(10)) {
          // Ready. As s6-supervise does, the read end closes now: a later
          // write to fd N gets EPIPE (or SIGPIPE).
          this.#unwatch();
          this.#ready({ readyMs: performance.now() - this.#start });
          return;
        }
      } else {
        const n = binding.notifyRecv(this.#fd, this.#buf, this.#out);
        if (n === -EAGAIN) return;
        if (n < 0) {
          // Never for a bound datagram socket in practice; stop rather than spin.
          this.#unwatch();
          return;
        }
        if (this.#out[2] === 0 && n > 0) this.#datagram(this.#buf.toString('utf8', 0, n), this.#out[0]);
      }
    }
  }

  #datagram(text: string, pid: number): void {
    const fields = Object.create(null) as Record<string, string>;
    let any = false;
    for (const line of text.split('\n')) {
      const eq = line.indexOf('=');
      if (eq <= 0) continue;
      const key = line.slice(0, eq);
      const value = line.slice(eq + 1);
      if (!KEY.test(key) || value.includes('\u0000')) continue;
      fields[key] = value;
      any = true;
    }
    if (!any) return;
    if (fields.MAINPID !== undefined && PID.test(fields.MAINPID) && Number(fields.MAINPID) <= INT32_MAX) {
      this.#mainPid = Number(fields.MAINPID);
      this.#sub.mainPid = this.#mainPid;
    }
    if (fields.STATUS !== undefined) this.#status = fields.STATUS;
    if (fields.READY === '1') {
      const info: ReadyInfo = { readyMs: performance.now() - this.#start, senderPid: pid };
      if (this.#mainPid !== undefined) info.mainPid = this.#mainPid;
      if (this.#status !== undefined) info.status = this.#status;
      this.#ready(info);
    }
    // One listener that throws does not stop the others, nor the exit's
    // delivery when this runs from it: reported as uncaught, here.
    if (fields.STATUS !== undefined) emitSafely(this.#sub, 'status', fields.STATUS);
    emitSafely(this.#sub, 'notify', { fields, pid });
  }

  #ready(info: ReadyInfo): void {
    if (this.#done) return;
    this.#done = true;
    this.#resolve(info);
  }

  /**
   * The child exited but its tree (cgroup) lives on: a daemon it started
   * may still say it is ready (systemd's forking daemons do, with
   * MAINPID=), so the wait goes on until the tree ends (exit(..., true)).
   * Whether it is still pending (the caller then keeps the loop alive).
   */
  childExited(): boolean {
    this.#drain(Infinity);
    return !this.#done;
  }

  /**
   * The child's exit is being delivered (info null: its status was lost,
   * cause says how): what it sent before is read, then a child that was
   * never ready rejects `ready`, and everything is released.
   */
  exit(info: ClonefdInfo | null, cause?: Error, treeEnded = false): void {
    this.#drain(Infinity);
    if (!this.#done) {
      this.#done = true;
      const how = `${describeExit(info)}${treeEnded ? ', and its tree ended,' : ''}`;
      const what = this.#plan.kind === 'fd'
        ? `${how} before it wrote a newline to its readiness fd ${this.#plan.fd}`
        : `${how} before it sent READY=1`;
      const err = codedError(Error, 'ERR_CLONEFD_NOT_READY', `child ${this.#sub.pid} ${what}`) as NotReadyError;
      err.info = info;
      if (cause) err.cause = cause;
      this.#reject(err);
    }
    this.close();
  }

  #unwatch(): void {
    const watch = this.#watch;
    if (watch === null) return;
    this.#watch = null;
    this.#fd = -1;
    binding.unwatch(watch); // closes the fd
  }

  /** Releases the fds, the socket file and its directory. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#childEnd >= 0) binding.closeFd(this.#childEnd);
    this.#childEnd = -1;
    this.#unwatch();
    if (this.#fd >= 0) binding.closeFd(this.#fd);
    this.#fd = -1;
    if (this.#path !== null) {
      binding.notifyUnlink(this.#path);
      livePaths.delete(this.#path);
      if (livePaths.size === 0) process.removeListener('exit', removeLivePaths);
      this.#path = null;
    }
    if (!this.#done) {
      // Closed before any exit (a spawn that failed): nobody can be ready.
      this.#done = true;
      this.#reject(codedError(Error, 'ERR_CLONEFD_NOT_READY', 'the spawn failed'));
    }
    this.#resource.emitDestroy();
  }
}

function emitSafely(sub: Subprocess, event: 'status' | 'notify', arg: string | NotifyMessage): void {
  try {
    (sub.emit as (e: string, a: unknown) => boolean)(event, arg);
  } catch (err) {
    binding.fatalException(err);
  }
}

function envPairsOf(env: NodeJS.ProcessEnv): string[] {
  const pairs: string[] = [];
  for (const key in env) {
    const value = env[key];
    if (value !== undefined) pairs.push(`${key}=${value}`);
  }
  return pairs;
}
