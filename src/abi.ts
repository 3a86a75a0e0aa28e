// What TypeScript shares with the native code: the record's slot layout,
// the helper's reply layout, spawn stages and flags, limits. Free of side
// effects (it does not load the addon); src/binding.ts checks every value
// here against the addon's own `layout` export when it loads it.

/** Slots of a record (native/record.h enum clonefd_slot). */
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
  Count,
}

/** Where a record's status came from (native/record.h enum clonefd_source). */
export enum Source {
  Waitid = 0,
  PidfdInfo = 1,
  Zombie = 2,
  Pipe = 3,
}

/** `code` of a record whose status was lost; `status` is the errno then. */
export const CODE_LOST = 0;
/** sizeof(struct clonefd_info): the seed's record. */
export const INFO_SIZE = 24;

/** The step of a spawn that failed (native/child.h enum clonefd_stage). */
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
  Cgroup = 12,
  Setpgid = 13,
}

/** Spawn flags, the same for both engines (native/protocol.h CLONEFD_REQ_*, child.h plan flags). */
export enum SpawnFlag {
  Setsid = 0x1,
  Setuid = 0x2,
  Setgid = 0x4,
  KillWithParent = 0x8,
  Setpgid = 0x40,
  KillTree = 0x100,
}

/** Reply types from the helper (native/protocol.h). */
export enum MsgType {
  Spawned = 3,
  Exit = 4,
}

/** Slots of a received reply (native/addon/addon.h MsgSlot); a record follows at Record for EXIT. */
export enum Msg {
  Type = 0,
  Id,
  Pid,
  Err,
  Stage,
  Fd,
  Record,
  Size = Record + Slot.Count,
}

/** Most stdio slots a spawn may map (native/child.h CLONEFD_MAX_STDIO). */
export const MAX_STDIO = 256;
/** Most stdio slots a helper request carries (native/protocol.h CLONEFD_MAX_STDIO_REMOTE). */
export const MAX_STDIO_HELPER = 60;

/** Every mirrored value by the name the addon's `layout` export gives it. */
export const layout: Record<string, number> = {
  'Slot.Code': Slot.Code,
  'Slot.Status': Slot.Status,
  'Slot.Utime': Slot.Utime,
  'Slot.Stime': Slot.Stime,
  'Slot.Pid': Slot.Pid,
  'Slot.Source': Slot.Source,
  'Slot.RusageKnown': Slot.RusageKnown,
  'Slot.RuUtimeUs': Slot.RuUtimeUs,
  'Slot.RuStimeUs': Slot.RuStimeUs,
  'Slot.MaxRss': Slot.MaxRss,
  'Slot.Minflt': Slot.Minflt,
  'Slot.Majflt': Slot.Majflt,
  'Slot.Inblock': Slot.Inblock,
  'Slot.Oublock': Slot.Oublock,
  'Slot.Nvcsw': Slot.Nvcsw,
  'Slot.Nivcsw': Slot.Nivcsw,
  'Slot.Count': Slot.Count,
  'Source.Waitid': Source.Waitid,
  'Source.PidfdInfo': Source.PidfdInfo,
  'Source.Zombie': Source.Zombie,
  'Source.Pipe': Source.Pipe,
  CODE_LOST,
  INFO_SIZE,
  'Stage.None': Stage.None,
  'Stage.Stdio': Stage.Stdio,
  'Stage.DevNull': Stage.DevNull,
  'Stage.Close': Stage.Close,
  'Stage.Chdir': Stage.Chdir,
  'Stage.Setsid': Stage.Setsid,
  'Stage.Setgid': Stage.Setgid,
  'Stage.Setuid': Stage.Setuid,
  'Stage.Signals': Stage.Signals,
  'Stage.Exec': Stage.Exec,
  'Stage.Clone': Stage.Clone,
  'Stage.Watch': Stage.Watch,
  'Stage.Cgroup': Stage.Cgroup,
  'Stage.Setpgid': Stage.Setpgid,
  'SpawnFlag.Setsid': SpawnFlag.Setsid,
  'SpawnFlag.Setuid': SpawnFlag.Setuid,
  'SpawnFlag.Setgid': SpawnFlag.Setgid,
  'SpawnFlag.KillWithParent': SpawnFlag.KillWithParent,
  'SpawnFlag.Setpgid': SpawnFlag.Setpgid,
  'SpawnFlag.KillTree': SpawnFlag.KillTree,
  'MsgType.Spawned': MsgType.Spawned,
  'MsgType.Exit': MsgType.Exit,
  'Msg.Type': Msg.Type,
  'Msg.Id': Msg.Id,
  'Msg.Pid': Msg.Pid,
  'Msg.Err': Msg.Err,
  'Msg.Stage': Msg.Stage,
  'Msg.Fd': Msg.Fd,
  'Msg.Record': Msg.Record,
  'Msg.Size': Msg.Size,
  MAX_STDIO,
  MAX_STDIO_HELPER,
};

/** Names whose values differ between `native` (the addon's layout) and this mirror, or exist on one side only. */
export function layoutMismatches(native: Record<string, number>): string[] {
  const bad: string[] = [];
  for (const name of new Set([...Object.keys(native), ...Object.keys(layout)])) {
    if (native[name] !== layout[name]) bad.push(`${name}: native ${native[name]}, TypeScript ${layout[name]}`);
  }
  return bad;
}
