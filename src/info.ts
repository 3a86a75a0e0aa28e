// The seed's exit record, `struct clonefd_info`, with friendly extras.
import { CLD_DUMPED, CLD_EXITED, CLD_KILLED, CLONEFD_INFO_SIZE } from './constants';
import { invalidArgType, invalidArgValue } from './errors';
import { signalName, type SignalName } from './signals';
import { Slot, Source } from './abi';

/** Resource usage of the child and its reaped descendants (waitid's rusage). */
export interface Rusage {
  /** User CPU time, microseconds. */
  userCPUTime: number;
  /** System CPU time, microseconds. */
  systemCPUTime: number;
  /** Peak resident set size, KiB. */
  maxRSS: number;
  minorPageFault: number;
  majorPageFault: number;
  /** Blocks read from / written to filesystems. */
  fsRead: number;
  fsWrite: number;
  voluntaryContextSwitches: number;
  involuntaryContextSwitches: number;
}

const U64_MAX = 0xffffffffffffffffn;

export interface ClonefdInfoInit {
  code: number;
  status: number;
  utime: number | null;
  stime: number | null;
  pid?: number | null;
  rusage?: Rusage | null;
  reapedElsewhere?: boolean;
}

/**
 * What reading a clonefd yields: the seed's four fields (`code`, `status`,
 * `utime`, `stime`) plus the pid, decoded views and the full rusage.
 */
export class ClonefdInfo {
  /** `CLD_EXITED` (1), `CLD_KILLED` (2) or `CLD_DUMPED` (3). */
  readonly code: number;
  /** The exit code (`CLD_EXITED`) or the signal number. */
  readonly status: number;
  /**
   * The child's own user CPU time in clock ticks (`sysconf(_SC_CLK_TCK)`),
   * its threads included, its reaped descendants not; `null` when unknown
   * (another reaper took the child before clonefd could read it).
   */
  readonly utime: number | null;
  /** As `utime`, for system CPU time. */
  readonly stime: number | null;
  /** The child's pid; `null` for a record parsed from bytes. */
  readonly pid: number | null;
  /** waitid's rusage (the child plus its reaped descendants); `null` when unknown. */
  readonly rusage: Rusage | null;
  /** True when someone else reaped the child and the status came from `PIDFD_INFO_EXIT`. */
  readonly reapedElsewhere: boolean;

  constructor(init: ClonefdInfoInit) {
    this.code = init.code;
    this.status = init.status;
    this.utime = init.utime;
    this.stime = init.stime;
    this.pid = init.pid ?? null;
    this.rusage = init.rusage ?? null;
    this.reapedElsewhere = init.reapedElsewhere ?? false;
  }

  /** The exit code when the child exited, else `null`. */
  get exitCode(): number | null {
    return this.code === CLD_EXITED ? this.status : null;
  }

  /** The name of the signal that killed the child ('SIGKILL'), else `null`. */
  get signal(): SignalName | null {
    return this.code === CLD_KILLED || this.code === CLD_DUMPED ? signalName(this.status) : null;
  }

  /** True when the child dumped core (`CLD_DUMPED`). */
  get coreDumped(): boolean {
    return this.code === CLD_DUMPED;
  }

  /**
   * The exact 24-byte `struct clonefd_info { s32 code; s32 status; u64
   * utime; u64 stime; }` in host byte order. Unknown times are written as
   * UINT64_MAX.
   */
  toBuffer(): Buffer {
    const buf = Buffer.alloc(CLONEFD_INFO_SIZE);
    const le = isLittleEndian;
    const w32 = le ? buf.writeInt32LE : buf.writeInt32BE;
    const w64 = le ? buf.writeBigUInt64LE : buf.writeBigUInt64BE;
    w32.call(buf, this.code, 0);
    w32.call(buf, this.status, 4);
    w64.call(buf, this.utime === null ? U64_MAX : BigInt(this.utime), 8);
    w64.call(buf, this.stime === null ? U64_MAX : BigInt(this.stime), 16);
    return buf;
  }

  /** Parses a 24-byte `struct clonefd_info` (host byte order); UINT64_MAX times become `null`. */
  static fromBuffer(buf: Uint8Array): ClonefdInfo {
    if (!(buf instanceof Uint8Array)) throw invalidArgType('buf', 'an instance of Buffer or Uint8Array', buf);
    if (buf.byteLength !== CLONEFD_INFO_SIZE) {
      throw invalidArgValue('buf', buf, `must be exactly ${CLONEFD_INFO_SIZE} bytes (struct clonefd_info), got ${buf.byteLength}`);
    }
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const le = isLittleEndian;
    const time = (off: number): number | null => {
      const v = view.getBigUint64(off, le);
      return v === U64_MAX ? null : Number(v);
    };
    return new ClonefdInfo({ code: view.getInt32(0, le), status: view.getInt32(4, le), utime: time(8), stime: time(16) });
  }

  toJSON(): object {
    return {
      code: this.code,
      status: this.status,
      utime: this.utime,
      stime: this.stime,
      pid: this.pid,
      exitCode: this.exitCode,
      signal: this.signal,
      coreDumped: this.coreDumped,
      reapedElsewhere: this.reapedElsewhere,
      rusage: this.rusage,
    };
  }

  /** @internal From a native record (src/abi.ts Slot layout) that has a status. */
  static fromRecord(r: Float64Array): ClonefdInfo {
    const time = (v: number): number | null => (v < 0 ? null : v);
    const rusage: Rusage | null =
      r[Slot.RusageKnown] === 1
        ? {
            userCPUTime: r[Slot.RuUtimeUs],
            systemCPUTime: r[Slot.RuStimeUs],
            maxRSS: r[Slot.MaxRss],
            minorPageFault: r[Slot.Minflt],
            majorPageFault: r[Slot.Majflt],
            fsRead: r[Slot.Inblock],
            fsWrite: r[Slot.Oublock],
            voluntaryContextSwitches: r[Slot.Nvcsw],
            involuntaryContextSwitches: r[Slot.Nivcsw],
          }
        : null;
    return new ClonefdInfo({
      code: r[Slot.Code],
      status: r[Slot.Status],
      utime: time(r[Slot.Utime]),
      stime: time(r[Slot.Stime]),
      pid: r[Slot.Pid],
      rusage,
      reapedElsewhere: r[Slot.Source] === Source.PidfdInfo,
    });
  }
}

const isLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
