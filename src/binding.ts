// The one place the native addon is loaded, typed by a hand-written
// interface of what native/addon.cc exports. Everything here is raw:
// numbers, negative errnos, opaque child handles.
import path from 'node:path';
import load from 'node-gyp-build';

/** Opaque native child (an External with a type tag). */
export type NativeChild = { readonly __nativeChild: unique symbol };

export interface NativeBinding {
  /** out = [errno, stage, pid]; undefined on failure (out[0] > 0). */
  spawn(
    paths: string[],
    argv: string[],
    envp: string[] | null,
    cwd: string | null,
    stdio: Int32Array,
    flags: number,
    uid: number,
    gid: number,
    onExit: (record: Float64Array | number) => void,
    out: Int32Array,
  ): NativeChild | undefined;
  /** Reap now: the record, or -EAGAIN (running, non-blocking), -ECHILD (already reaped), -errno. */
  reap(child: NativeChild, block: boolean): Float64Array | number;
  kill(child: NativeChild, signal: number): number;
  ref(child: NativeChild, on: boolean): void;
  openPidfd(child: NativeChild, cloexec: boolean, nonblock: boolean): number;
  /** Closes an fd the addon created (and forgets it as a user fd). 0 or -errno. */
  closeFd(fd: number): number;
  socketPair(): [number, number] | number;
  fdFlags(fd: number): [number, number] | number;
  setLegacyClone(on: boolean): void;
  clonePath(): 'clone3' | 'clone';
  reaperPending(): number;
  probe(): number;
  readonly recordSize: number;
  /** Helper engine (native/addon.cc "the helper engine's primitives"). */
  watchFd(fd: number, onReadable: () => void): NativeChild | number;
  unwatch(watch: NativeChild): void;
  helperEnsure(fallbackPath: string, out: Int32Array): number;
  helperConnect(generation: number): number;
  helperPid(): number;
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
    recordWriteFd: number,
    execWriteFd: number,
  ): number;
  pipe(): [number, number] | number;
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
  waitExec(readEnd: number, out: Int32Array): number;
  helperRecv(sock: number, out: Float64Array, block: boolean): number;
  recordPipe(cloexec: boolean, nonblock: boolean): [number, number] | number;
  dupUserFd(fd: number, cloexec: boolean, nonblock: boolean): number;
  readRecord(fd: number, block: boolean, exitFd: number): Float64Array | number;
  killPidfd(pidfd: number, signal: number): number;
  killPid(pid: number, signal: number): number;
  fdValid(fd: number): boolean;
  waitReadable(fd: number): number;
  recoverExit(pidfd: number, pid: number): Float64Array | number;
  readonly messageSize: number;
  /** sysconf(_SC_CLK_TCK): the unit of utime/stime. */
  readonly clockTicks: number;
}

const root = path.join(__dirname, '..');
export const binding = load(root) as NativeBinding;
/** Where the loaded addon lives (build/Release or prebuilds/<platform>). */
export const bindingPath: string = (load as unknown as { resolve(dir: string): string }).resolve(root);

/** Slots of the Float64Array record (native/addon.cc RecordSlot). */
export enum Slot {
  Code = 0,
  Status,
  Utime,
  Stime,
  Pid,
  Source,
  RusageKnown,
  RuUtimeUs,
  RuStimeUs,
  MaxRss,
  Minflt,
  Majflt,
  Inblock,
  Oublock,
  Nvcsw,
  Nivcsw,
  Size,
}

/** native/child.h enum clonefd_stage. */
export enum Stage {
  None = 0,
  Stdio = 1,
  DevNull = 2,
  Close = 3,
  Chdir = 4,
  Setsid = 5,
  Setgid = 6,
  Setuid = 7,
  Signals = 8,
  Exec = 9,
  Clone = 10,
  Watch = 11,
}

/**
 * Spawn flags: native/child.h's plan flags, plus KillWithParent; the
 * helper's wire flags (native/protocol.h CLONEFD_REQ_*) have the same
 * values.
 */
export enum PlanFlag {
  Setsid = 0x1,
  Setuid = 0x2,
  Setgid = 0x4,
  KillWithParent = 0x8,
}

if (binding.recordSize !== Slot.Size) {
  throw new Error(`clonefd: native record has ${binding.recordSize} slots, expected ${Slot.Size}: rebuild the addon`);
}
