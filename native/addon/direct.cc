// The direct engine: the child is cloned in this process (child.h
// clonefd_spawn_vfork), its pidfd watched with uv_poll on the calling
// environment's loop, and reaped (reap.h) when it polls readable.
#include <cerrno>
#include <csignal>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addon.h"
#include "../child.h"
#include "../reap.h"
#include "../reaper.h"
#include "../sys.h"

extern char** environ;

namespace clonefd {

namespace {

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif

// Spawn flag beyond child.h's: kill the child when its creating thread
// exits (src/abi.ts SpawnFlag.KillWithParent, the wire's value too).
constexpr int kKillWithParent = 0x8;
constexpr int kKillTree = 0x100;  // the helper's (protocol.h): the direct engine has no one left to kill the tree

// Reap now (the pidfd is readable) and stop watching. -EAGAIN: not exited
// after all, keep watching.
int ReapAndStop(Watch* w, clonefd_record* rec) {
  int r = clonefd_reap(w->fd, w->pid, rec, 0);
  if (r == -EAGAIN) return r;
  // Out of libuv's epoll before the fd number can be reused.
  StopWatching(w);
  close(w->fd);
  w->fd = -1;
  return r;
}

void OnChildReadable(uv_poll_t* handle, int status, int events) {
  (void)status;
  (void)events;
  Watch* w = static_cast<Watch*>(handle->data);
  clonefd_record rec;
  if (ReapAndStop(w, &rec) == -EAGAIN) {
    // Exited, but a tracer holds the zombie until it waits or detaches.
    PollLater(w);
    return;
  }
  // The child is reaped either way; JavaScript hears of it only if the
  // environment can still run it.
  napi_env env = w->state->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value v = RecordValue(env, rec);
    bool ignored;
    if (v != nullptr) CallFromLoop(w, 1, &v, &ignored);
    napi_close_handle_scope(env, scope);
  }
  ReleaseJs(w);
}

}  // namespace

// spawn(paths, argv, envp|null, cwd|null, stdio: Int32Array, flags, uid,
//       gid, onExit, out: Int32Array[3]) → handle | undefined
// out = [errno, stage, pid]: on failure errno > 0 and nothing is left.
// onExit(record) is called once, from the loop, after the reap.
napi_value Spawn(napi_env env, napi_callback_info info) {
  Args a(env, info);
  EnvState* s = State(env);
  std::vector<std::string> paths = a.strs(0), argv = a.strs(1), envp;
  bool own_env = !a.isNull(2);
  if (own_env) envp = a.strs(2);
  bool has_cwd = !a.isNull(3);
  std::string cwd = has_cwd ? a.str(3) : std::string();
  size_t nstdio = 0, nout = 0;
  int32_t* stdio = a.i32array(4, &nstdio);
  int flags = a.i32(5);
  uint32_t uid = a.u32(6), gid = a.u32(7);
  napi_value on_exit = a.raw(8);
  int32_t* out = a.i32array(9, &nout);
  int cgroup_fd = a.i32(10);  // -1, or the cgroup directory to start the child in (still the caller's)
  if (!a.ok() || s == nullptr || nout < 3) return nullptr;

  std::vector<char*> cpaths = CStrings(paths), cargv = CStrings(argv), cenv;
  if (own_env) cenv = CStrings(envp);
  clonefd_plan plan;
  clonefd_plan_init(&plan);
  plan.paths = cpaths.data();
  plan.argv = cargv.data();
  plan.envp = own_env ? cenv.data() : environ;
  plan.cwd = has_cwd ? cwd.c_str() : nullptr;
  plan.stdio = stdio;
  plan.nstdio = static_cast<int>(nstdio);
  plan.flags = flags & ~(kKillWithParent | kKillTree);
  if (flags & kKillWithParent) {
    // PR_SET_PDEATHSIG follows the thread that clones: this one.
    plan.pdeath_signal = SIGKILL;
    plan.parent_pid = getpid();
  }
  plan.uid = uid;
  plan.gid = gid;
  plan.cgroup_fd = cgroup_fd;

  int pidfd = -1;
  long pid = clonefd_spawn_vfork(&plan, &pidfd);
  out[0] = pid < 0 ? static_cast<int32_t>(-pid) : 0;
  out[1] = plan.stage;
  out[2] = pid < 0 ? 0 : static_cast<int32_t>(pid);
  if (pid < 0) return nullptr;

  int err = 0;
  Watch* w = StartWatch(s, WatchKind::kChild, pidfd, static_cast<pid_t>(pid), OnChildReadable, &err);
  napi_value handle = w ? WatchHandle(env, w, on_exit) : nullptr;
  if (handle == nullptr) {
    // The program runs but cannot be watched (or handed to JavaScript):
    // kill it and reap it, so that a failed spawn leaves nothing behind.
    SYS4(__NR_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    if (clonefd_reaper_adopt(pidfd) != 0) {
      clonefd_kill_and_reap(pidfd);
      close(pidfd);
    }
    out[0] = err ? -err : ENOMEM;
    out[1] = CLONEFD_STAGE_WATCH;
    return nullptr;
  }
  return handle;
}

// reap(child, block) → record | -errno (-EAGAIN: still running; -ECHILD:
// already reaped).
napi_value Reap(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Watch* w = UnwrapWatch(env, a.raw(0));
  bool block = a.flag(1);
  if (!a.ok() || w == nullptr) return nullptr;
  if (w->fd < 0) return Number(env, -ECHILD);
  struct pollfd p = {w->fd, POLLIN, 0};
  int n;
  do n = poll(&p, 1, block ? -1 : 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Number(env, -errno);
  if (n == 0) return Number(env, -EAGAIN);
  clonefd_record rec;
  int r;
  // Readable, and still EAGAIN: a tracer holds the zombie. Blocking means
  // until it lets go.
  while ((r = ReapAndStop(w, &rec)) == -EAGAIN && block) poll(nullptr, 0, 10);
  if (r == -EAGAIN) return Number(env, -EAGAIN);
  ReleaseJs(w);
  return RecordValue(env, rec);
}

// kill(child, signal) → 0 | -errno (-ESRCH once reaped: the pidfd never
// reaches a recycled pid).
napi_value Kill(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Watch* w = UnwrapWatch(env, a.raw(0));
  int sig = a.i32(1);
  if (!a.ok() || w == nullptr) return nullptr;
  if (w->fd < 0) return Number(env, -ESRCH);
  return Number(env, static_cast<double>(SYS4(__NR_pidfd_send_signal, w->fd, sig, nullptr, 0)));
}

// ref(watch, on): whether the watch keeps the loop alive.
napi_value Ref(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Watch* w = UnwrapWatch(env, a.raw(0));
  bool on = a.flag(1);
  if (!a.ok() || w == nullptr) return nullptr;
  uv_handle_t* h = reinterpret_cast<uv_handle_t*>(w->poll);
  if (h && !uv_is_closing(h)) {
    if (on) uv_ref(h);
    else uv_unref(h);
    if (w->deferred) UpdateRetryRef(w->state);
  }
  return nullptr;
}

// openPidfd(child, cloexec, nonblock) → fd | -errno. A pidfd of its own
// open file description, so the caller's O_NONBLOCK choice is independent
// of ours (libuv makes the watched one non-blocking).
napi_value OpenPidfd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Watch* w = UnwrapWatch(env, a.raw(0));
  bool cloexec = a.flag(1), nonblock = a.flag(2);
  if (!a.ok() || w == nullptr) return nullptr;
  if (w->fd < 0) return Number(env, -ESRCH);
  long fd = SYS2(__NR_pidfd_open, w->pid, nonblock ? PIDFD_NONBLOCK : 0);
  if (fd < 0) return Number(env, static_cast<double>(fd));
  // pidfd_open names a pid: make sure it was still our child when it ran.
  // If a foreign waitpid reaped it meanwhile, the pid may be another
  // process now, and the child is gone: nothing to hand out (ESRCH).
  siginfo_t si;
  if (sys_waitid_pidfd(w->fd, &si, WEXITED | WNOHANG | WNOWAIT | __WALL, nullptr) == -ECHILD) {
    close(static_cast<int>(fd));
    return Number(env, -ESRCH);
  }
  if (!cloexec && fcntl(static_cast<int>(fd), F_SETFD, 0) < 0) {
    int err = errno;
    close(static_cast<int>(fd));
    return Number(env, -err);
  }
  TrackUserFd(State(env), static_cast<int>(fd));
  return Number(env, static_cast<double>(fd));
}

// clonePath() → 'clone3' | 'clone': the path the last spawn took.
napi_value ClonePath(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v = nullptr;
  if (napi_create_string_utf8(env, clonefd_clone_path(), NAPI_AUTO_LENGTH, &v) != napi_ok) return nullptr;
  return v;
}

// reaperPending() → children the process-wide reaper holds (tests).
napi_value ReaperPending(napi_env env, napi_callback_info info) {
  (void)info;
  return Number(env, clonefd_reaper_pending());
}

// probe() → 0 when pidfds work (Linux >= 5.4), else -errno.
napi_value Probe(napi_env env, napi_callback_info info) {
  (void)info;
  siginfo_t si;
  long r = sys_waitid_pidfd(0x7fffffff, &si, WEXITED | WNOHANG, nullptr);
  return Number(env, r == -EBADF ? 0 : (r < 0 ? static_cast<double>(r) : -ENOSYS));
}

}  // namespace clonefd
