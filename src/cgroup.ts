// Process trees through cgroup v2: one group per child, made before the
// clone and entered by it (CLONE_INTO_CGROUP), so that nothing the child
// starts can run outside it. The group is the tree: `cgroup.kill` kills it
// whole, `cgroup.events` says when it is empty (and frozen), `cpu.stat`
// keeps the CPU time of everything that ever ran in it. Everything here is
// file operations on the cgroup filesystem; the only native help is a watch
// of `cgroup.events` (poll(2) POLLPRI, as kernfs notifies) and pidfds.
//
// Where things are is read, never assumed: the cgroup2 mount from
// /proc/self/mountinfo, this process's own group from /proc/self/cgroup.
import fs from 'node:fs';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { binding, type NativeWatch } from './binding';
import { codedError, SystemError } from './errors';
import { EACCES, EBUSY, ENOENT, EPERM, EROFS, ESRCH } from './errno';
import { SIGKILL } from './signals';

const CGROUP2_SUPER_MAGIC = 0x63677270;

/** Limits for the child's group (each needs its controller delegated to the parent group). */
export interface CgroupLimits {
  /** `memory.max`: bytes, or 'max'. */
  memoryMax?: number | 'max' | undefined;
  /** `pids.max`: processes, or 'max'. */
  pidsMax?: number | 'max' | undefined;
  /** `cpu.max`: "$MAX $PERIOD" in µs, e.g. '50000 100000' (half a CPU), or 'max'. */
  cpuMax?: string | undefined;
}

/** The limits' files and the controller each needs, in the order they are written. */
const LIMIT_FILES: ReadonlyArray<[keyof CgroupLimits, string, string]> = [
  ['memoryMax', 'memory.max', 'memory'],
  ['pidsMax', 'pids.max', 'pids'],
  ['cpuMax', 'cpu.max', 'cpu'],
];

/** How a process tree ended: `treeExited`'s value. */
export interface TreeInfo {
  /** The child's cgroup (removed by now). */
  cgroup: string;
  /** CPU time of every process that ever ran in the tree, µs (the rusage units; `cpu.stat`). */
  userCPUTime: number;
  systemCPUTime: number;
  /** Most processes alive at once (`pids.peak`), or null without the pids controller. */
  peakProcesses: number | null;
  /** Most memory in use at once, bytes (`memory.peak`), or null without the memory controller. */
  peakMemory: number | null;
}

/** Writes a control file: O_WRONLY, never O_CREAT (a missing file is ENOENT: the controller is not there). */
function writeControl(file: string, value: string): void {
  const fd = fs.openSync(file, fs.constants.O_WRONLY);
  try {
    fs.writeSync(fd, value);
  } finally {
    fs.closeSync(fd);
  }
}

function unavailable(what: string): Error & { code: string } {
  return codedError(Error, 'ERR_CLONEFD_CGROUP_UNAVAILABLE', `options.cgroup: ${what}`);
}

/** "\040" and friends in mountinfo paths. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * This process's own cgroup v2 directory, from its mount (mountinfo) and its
 * membership (/proc/self/cgroup, the "0::" line). Throws
 * ERR_CLONEFD_CGROUP_UNAVAILABLE saying what is missing.
 */
export function ownCgroupDir(): string {
  let mountinfo: string, membership: string;
  try {
    mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    membership = fs.readFileSync('/proc/self/cgroup', 'utf8');
  } catch (err) {
    throw unavailable(`cannot read /proc/self/mountinfo and /proc/self/cgroup (${(err as Error).message}): is /proc mounted?`);
  }
  const line = membership.split('\n').find((l) => l.startsWith('0::'));
  if (line === undefined) throw unavailable('this process is in no cgroup v2 hierarchy (no "0::" line in /proc/self/cgroup)');
  const own = line.slice(3);
  let best: { mount: string; root: string } | null = null;
  for (const l of mountinfo.split('\n')) {
    const sep = l.indexOf(' - ');
    if (sep < 0 || l.slice(sep + 3).split(' ')[0] !== 'cgroup2') continue;
    const f = l.slice(0, sep).split(' ');
    const root = unescapeMount(f[3]);
    const mount = unescapeMount(f[4]);
    // The mount whose root contains our group (usually "/": the whole hierarchy).
    if (own === root || own.startsWith(root === '/' ? '/' : `${root}/`)) {
      if (best === null || root.length > best.root.length) best = { mount, root };
    }
  }
  if (best === null) throw unavailable('no cgroup2 filesystem is mounted that holds this process\'s group (see /proc/self/mountinfo)');
  const rel = best.root === '/' ? own : own.slice(best.root.length);
  return path.resolve(best.mount, `.${rel}`);
}

function isCgroup2(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}

function errnoOf(err: unknown): number {
  const e = err as { errno?: number };
  return typeof e.errno === 'number' ? -e.errno : 0;
}

let seq = 0;

/**
 * Makes a fresh group for one child under `parent` (true: this process's
 * own group), writes the limits, opens it for the clone. Nothing is left
 * behind on failure.
 */
export function createChildCgroup(parent: string | true, limits: CgroupLimits | null): { dir: string; fd: number } {
  const base = parent === true ? ownCgroupDir() : parent;
  if (!isCgroup2(base)) {
    throw unavailable(parent === true
      ? `this process's group ${base} is not on a cgroup2 filesystem`
      : `${base} is not a directory of a cgroup2 filesystem`);
  }
  let dir = '';
  for (;;) {
    dir = path.join(base, `clonefd-${process.pid}-${threadId}-${++seq}`);
    // Native: the environment lists it in the same call, so a worker
    // terminated from now on still has it removed (fds.cc groupMake).
    const r = binding.groupMake(dir);
    if (r === 0) break;
    const errno = -r;
    if (errno === 17 /* EEXIST: a crashed process of the same pid left it */) continue;
    if (errno === EACCES || errno === EPERM || errno === EROFS) {
      const why = new SystemError(errno, 'mkdir', { path: dir }).message;
      throw unavailable(`cannot create a group in ${base} (${why}): it must be writable by this user (a delegated subtree; on systemd, e.g. a unit with Delegate=yes or under user@${process.getuid?.()}.service)`);
    }
    throw new SystemError(errno, 'mkdir', { path: dir, detail: 'creating the child\'s cgroup' });
  }
  try {
    if (limits) writeLimits(dir, base, limits);
    const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    return { dir, fd };
  } catch (err) {
    removeChildCgroup(dir);
    throw err;
  }
}

function writeLimits(dir: string, base: string, limits: CgroupLimits): void {
  for (const [key, file, controller] of LIMIT_FILES) {
    const value = limits[key];
    if (value === undefined) continue;
    try {
      writeControl(path.join(dir, file), String(value));
    } catch (err) {
      if (errnoOf(err) === ENOENT) {
        let enabled = '';
        try {
          enabled = fs.readFileSync(path.join(base, 'cgroup.subtree_control'), 'utf8').trim();
        } catch { /* unreadable: said as none */ }
        throw codedError(Error, 'ERR_CLONEFD_CGROUP_CONTROLLER',
          `options.limits.${key} needs the ${controller} controller delegated to ${base} (its cgroup.subtree_control has ${enabled ? `"${enabled}"` : 'none'}); pass options.cgroup a group where it is`);
      }
      throw new SystemError(errnoOf(err) || EACCES, 'write', { path: path.join(dir, file), detail: `options.limits.${key} = ${String(value)}` });
    }
  }
}

/**
 * Removes a child's group made by createChildCgroup, quietly, subgroups
 * first: false while populated (EBUSY; the environment still lists it),
 * true once gone (and no longer listed).
 */
export function removeChildCgroup(dir: string): boolean {
  const gone = removeGroup(dir);
  if (gone) binding.groupForget(dir);
  return gone;
}

/** rmdir, quietly, subgroups first (a tree may make groups of its own inside its group). */
function removeGroup(dir: string): boolean {
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    return errnoOf(err) === ENOENT;
  }
  for (const e of entries) if (e.isDirectory()) removeGroup(path.join(dir, e.name));
  try {
    fs.rmdirSync(dir);
    return true;
  } catch (err) {
    return errnoOf(err) === ENOENT;
  }
}

/** p, or a rejection after ms (the timer does not hold the loop). */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), ms);
    timer.unref();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function readKeyed(file: string): Map<string, number> {
  const out = new Map<string, number>();
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const [k, v] = line.split(' ');
    if (k && v !== undefined) out.set(k, Number(v));
  }
  return out;
}

function readNumber(file: string): number | null {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/**
 * Signals pid through a pidfd if `belongs` says the process that has the
 * pid now is ours: the pidfd is opened first, so a pid recycled after the
 * check is never signalled (the pidfd names the old process). True when
 * sent.
 */
export function signalIfOurs(pid: number, signal: number, belongs: (pid: number) => boolean): boolean {
  const fd = binding.pidfdOpen(pid);
  if (fd < 0) return false;
  try {
    return belongs(pid) && binding.killPidfd(fd, signal) === 0;
  } finally {
    binding.closeFd(fd);
  }
}

/** Every pid in the group and its descendant groups (a tree may make subgroups of its own). */
function groupMembers(dir: string): number[] {
  const out: number[] = [];
  let text = '';
  try {
    text = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8');
  } catch {
    return out;
  }
  for (const l of text.split('\n')) if (l) out.push(Number(l));
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) if (e.isDirectory()) out.push(...groupMembers(path.join(dir, e.name)));
  return out;
}

interface Waiter {
  /** The frozen state it waits for. */
  frozen: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * One child's group, from the spawn until the tree is gone and the group
 * removed. Its `cgroup.events` is watched on this environment's loop (not
 * keeping it alive unless `ref()`); once the group is empty and the child's
 * own exit has been delivered, the totals are read and the group removed.
 */
/**
 * Whether `pid` has `signal` (or a SIGKILL: it is dying) pending still, from
 * /proc/PID/status, blocked or not: a process that blocks every signal
 * around fork() (perl does) takes it only after the fork, and its new child
 * never had it. A process gone, a zombie or a stopped process (it cannot
 * fork) counts as having taken it.
 */
function signalPending(pid: number, signal: number): boolean {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return false;
  }
  if (/^State:\s*[ZXTt]/m.test(text)) return false;
  const mask = (key: string): bigint => {
    const m = new RegExp(`^${key}:\\s*([0-9a-f]+)$`, 'm').exec(text);
    return m ? BigInt(`0x${m[1]}`) : 0n;
  };
  const pending = mask('SigPnd') | mask('ShdPnd');
  return (pending & ((1n << BigInt(signal - 1)) | (1n << BigInt(SIGKILL - 1)))) !== 0n;
}

export class ChildCgroup {
  readonly dir: string;
  #events: number;
  #watch: NativeWatch | null = null;
  #populated = true;
  #frozen = false;
  #childDone = false;
  #gone = false;
  #waiters: Waiter[] = [];
  #resolve!: (info: TreeInfo) => void;
  #reject!: (err: Error) => void;
  readonly exited: Promise<TreeInfo>;

  constructor(dir: string) {
    this.dir = dir;
    this.exited = new Promise<TreeInfo>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.exited.catch(() => {});
    const events = binding.openForWatch(path.join(dir, 'cgroup.events'));
    if (events < 0) throw new SystemError(-events, 'open', { path: path.join(dir, 'cgroup.events') });
    this.#events = events;
    // Read once first: kernfs counts every change since the open as news.
    this.#readEvents();
    const w = binding.eventsWatch(this.#events, () => this.#onEvents());
    if (typeof w === 'number') {
      // The watch closed the fd.
      throw new SystemError(-w, 'uv_poll_start', { path: path.join(dir, 'cgroup.events') });
    }
    this.#watch = w;
    binding.ref(w, false);
    // A state before the watch began would never be signalled.
    this.#onEvents();
  }

  /** Whether a waiting `treeExited` keeps the event loop alive. */
  ref(on: boolean): void {
    this.#wanted = on;
    this.#updateRef();
  }

  #wanted = false;
  #holds = 0;

  /** Keeps the loop alive until release() (a wait on the tree's behalf: readiness). */
  hold(): void {
    this.#holds++;
    this.#updateRef();
  }

  release(): void {
    this.#holds--;
    this.#updateRef();
  }

  // The loop stays alive while someone awaits the tree: treeExited, a
  // freeze()/thaw() that has not settled yet, a hold().
  #updateRef(): void {
    if (this.#watch) binding.ref(this.#watch, this.#wanted || this.#holds > 0 || this.#waiters.length > 0);
  }

  /** The child itself has exited and its exit was delivered. */
  childDone(): void {
    this.#childDone = true;
    if (!this.#gone) this.#readEvents();
    this.#maybeFinish();
  }

  #readEvents(): void {
    const buf = Buffer.alloc(256);
    let n = 0;
    try {
      // Through the watched fd, from the start: reading is what re-arms POLLPRI.
      n = fs.readSync(this.#events, buf, 0, buf.length, 0);
    } catch {
      return;
    }
    for (const line of buf.toString('latin1', 0, n).split('\n')) {
      const [k, v] = line.split(' ');
      if (k === 'populated') this.#populated = v === '1';
      else if (k === 'frozen') this.#frozen = v === '1';
    }
  }

  #onEvents(): void {
    if (this.#gone) return;
    this.#readEvents();
    this.#settleWaiters();
    this.#maybeFinish();
  }

  /** Resolves the waits for the state cgroup.events says now (whoever read it). */
  #settleWaiters(): void {
    const ready = this.#waiters.filter((w) => w.frozen === this.#frozen);
    this.#waiters = this.#waiters.filter((w) => w.frozen !== this.#frozen);
    this.#updateRef();
    for (const w of ready) w.resolve();
  }

  #maybeFinish(): void {
    if (this.#gone || this.#populated || !this.#childDone) return;
    const cpu = readKeyed(path.join(this.dir, 'cpu.stat'));
    const info: TreeInfo = {
      cgroup: this.dir,
      userCPUTime: cpu.get('user_usec') ?? 0,
      systemCPUTime: cpu.get('system_usec') ?? 0,
      peakProcesses: readNumber(path.join(this.dir, 'pids.peak')),
      peakMemory: readNumber(path.join(this.dir, 'memory.peak')),
    };
    this.#close();
    // A frozen empty group can still be removed; a new member cannot
    // appear (only members fork into it, and there are none).
    if (removeChildCgroup(this.dir)) this.#resolve(info);
    else this.#reject(new SystemError(EBUSY, 'rmdir', { path: this.dir, detail: 'the tree\'s cgroup could not be removed' }));
  }

  #close(): void {
    this.#gone = true;
    if (this.#watch) {
      binding.unwatch(this.#watch); // closes the events fd
      this.#watch = null;
    }
    // A gone tree is not frozen: thaw() is done; a freeze() was never.
    for (const w of this.#waiters) {
      if (w.frozen) w.reject(this.#gonerr('freeze'));
      else w.resolve();
    }
    this.#waiters = [];
  }

  /**
   * Gives up the group (this process is exiting): removed if empty, after
   * waiting up to waitMs for it to empty (a tree just killed).
   */
  abandon(waitMs = 0): void {
    if (this.#gone) return;
    // Nobody is left to thaw it: a freeze (a freeze(), or a killTree() cut
    // short by the exit) would hold the tree for ever.
    try {
      writeControl(path.join(this.dir, 'cgroup.freeze'), '0');
    } catch {
      // no cgroup.freeze, or gone: nothing to undo
    }
    const deadline = Date.now() + waitMs;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    for (;;) {
      this.#readEvents();
      if (!this.#populated || Date.now() >= deadline) break;
      Atomics.wait(nap, 0, 0, 2);
    }
    this.#close();
    removeChildCgroup(this.dir);
  }

  #gonerr(op: string): SystemError {
    return new SystemError(ESRCH, op, { path: this.dir, detail: 'the tree has exited and its cgroup is removed' });
  }

  /** Every process in the tree now (cgroup.procs, subgroups included). */
  members(): number[] {
    return this.#gone ? [] : groupMembers(this.dir);
  }

  /**
   * SIGKILL: `cgroup.kill`, which the kernel applies to every member and to
   * any being forked meanwhile. Another signal: each member through a
   * pidfd, repeated until a pass finds none that has not had it (children
   * forked meanwhile are members too).
   */
  kill(signal: number): Set<number> | null {
    if (this.#gone) return new Set();
    if (signal === SIGKILL) {
      try {
        writeControl(path.join(this.dir, 'cgroup.kill'), '1');
        return null;
      } catch (err) {
        if (errnoOf(err) !== ENOENT) throw new SystemError(errnoOf(err) || EACCES, 'write', { path: path.join(this.dir, 'cgroup.kill') });
        // No cgroup.kill (< 5.14): member by member, below.
      }
    }
    return this.#signalMembers(signal);
  }

  /**
   * kill() with the member list held still. SIGKILL needs nothing more
   * (cgroup.kill). Another signal, in rounds: freeze the tree (a frozen
   * process cannot start a fork), signal every member not signalled yet,
   * thaw it, then wait until each signalled member has taken the signal (or
   * is gone), and look again. The wait is what the freeze cannot give: a
   * member that blocked its signals around fork() (perl does, and the
   * freezer can stop it right there) keeps the signal pending through the
   * fork and takes it only after; the new child never had it. Once every
   * signal is taken no fork begun before it is still in flight, so a round
   * that finds nobody new ends it. A tree you had frozen stays frozen and
   * takes the signal at your thaw(); a freeze()/thaw() of yours meanwhile
   * is left alone. Past waitMs (a member in an uninterruptible sleep, or
   * one that keeps the signal blocked) the rounds stop waiting.
   * Resolves with the pids signalled (null: cgroup.kill, all of them).
   */
  async killStill(signal: number, waitMs = 5000): Promise<Set<number> | null> {
    if (this.#gone || signal === SIGKILL) return this.kill(signal);
    const deadline = Date.now() + waitMs;
    const sent = new Set<number>();
    const left = () => Math.max(1, deadline - Date.now());
    for (let round = 0; round < 100 && !this.#gone && Date.now() < deadline; round++) {
      const mine = this.#userFreezes;
      // What was last asked of cgroup.freeze, not what cgroup.events says
      // yet: a freeze() of yours still on its way is yours too.
      const froze = !this.#wantFrozen;
      if (froze) {
        try {
          await withTimeout(this.setFrozen(true), left());
        } catch {
          // Gone, no cgroup.freeze, superseded by your thaw(), or too slow: the live tree.
        }
      }
      try {
        this.#signalMembers(signal, sent);
      } finally {
        if (froze && mine === this.#userFreezes && !this.#gone) await withTimeout(this.setFrozen(false), left()).catch(() => {});
      }
      // Frozen (yours): the signals wait for your thaw, nothing to wait for.
      if (this.#wantFrozen || Date.now() >= deadline) break;
      await this.#untilTaken(signal, sent, deadline);
      if (!this.members().some((pid) => !sent.has(pid))) return sent;
    }
    // Out of time: passes on the tree as it is.
    this.#signalMembers(signal, sent);
    return sent;
  }

  /** Polls until no member in `sent` still has `signal` (or a SIGKILL) pending. */
  async #untilTaken(signal: number, sent: Set<number>, deadline: number): Promise<void> {
    // Only those still pending are looked at again (a pid that left the
    // tree is done, whatever its number names now).
    let waiting = this.members().filter((pid) => sent.has(pid));
    for (;;) {
      const t0 = Date.now();
      const now = new Set(this.members());
      waiting = waiting.filter((pid) => now.has(pid) && signalPending(pid, signal));
      if (waiting.length === 0 || Date.now() >= deadline) return;
      // A large tree's look takes a while: the loop gets at least as long again.
      await new Promise((r) => setTimeout(r, Math.max(5, Date.now() - t0)));
    }
  }

  /** freeze()/thaw() on the caller's behalf (counted: killStill leaves the freezer to a caller who used it meanwhile). */
  userSetFrozen(on: boolean): Promise<void> {
    this.#userFreezes++;
    return this.setFrozen(on);
  }

  #userFreezes = 0;
  /** What was last written to cgroup.freeze. */
  #wantFrozen = false;

  #signalMembers(signal: number, sent = new Set<number>()): Set<number> {
    // Each pass: a pidfd for every member not signalled yet, then the
    // members again: only a process still listed after its pidfd was
    // opened is ours (a pid recycled in between names another process, and
    // the pidfd still names the one that exited). Passes until one finds
    // nobody new: children forked meanwhile are members too.
    for (let pass = 0; pass < 1000; pass++) {
      const fresh = this.members().filter((pid) => !sent.has(pid));
      if (fresh.length === 0) break;
      const fds = fresh.map((pid) => binding.pidfdOpen(pid));
      const now = new Set(this.members());
      fresh.forEach((pid, i) => {
        sent.add(pid);
        if (fds[i] < 0) return;
        if (now.has(pid)) binding.killPidfd(fds[i], signal);
        binding.closeFd(fds[i]);
      });
    }
    return sent;
  }

  /** Writes cgroup.freeze and waits until cgroup.events says so. */
  async setFrozen(on: boolean): Promise<void> {
    if (this.#gone) throw this.#gonerr(on ? 'freeze' : 'thaw');
    try {
      writeControl(path.join(this.dir, 'cgroup.freeze'), on ? '1' : '0');
    } catch (err) {
      throw new SystemError(errnoOf(err) || EACCES, 'write', { path: path.join(this.dir, 'cgroup.freeze') });
    }
    this.#wantFrozen = on;
    this.#readEvents();
    // The other way's waiters will not see their state come: superseded.
    const superseded = this.#waiters.filter((w) => w.frozen !== on);
    this.#waiters = this.#waiters.filter((w) => w.frozen === on);
    for (const w of superseded) {
      w.reject(codedError(Error, 'ERR_CLONEFD_FREEZE_SUPERSEDED', `${w.frozen ? 'freeze()' : 'thaw()'} of ${this.dir} was superseded by a ${on ? 'freeze()' : 'thaw()'} before cgroup.events said so`));
    }
    // A read here can take the notification a waiter was waiting for.
    if (this.#frozen === on) return this.#settleWaiters();
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ frozen: on, resolve, reject }));
    this.#updateRef();
    await done;
  }

  /** Whether cgroup.events says frozen. */
  get frozen(): boolean {
    return this.#frozen;
  }

  /** Leaves the tree's SIGKILL for a later failure path: fail the tree promise. */
  fail(err: Error): void {
    if (this.#gone) return;
    this.#close();
    this.#reject(err);
  }
}
