// The one place the native addon is loaded, typed by a hand-written
// interface of what native/addon/addon.cc exports. Everything here is raw:
// numbers, negative errnos, opaque handles, records as Float64Arrays in the
// slot layout of src/abi.ts (checked against the addon's own at load).
import path from 'node:path';
import load from 'node-gyp-build';
import { layoutMismatches } from './abi';

/** Opaque native watch: a direct-engine child or a watched fd (an External with a type tag). */
export type NativeWatch = { readonly __nativeWatch: unique symbol };

export interface NativeBinding {
  // ---- the direct engine (native/addon/direct.cc)
  /** out = [errno, stage, pid]; undefined on failure (out[0] > 0, nothing left). onExit(record) once, from the loop. */
  spawn(
    paths: string[],
    argv: string[],
    envp: string[] | null,
    cwd: string | null,
    stdio: Int32Array,
    flags: number,
    uid: number,
    gid: number,
    onExit: (record: Float64Array) => void,
    out: Int32Array,
    cgroupFd: number,
  ): NativeWatch | undefined;
  /** Reap now: the record, or -EAGAIN (running, non-blocking), -ECHILD (already reaped), -errno. */
  reap(child: NativeWatch, block: boolean): Float64Array | number;
  kill(child: NativeWatch, signal: number): number;
  ref(watch: NativeWatch, on: boolean): void;
  openPidfd(child: NativeWatch, cloexec: boolean, nonblock: boolean): number;
  clonePath(): 'clone3' | 'clone';
  reaperPending(): number;
  probe(): number;

  // ---- the helper engine's client (native/addon/helper_client.cc)
  /** The watch owns fd from now on (also when this fails: -errno). onReadable returns true while there may be more. */
  watchFd(fd: number, onReadable: () => boolean): NativeWatch | number;
  unwatch(watch: NativeWatch): void;
  helperEnsure(fallbackPath: string, out: Int32Array): number;
  /** 0, out = [request socket, event socket]; or -errno. */
  helperConnect(generation: number, out: Int32Array): number;
  /** The helper of that generation did not answer in time: the next helperEnsure starts a new one. */
  helperAbandon(generation: number): void;
  helperPid(): number;
  /**
   * One spawn through the helper: sends SPAWN, waits (timeoutMs of our
   * running time) for SPAWNED and for the exec's outcome. 0: out =
   * [recordFd, pid, pidfd, execErr, execStage, err, stage, step]; -errno:
   * nothing open, out[step] says where (native/addon/helper_client.cc).
   */
  helperSpawn(
    sock: number,
    id: number,
    paths: string[],
    argv: string[],
    envp: string[] | null,
    cwd: string | null,
    stdio: Int32Array,
    flags: number,
    uid: number,
    gid: number,
    userFlags: number,
    timeoutMs: number,
    out: Int32Array,
    cgroupFd: number,
  ): number;
  /** A reply (a fresh Float64Array, abi.ts Msg layout), 0 at EOF, or -errno (-EAGAIN, -EPROTO). */
  /** timeoutMs: 0 non-blocking (-EAGAIN), > 0 a deadline (-ETIMEDOUT), < 0 none. */
  helperRecv(sock: number, timeoutMs: number): Float64Array | number;
  /** The 24 bytes as a record, 0 at EOF, -EAGAIN, or -ETIMEDOUT when the child exited and the helper did not write them within timeoutMs. */
  readRecord(fd: number, block: boolean, exitFd: number, pid: number, timeoutMs: number): Float64Array | number;
  /** The record (possibly marked lost), or -EAGAIN while the child runs. */
  recoverExit(pidfd: number, pid: number): Float64Array | number;
  dupUserFd(fd: number, cloexec: boolean, nonblock: boolean): number;

  // ---- fds and signals (native/addon/fds.cc)
  /** Closes an fd the addon created (and forgets it as a user fd). 0 or -errno. */
  closeFd(fd: number): number;
  /** Both ends are owned by JavaScript until closeFd or releaseFd (a torn-down worker's teardown closes them). */
  socketPair(): [number, number] | number;
  /** fd now belongs to another owner (a net.Socket): teardown must not close it. */
  releaseFd(fd: number): void;
  pipe(): [number, number] | number;
  fdFlags(fd: number): [number, number] | number;
  fdValid(fd: number): boolean;
  /** readable[i] = 1 when fds[i] polls readable now (no wait). */
  pollReadable(fds: Int32Array, readable: Uint8Array): void;
  waitReadable(fd: number): number;
  killPidfd(pidfd: number, signal: number): number;
  killPid(pid: number, signal: number): number;
  /** A CLOEXEC pidfd for whatever process has pid now (JavaScript's to close), or -errno. */
  pidfdOpen(pid: number): number;

  // ---- the drop-in's IPC channel (native/addon/channel.cc)
  /** The watch owns fd from now on (also when this fails: -errno); polls readable; onEvent(1 readable | 2 writable; 8 with both: the poll failed and stopped). */
  channelWatch(fd: number, onEvent: (events: number) => void): NativeWatch | number;
  /** A watch of a kernfs file's POLLPRI (cgroup.events) from the start; owns fd (also when this fails: -errno). */
  eventsWatch(fd: number, onEvent: (events: number) => void): NativeWatch | number;
  /** open(path, O_RDONLY|O_CLOEXEC) → fd | -errno, for eventsWatch to own at once (never fs.openSync: see fds.cc). */
  openForWatch(path: string): number;
  /** mkdir(path, 0755) of a child's cgroup, listed in this environment (its teardown hands what is left to the reaper thread): 0 | -errno. */
  groupMake(path: string): number;
  /** The group is removed: no longer listed. */
  groupForget(path: string): void;
  /** What to poll for from now on (1 readable | 2 writable; 0 none). 0 or -errno. */
  channelPoll(watch: NativeWatch, events: number): number;
  /** recvmsg: bytes, 0 at EOF, -errno (-EAGAIN); fds = [count (-1: dropped by the kernel), fd...] that came with them. */
  channelRecv(fd: number, buf: Buffer, fds: Int32Array): number;
  /** sendmsg of buf[offset, offset + length) with passFd (>= 0) attached: bytes sent or -errno (-EAGAIN: full). */
  channelSend(fd: number, buf: Buffer, offset: number, length: number, passFd: number): number;

  // ---- readiness notification (native/addon/notify.cc; watched with channelWatch)
  /** An AF_UNIX SOCK_DGRAM socket (CLOEXEC, NONBLOCK, SO_PASSCRED) bound to path: fd (a user fd) or -errno. Teardown removes path and its directory. */
  notifySocket(path: string): number;
  /** Removes the socket file and its directory (ENOENT is fine): 0 or -errno. */
  notifyUnlink(path: string): number;
  /** One datagram: bytes or -errno (-EAGAIN); out = [sender pid (0 unknown), sender uid, 1 if truncated]. Attached fds are closed. */
  notifyRecv(fd: number, buf: Buffer, out: Int32Array): number;
  /** read(2): bytes, 0 at EOF, or -errno (-EAGAIN). */
  notifyRead(fd: number, buf: Buffer): number;

  // ---- the environment (native/addon/env.cc)
  /** Reports err as an uncaught exception now, in the current async context. */
  fatalException(err: unknown): void;

  // ---- spawnSync (native/addon/sync.cc)
  drainSync(
    readFds: Int32Array,
    writeFd: number,
    input: Buffer | null,
    exitFd: number,
    pidfd: number,
    timeoutMs: number,
    maxBuffer: number,
    killSignal: number,
  ): { outputs: Buffer[]; timedOut: boolean; overflow: boolean; error: number };

  /** The native side of every value src/abi.ts mirrors. */
  readonly layout: Record<string, number>;
  /** sysconf(_SC_CLK_TCK): the unit of utime/stime. */
  readonly clockTicks: number;
}

const root = path.join(__dirname, '..');
export const binding = load(root) as NativeBinding;
/** Where the loaded addon lives (build/Release or prebuilds/<platform>). */
export const bindingPath: string = (load as unknown as { resolve(dir: string): string }).resolve(root);

const mismatches = layoutMismatches(binding.layout);
if (mismatches.length > 0) {
  throw new Error(`clonefd: the addon at ${bindingPath} does not match this JavaScript (${mismatches.join('; ')}): rebuild it`);
}
