// Init: the export table of the addon and the layout constants that
// src/binding.ts checks against its own mirror (src/abi.ts) at load.
#include <cstdlib>

#include <unistd.h>

#include "addon.h"
#include "../child.h"
#include "../protocol.h"

namespace clonefd {

namespace {

struct Export {
  const char* name;
  napi_callback fn;
};

const Export kExports[] = {
    // the direct engine (direct.cc)
    {"spawn", Spawn},
    {"reap", Reap},
    {"kill", Kill},
    {"ref", Ref},
    {"openPidfd", OpenPidfd},
    {"clonePath", ClonePath},
    {"reaperPending", ReaperPending},
    {"probe", Probe},
    // the helper engine's client (helper_client.cc)
    {"watchFd", WatchFd},
    {"unwatch", Unwatch},
    {"helperEnsure", HelperEnsure},
    {"helperConnect", HelperConnect},
    {"helperAbandon", HelperAbandon},
    {"helperPid", HelperPid},
    {"helperSpawn", HelperSpawn},
    {"helperRecv", HelperRecv},
    {"readRecord", ReadRecord},
    {"recoverExit", RecoverExit},
    {"dupUserFd", DupUserFd},
    // fds and signals (fds.cc)
    {"closeFd", CloseFd},
    {"socketPair", SocketPair},
    {"pipe", Pipe},
    {"releaseFd", ReleaseFd},
    {"fdFlags", FdFlags},
    {"fdValid", FdValid},
    {"pollReadable", PollReadable},
    {"waitReadable", WaitReadable},
    {"killPidfd", KillPidfd},
    {"killPid", KillPid},
    {"pidfdOpen", PidfdOpen},
    // the environment (env.cc)
    {"fatalException", FatalException},
    // spawnSync (sync.cc)
    {"drainSync", DrainSync},
    // the drop-in's IPC channel (channel.cc)
    {"channelWatch", ChannelWatch},
    {"eventsWatch", EventsWatch},
    {"openForWatch", OpenForWatch},
    {"groupMake", GroupMake},
    {"groupForget", GroupForget},
    {"channelPoll", ChannelPoll},
    {"channelRecv", ChannelRecv},
    {"channelSend", ChannelSend},
    // readiness notification (notify.cc)
    {"notifySocket", NotifySocket},
    {"notifyUnlink", NotifyUnlink},
    {"notifyRecv", NotifyRecv},
    {"notifyRead", NotifyRead},
};

struct Constant {
  const char* name;
  double value;
};

// Everything TypeScript mirrors (src/abi.ts), by the names it uses there.
const Constant kLayout[] = {
    {"Slot.Code", CLONEFD_SLOT_CODE},
    {"Slot.Status", CLONEFD_SLOT_STATUS},
    {"Slot.Utime", CLONEFD_SLOT_UTIME},
    {"Slot.Stime", CLONEFD_SLOT_STIME},
    {"Slot.Pid", CLONEFD_SLOT_PID},
    {"Slot.Source", CLONEFD_SLOT_SOURCE},
    {"Slot.RusageKnown", CLONEFD_SLOT_RUSAGE_KNOWN},
    {"Slot.RuUtimeUs", CLONEFD_SLOT_RU_UTIME_US},
    {"Slot.RuStimeUs", CLONEFD_SLOT_RU_STIME_US},
    {"Slot.MaxRss", CLONEFD_SLOT_MAXRSS},
    {"Slot.Minflt", CLONEFD_SLOT_MINFLT},
    {"Slot.Majflt", CLONEFD_SLOT_MAJFLT},
    {"Slot.Inblock", CLONEFD_SLOT_INBLOCK},
    {"Slot.Oublock", CLONEFD_SLOT_OUBLOCK},
    {"Slot.Nvcsw", CLONEFD_SLOT_NVCSW},
    {"Slot.Nivcsw", CLONEFD_SLOT_NIVCSW},
    {"Slot.Count", CLONEFD_SLOT_COUNT},
    {"Source.Waitid", CLONEFD_SOURCE_WAITID},
    {"Source.PidfdInfo", CLONEFD_SOURCE_PIDFD_INFO},
    {"Source.Zombie", CLONEFD_SOURCE_ZOMBIE},
    {"Source.Pipe", CLONEFD_SOURCE_PIPE},
    {"CODE_LOST", CLONEFD_CODE_LOST},
    {"INFO_SIZE", sizeof(struct clonefd_info)},
    {"Stage.None", CLONEFD_STAGE_NONE},
    {"Stage.Stdio", CLONEFD_STAGE_STDIO},
    {"Stage.DevNull", CLONEFD_STAGE_DEVNULL},
    {"Stage.Close", CLONEFD_STAGE_CLOSE},
    {"Stage.Chdir", CLONEFD_STAGE_CHDIR},
    {"Stage.Setsid", CLONEFD_STAGE_SETSID},
    {"Stage.Setgid", CLONEFD_STAGE_SETGID},
    {"Stage.Setuid", CLONEFD_STAGE_SETUID},
    {"Stage.Signals", CLONEFD_STAGE_SIGNALS},
    {"Stage.Exec", CLONEFD_STAGE_EXEC},
    {"Stage.Clone", CLONEFD_STAGE_CLONE},
    {"Stage.Watch", CLONEFD_STAGE_WATCH},
    {"Stage.Cgroup", CLONEFD_STAGE_CGROUP},
    {"Stage.Setpgid", CLONEFD_STAGE_SETPGID},
    {"SpawnFlag.Setsid", CLONEFD_REQ_SETSID},
    {"SpawnFlag.Setuid", CLONEFD_REQ_SETUID},
    {"SpawnFlag.Setgid", CLONEFD_REQ_SETGID},
    {"SpawnFlag.KillWithParent", CLONEFD_REQ_KILL_WITH_PARENT},
    {"SpawnFlag.Setpgid", CLONEFD_REQ_SETPGID},
    {"SpawnFlag.KillTree", CLONEFD_REQ_KILL_TREE},
    {"MsgType.Spawned", CLONEFD_MSG_SPAWNED},
    {"MsgType.Exit", CLONEFD_MSG_EXIT},
    {"Msg.Type", kMsgType},
    {"Msg.Id", kMsgId},
    {"Msg.Pid", kMsgPid},
    {"Msg.Err", kMsgErr},
    {"Msg.Stage", kMsgStage},
    {"Msg.Fd", kMsgFd},
    {"Msg.Record", kMsgRecord},
    {"Msg.Size", kMsgSize},
    {"MAX_STDIO", CLONEFD_MAX_STDIO},
    {"MAX_STDIO_HELPER", CLONEFD_MAX_STDIO_REMOTE},
};

bool SetNumber(napi_env env, napi_value obj, const char* name, double v) {
  napi_value n = Number(env, v);
  return n != nullptr && napi_set_named_property(env, obj, name, n) == napi_ok;
}

napi_value Init(napi_env env, napi_value exports) {
  if (!InitEnv(env)) {
    napi_throw_error(env, "ERR_CLONEFD_ADDON", "clonefd: cannot set up the environment's state");
    return nullptr;
  }
  CurrentUmask();  // opens its /proc/self/status fd now, not when fds run out
  const char* legacy = getenv("CLONEFD_LEGACY_CLONE");
  if (legacy && legacy[0] == '1') clonefd_force_legacy_clone(1);

  for (const Export& e : kExports) {
    napi_value fn;
    if (napi_create_function(env, e.name, NAPI_AUTO_LENGTH, e.fn, nullptr, &fn) != napi_ok ||
        napi_set_named_property(env, exports, e.name, fn) != napi_ok)
      return nullptr;
  }
  napi_value layout;
  if (napi_create_object(env, &layout) != napi_ok) return nullptr;
  for (const Constant& c : kLayout)
    if (!SetNumber(env, layout, c.name, c.value)) return nullptr;
  if (napi_set_named_property(env, exports, "layout", layout) != napi_ok ||
      !SetNumber(env, exports, "clockTicks", static_cast<double>(sysconf(_SC_CLK_TCK))))
    return nullptr;
  return exports;
}

}  // namespace

}  // namespace clonefd

NAPI_MODULE_INIT() { return clonefd::Init(env, exports); }
