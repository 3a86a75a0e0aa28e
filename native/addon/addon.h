// The addon's internal header: what its rooms share. The addon is raw
// Node-API (node_api.h), compiled without C++ exceptions: every N-API call's
// status is checked, and a failure (an environment being torn down, or one
// where JavaScript can no longer run) makes the function return nullptr
// (undefined to JavaScript) after releasing what it made. Nothing can throw
// through a uv callback or a teardown hook.
//
// Rooms (one file each):
//   env.cc           per-environment state, watches (uv_poll), calls into
//                    JavaScript, user fds, teardown
//   direct.cc        the direct engine: spawn in this process, reap, kill
//   helper_client.cc the helper engine's client: start, connect, SPAWN,
//                    replies, record pipes, recovery after a helper death
//   fds.cc           small fd and signal utilities
//   sync.cc          the spawnSync drain loop
//   channel.cc       the drop-in's IPC channel (a generic fd watch)
//   notify.cc        readiness: the sd_notify socket, datagram and pipe reads
//   addon.cc         Init: the export table and the layout constants
#ifndef CLONEFD_ADDON_H
#define CLONEFD_ADDON_H

#include <node_api.h>
#include <uv.h>

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <sys/types.h>

#include "../record.h"

namespace clonefd {

struct EnvState;

// What a Watch is for: a child of the direct engine (its pidfd; reaped when
// readable, JavaScript called once with the record), or an fd of the helper
// engine (an environment socket or an orphan's pidfd; JavaScript called
// while it is readable).
enum class WatchKind { kChild, kFd };

// One uv_poll_t and what it watches. Two owners: the JavaScript External
// (until its finalizer runs) and the uv_poll_t (until its close callback
// runs); freed when both are gone.
struct Watch {
  WatchKind kind = WatchKind::kChild;
  EnvState* state = nullptr;
  pid_t pid = 0;               // kChild
  int fd = -1;                 // kChild: private pidfd, closed at the reap or given to the reaper;
                               // kFd: the watched fd, owned, closed with the watch
  uv_poll_t* poll = nullptr;   // heap; freed only in its close callback
  uv_poll_cb cb = nullptr;     // what poll calls (PollLater starts it again)
  bool deferred = false;       // kChild: poll stopped until EnvState::retry fires (PollLater)
  napi_ref callback = nullptr; // strong while watched: its owner lives until then
  bool js_owned = true;
  bool closed_by_teardown = false;
  Watch* prev = nullptr;       // EnvState::watched
  Watch* next = nullptr;
};

// Identity of an fd handed to JavaScript, so teardown closes it only if the
// number still names the same file (pidfs gives every process its inode).
struct FdId {
  dev_t dev;
  ino_t ino;
};

// Per environment (main thread, each worker): instance data, never statics.
struct EnvState {
  napi_env env = nullptr;
  uv_loop_t* loop = nullptr;
  // The async context of every call from a uv callback into JavaScript;
  // each child's own context is JavaScript's (src/engine.ts deliverExit).
  napi_async_context async_ctx = nullptr;
  Watch* watched = nullptr;
  // fds JavaScript owns (handed to the user, private pidfds of the helper
  // engine) and has not closed through closeFd: a torn-down worker runs no
  // finalizers, so teardown closes them.
  std::unordered_map<int, FdId> user_fds;
  // sd_notify socket paths (notify.cc) not yet removed: teardown removes
  // them and their private directories.
  std::unordered_set<std::string> notify_paths;
  // Children's cgroups made here and not yet removed by JavaScript (fds.cc).
  std::unordered_set<std::string> group_paths;
  // Made on first use: polls again the watches PollLater stopped (heap;
  // freed in its close callback, at teardown).
  uv_timer_t* retry = nullptr;
  napi_async_cleanup_hook_handle cleanup = nullptr;
  int closing = 0;  // handles still closing after teardown began
};

// ---- env.cc ----------------------------------------------------------------

// Sets up the environment's state (instance data, cleanup hook). false on
// failure, with nothing left registered.
bool InitEnv(napi_env env);
EnvState* State(napi_env env);

// A started uv_poll on fd in the environment's loop, or nullptr with *err
// (libuv's negative code) and nothing left (fd untouched: still the
// caller's).
Watch* StartWatch(EnvState* s, WatchKind kind, int fd, pid_t pid, uv_poll_cb cb, int* err, int events = UV_READABLE);
// Hands a started watch to JavaScript: its callback held, listed for
// teardown, as a type-tagged External. nullptr when N-API fails: the watch
// is then stopped (for kChild the caller still owns the pidfd).
napi_value WatchHandle(napi_env env, Watch* w, napi_value callback);
// A kFd watch of fd with cb, handed to JavaScript with callback: the watch
// owns fd from now on (no longer a user fd), also when this fails (fd is
// closed; the result is then libuv's negative code as a number).
napi_value WatchOwnedFd(napi_env env, int fd, napi_value callback, uv_poll_cb cb, int events = UV_READABLE);
// The Watch behind a handle from WatchHandle, or nullptr.
Watch* UnwrapWatch(napi_env env, napi_value v);
// Stops polling and closes the uv handle (and, for kFd, the fd). Idempotent.
void StopWatching(Watch* w);
// The watch's fd is ready but what it is ready for cannot happen yet (a
// child's zombie a tracer holds: uv_poll is level-triggered, so polling on
// would spin): stops the poll and starts it again kRetryMs later.
void PollLater(Watch* w);
// After ref(): the retry timer keeps the loop alive while a stopped
// watch that is ref'd waits on it.
void UpdateRetryRef(EnvState* s);
// Drops what keeps the JavaScript owner alive. Safe during teardown.
void ReleaseJs(Watch* w);
// Calls the watch's callback from a uv callback in a fresh handle scope
// and callback scope (microtasks run after it). Returns false when
// JavaScript could not be called; *truthy tells whether it returned a
// truthy value.
bool CallFromLoop(Watch* w, size_t argc, const napi_value* argv, bool* truthy);

void TrackUserFd(EnvState* s, int fd);
void ForgetUserFd(EnvState* s, int fd);

// ---- values and arguments (env.cc) ------------------------------------------

napi_value Number(napi_env env, double v);
napi_value Boolean(napi_env env, bool v);
// The record in the slot layout (record.h) as a Float64Array.
napi_value RecordValue(napi_env env, const clonefd_record& rec);
napi_value FdPair(napi_env env, int a, int b);

// Reads a call's arguments without throwing: every accessor returns a
// neutral value and clears ok() when N-API fails or a value has the wrong
// type (JavaScript validates before it calls, so that means the
// environment is going away). Check ok() before acting.
class Args {
 public:
  static constexpr size_t kMax = 16;
  Args(napi_env env, napi_callback_info info);
  bool ok() const { return ok_; }
  napi_value raw(size_t i) const { return i < kMax ? v_[i] : nullptr; }
  bool isNull(size_t i);
  int32_t i32(size_t i);
  uint32_t u32(size_t i);
  int64_t i64(size_t i);
  double f64(size_t i);
  bool flag(size_t i);  // truthiness
  std::string str(size_t i);
  // A JavaScript string array.
  std::vector<std::string> strs(size_t i);
  // The data of an Int32Array (or Float64Array for f64array).
  int32_t* i32array(size_t i, size_t* len);
  double* f64array(size_t i, size_t* len);
  // A Buffer's bytes; nullptr (ok) for anything else.
  char* buffer(size_t i, size_t* len);

 private:
  napi_env env_;
  napi_value v_[kMax] = {};
  bool ok_;
};

// A NULL-terminated char* vector over strings (the strings stay owned).
std::vector<char*> CStrings(std::vector<std::string>& v);

// ---- the rooms' exports -------------------------------------------------------

// direct.cc
napi_value Spawn(napi_env, napi_callback_info);
napi_value Reap(napi_env, napi_callback_info);
napi_value Kill(napi_env, napi_callback_info);
napi_value Ref(napi_env, napi_callback_info);
napi_value OpenPidfd(napi_env, napi_callback_info);
napi_value ClonePath(napi_env, napi_callback_info);
napi_value ReaperPending(napi_env, napi_callback_info);
napi_value Probe(napi_env, napi_callback_info);

// helper_client.cc
napi_value WatchFd(napi_env, napi_callback_info);
napi_value Unwatch(napi_env, napi_callback_info);
napi_value HelperEnsure(napi_env, napi_callback_info);
napi_value HelperConnect(napi_env, napi_callback_info);
napi_value HelperAbandon(napi_env, napi_callback_info);
napi_value HelperPid(napi_env, napi_callback_info);
napi_value HelperSpawn(napi_env, napi_callback_info);
napi_value HelperRecv(napi_env, napi_callback_info);
napi_value ReadRecord(napi_env, napi_callback_info);
napi_value RecoverExit(napi_env, napi_callback_info);
napi_value DupUserFd(napi_env, napi_callback_info);
// The process's umask (-errno on failure); the first call opens the
// /proc/self/status fd it keeps (Init makes that call).
int CurrentUmask();
// Slots of a received reply as JavaScript gets it (src/abi.ts Msg).
enum MsgSlot { kMsgType, kMsgId, kMsgPid, kMsgErr, kMsgStage, kMsgFd, kMsgRecord, kMsgSize = kMsgRecord + CLONEFD_SLOT_COUNT };

// fds.cc
napi_value CloseFd(napi_env, napi_callback_info);
napi_value SocketPair(napi_env, napi_callback_info);
napi_value Pipe(napi_env, napi_callback_info);
napi_value ReleaseFd(napi_env, napi_callback_info);
napi_value FdFlags(napi_env, napi_callback_info);
napi_value FdValid(napi_env, napi_callback_info);
napi_value PollReadable(napi_env, napi_callback_info);
napi_value WaitReadable(napi_env, napi_callback_info);
napi_value KillPidfd(napi_env, napi_callback_info);
napi_value KillPid(napi_env, napi_callback_info);
napi_value PidfdOpen(napi_env, napi_callback_info);

// env.cc
napi_value FatalException(napi_env, napi_callback_info);

// sync.cc
napi_value DrainSync(napi_env, napi_callback_info);

// channel.cc
napi_value EventsWatch(napi_env, napi_callback_info);
napi_value OpenForWatch(napi_env, napi_callback_info);
napi_value GroupMake(napi_env, napi_callback_info);
napi_value GroupForget(napi_env, napi_callback_info);
napi_value ChannelWatch(napi_env, napi_callback_info);
napi_value ChannelPoll(napi_env, napi_callback_info);
napi_value ChannelRecv(napi_env, napi_callback_info);
napi_value ChannelSend(napi_env, napi_callback_info);

// notify.cc
napi_value NotifySocket(napi_env, napi_callback_info);
napi_value NotifyUnlink(napi_env, napi_callback_info);
napi_value NotifyRecv(napi_env, napi_callback_info);
napi_value NotifyRead(napi_env, napi_callback_info);
// Removes every sd_notify socket file (and directory) still listed.
void RemoveNotifyPaths(EnvState* s);
void AdoptGroups(EnvState* s);

}  // namespace clonefd

#endif
