// The Node binding of the direct engine: spawn (child.h), watch (uv_poll on
// the pidfd in the calling environment's loop), reap (reap.h), and the small
// fd utilities the TypeScript layer needs. It returns numbers and negative
// errnos; TypeScript validates arguments and builds the errors.
#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <ctime>
#include <unordered_map>

#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "fdpass.h"
#include "helper_start.h"
#include "protocol.h"
#include "reap.h"
#include "reaper.h"
#include "sys.h"

extern char** environ;

namespace {

#ifndef __WALL
#define __WALL 0x40000000
#endif
#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif

// Slots of the record handed to JavaScript (src/binding.ts mirrors them).
enum RecordSlot {
  kCode, kStatus, kUtime, kStime, kPid, kSource, kRusageKnown,
  kRuUtimeUs, kRuStimeUs, kMaxRss, kMinflt, kMajflt, kInblock, kOublock, kNvcsw, kNivcsw,
  kRecordSize
};

// Spawn flag beyond child.h's: kill the child when its creating thread exits.
constexpr int kKillWithParent = 0x8;
// JavaScript sends one set of spawn flags to either engine (src/options.ts
// spawnFlags): the plan's and the wire's values must agree.
static_assert(CLONEFD_SETSID == CLONEFD_REQ_SETSID && CLONEFD_SETUID == CLONEFD_REQ_SETUID &&
                  CLONEFD_SETGID == CLONEFD_REQ_SETGID && kKillWithParent == CLONEFD_REQ_KILL_WITH_PARENT,
              "spawn flags differ between child.h and protocol.h");

const napi_type_tag kChildTag = {0x636c6f6e65666400ULL, 0x6368696c64000001ULL};

struct EnvState;

// What one uv_poll_t watches: a child of the direct engine (kChild: reaped
// when its pidfd is readable), or an fd of the helper engine (kFd: an
// environment socket or an orphan's pidfd, owned by the watch; JavaScript
// is called each time it is readable). Two owners: the JavaScript External
// (until its finalizer runs) and the uv_poll_t (until its close callback
// runs). The struct is freed when both are gone.
enum Kind { kChild, kFd };

struct Child {
  Kind kind = kChild;
  EnvState* state = nullptr;
  pid_t pid = 0;
  int pidfd = -1;              // private; closed at the reap or given to the reaper
  uv_poll_t* poll = nullptr;   // heap; freed only in its close callback
  napi_ref on_exit = nullptr;  // strong while watched: the owner lives until exit
  napi_async_context async_ctx = nullptr;
  bool js_owned = true;
  bool closed_by_teardown = false;
  Child* prev = nullptr;       // EnvState::watched list
  Child* next = nullptr;
};

// Per environment (main thread, each worker): never statics.
// Identity of an fd handed to the user, so teardown closes it only if the
// number still names the same file (pidfs gives every process its own inode).
struct FdId {
  dev_t dev;
  ino_t ino;
};

struct EnvState {
  napi_env env = nullptr;
  uv_loop_t* loop = nullptr;
  Child* watched = nullptr;
  // fds owned by JavaScript (handed to the user, or the helper engine's
  // private pidfds) and not yet closed through closeFd: a worker torn down
  // runs no finalizers, so teardown releases them.
  std::unordered_map<int, FdId> user_fds;
  napi_async_cleanup_hook_handle cleanup = nullptr;
  int closing = 0;
  bool tearing_down = false;
};

void MaybeFree(Child* c) {
  if (!c->js_owned && c->poll == nullptr) delete c;
}

void Unlink(Child* c) {
  EnvState* s = c->state;
  if (c->prev) c->prev->next = c->next;
  else if (s->watched == c) s->watched = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = nullptr;
}

void FinishTeardown(EnvState* s) {
  napi_remove_async_cleanup_hook(s->cleanup);
  delete s;
}

void OnPollClosed(uv_handle_t* handle) {
  Child* c = static_cast<Child*>(handle->data);
  delete reinterpret_cast<uv_poll_t*>(handle);
  c->poll = nullptr;
  if (c->kind == kFd && c->pidfd >= 0) {
    // A watched fd lives exactly as long as its watch.
    close(c->pidfd);
    c->pidfd = -1;
  }
  if (c->closed_by_teardown) {
    EnvState* s = c->state;
    c->state = nullptr;
    if (--s->closing == 0) FinishTeardown(s);
  }
  MaybeFree(c);
}

// Drops what keeps the JavaScript owner alive. Safe during teardown.
void ReleaseJs(Child* c, napi_env env) {
  if (c->on_exit) {
    napi_delete_reference(env, c->on_exit);
    c->on_exit = nullptr;
  }
  if (c->async_ctx) {
    napi_async_destroy(env, c->async_ctx);
    c->async_ctx = nullptr;
  }
}

void StopWatching(Child* c) {
  if (c->poll && !uv_is_closing(reinterpret_cast<uv_handle_t*>(c->poll))) {
    Unlink(c);
    uv_close(reinterpret_cast<uv_handle_t*>(c->poll), OnPollClosed);
  }
}

// The record as a Float64Array (Slot layout), or -errno as a number;
// nullptr when the environment cannot make values any more (it is being
// torn down, or JavaScript may no longer run there).
napi_value RecordOrError(napi_env env, int r, const clonefd_exit& ex, pid_t pid) {
  napi_value v = nullptr;
  if (r < 0) {
    if (napi_create_int32(env, r, &v) != napi_ok) return nullptr;
    return v;
  }
  napi_value buf = nullptr;
  void* data = nullptr;
  if (napi_create_arraybuffer(env, kRecordSize * sizeof(double), &data, &buf) != napi_ok || data == nullptr) return nullptr;
  double* d = static_cast<double*>(data);
  d[kCode] = ex.code;
  d[kStatus] = ex.status;
  d[kUtime] = ex.utime == CLONEFD_TIME_UNKNOWN ? -1 : static_cast<double>(ex.utime);
  d[kStime] = ex.stime == CLONEFD_TIME_UNKNOWN ? -1 : static_cast<double>(ex.stime);
  d[kPid] = pid;
  d[kSource] = ex.source;
  d[kRusageKnown] = ex.rusage_known;
  d[kRuUtimeUs] = ex.ru.ru_utime.tv_sec * 1e6 + ex.ru.ru_utime.tv_usec;
  d[kRuStimeUs] = ex.ru.ru_stime.tv_sec * 1e6 + ex.ru.ru_stime.tv_usec;
  d[kMaxRss] = ex.ru.ru_maxrss;
  d[kMinflt] = ex.ru.ru_minflt;
  d[kMajflt] = ex.ru.ru_majflt;
  d[kInblock] = ex.ru.ru_inblock;
  d[kOublock] = ex.ru.ru_oublock;
  d[kNvcsw] = ex.ru.ru_nvcsw;
  d[kNivcsw] = ex.ru.ru_nivcsw;
  if (napi_create_typedarray(env, napi_float64_array, kRecordSize, buf, 0, &v) != napi_ok) return nullptr;
  return v;
}

// Waits for an exited child through its pidfd and reaps it, whatever the
// fd's O_NONBLOCK (libuv sets it on every polled fd). Last resorts only.
void ReapBlocking(int pidfd) {
  struct pollfd p = {pidfd, POLLIN, 0};
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
  siginfo_t si;
  long r;
  do r = SYS5(__NR_waitid, P_PIDFD, pidfd, &si, WEXITED | __WALL, nullptr);
  while (r == -EINTR);
}

// Reap now (the pidfd is readable) and stop watching. Returns the reap's
// result; the record is in *ex.
int ReapAndStop(Child* c, clonefd_exit* ex) {
  int r = clonefd_reap(c->pidfd, c->pid, ex);
  if (r == -EAGAIN) return r;  // not exited after all: keep watching
  // Out of libuv's epoll before the fd number can be reused.
  StopWatching(c);
  close(c->pidfd);
  c->pidfd = -1;
  return r;
}

// Calls fn(args) from a uv callback: a HandleScope, the async context of
// the spawn, and an exception thrown there becomes an uncaught exception.
void CallFromLoop(napi_env env, napi_async_context ctx, napi_ref fn_ref, size_t argc, napi_value* argv) {
  napi_value fn, recv;
  if (napi_get_reference_value(env, fn_ref, &fn) != napi_ok || fn == nullptr) return;
  napi_get_global(env, &recv);  // make_callback needs an object receiver
  napi_status st = napi_make_callback(env, ctx, recv, fn, argc, argv, nullptr);
  if (st == napi_pending_exception) {
    napi_value err;
    if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
  }
}

void OnFdReady(Child* c) {
  napi_env env = c->state->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  CallFromLoop(env, c->async_ctx, c->on_exit, 0, nullptr);
  napi_close_handle_scope(env, scope);
}

void OnPoll(uv_poll_t* handle, int status, int events) {
  (void)status;
  (void)events;
  Child* c = static_cast<Child*>(handle->data);
  if (c->kind == kFd) {
    OnFdReady(c);
    return;
  }
  EnvState* s = c->state;
  napi_env env = s->env;
  clonefd_exit ex;
  int r = ReapAndStop(c, &ex);
  if (r == -EAGAIN) return;

  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    ReleaseJs(c, env);
    return;
  }
  // The child is reaped either way; JavaScript only hears of it if the
  // environment can still run it.
  napi_value record = RecordOrError(env, r, ex, c->pid);
  // With the spawn's async context: AsyncLocalStorage sees the spawner's
  // store, and microtasks run afterwards as for any callback.
  if (record != nullptr) CallFromLoop(env, c->async_ctx, c->on_exit, 1, &record);
  ReleaseJs(c, env);
  napi_close_handle_scope(env, scope);
}

void OnEnvTeardown(napi_async_cleanup_hook_handle handle, void* arg) {
  EnvState* s = static_cast<EnvState*>(arg);
  s->cleanup = handle;
  s->tearing_down = true;
  // No JavaScript runs from here on. Children still running are handed to
  // the process-wide reaper so none is left a zombie.
  while (Child* c = s->watched) {
    Unlink(c);
    if (c->kind == kFd) {
      // Closed with its watch (OnPollClosed): the helper sees this
      // environment's socket close and kills its killWithParent children.
    } else if (clonefd_reaper_adopt(c->pidfd) == 0) {
      c->pidfd = -1;
    } else {
      // No reaper thread could be made: kill and reap here, as the last
      // resort that still leaves no zombie behind.
      SYS4(__NR_pidfd_send_signal, c->pidfd, SIGKILL, nullptr, 0);
      ReapBlocking(c->pidfd);
      close(c->pidfd);
      c->pidfd = -1;
    }
    ReleaseJs(c, s->env);
    c->closed_by_teardown = true;
    s->closing++;
    uv_close(reinterpret_cast<uv_handle_t*>(c->poll), OnPollClosed);
  }
  for (const auto& entry : s->user_fds) {
    struct stat st;
    if (fstat(entry.first, &st) == 0 && st.st_dev == entry.second.dev && st.st_ino == entry.second.ino) {
      close(entry.first);
    }
  }
  s->user_fds.clear();
  if (s->closing == 0) FinishTeardown(s);
}

EnvState* State(const Napi::Env& env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<EnvState*>(data);
}

Child* Unwrap(const Napi::Value& v) {
  if (!v.IsExternal()) return nullptr;
  Napi::External<Child> ext = v.As<Napi::External<Child>>();
  if (!ext.CheckTypeTag(&kChildTag)) return nullptr;
  return ext.Data();
}

Child* ChildArg(const Napi::CallbackInfo& info) {
  Child* c = Unwrap(info[0]);
  if (!c) throw Napi::TypeError::New(info.Env(), "clonefd: not a child handle");
  return c;
}

// A Child whose poll has started: JavaScript's callback is held (strongly,
// until the exit or unwatch), the child is listed for the teardown, and
// JavaScript gets its tagged handle.
Napi::Value Watched(Napi::Env env, EnvState* s, Child* c, napi_value fn, const char* resource) {
  napi_create_reference(env, fn, 1, &c->on_exit);
  napi_async_init(env, nullptr, Napi::String::New(env, resource), &c->async_ctx);
  c->next = s->watched;
  if (s->watched) s->watched->prev = c;
  s->watched = c;
  Napi::External<Child> ext = Napi::External<Child>::New(env, c, [](Napi::Env, Child* child) {
    child->js_owned = false;
    MaybeFree(child);
  });
  ext.TypeTag(&kChildTag);
  return ext;
}

// A JavaScript string array as a NULL-terminated char* vector.
struct StringArray {
  std::vector<std::string> storage;
  std::vector<char*> ptrs;
  explicit StringArray(const Napi::Value& v) {
    Napi::Array a = v.As<Napi::Array>();
    uint32_t n = a.Length();
    storage.reserve(n);
    for (uint32_t i = 0; i < n; i++) storage.push_back(a.Get(i).As<Napi::String>().Utf8Value());
    ptrs.reserve(n + 1);
    for (auto& s : storage) ptrs.push_back(&s[0]);
    ptrs.push_back(nullptr);
  }
  char* const* get() { return ptrs.data(); }
};

// spawn(paths, argv, envp|null, cwd|null, stdio: Int32Array, flags, uid,
//       gid, onExit, out: Int32Array) → External | undefined
// out = [errno, stage, pid]: on failure errno > 0 and nothing is left.
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnvState* s = State(env);
  StringArray paths(info[0]);
  StringArray argv(info[1]);
  std::unique_ptr<StringArray> envp;
  if (!info[2].IsNull()) envp.reset(new StringArray(info[2]));
  std::string cwd;
  bool has_cwd = !info[3].IsNull();
  if (has_cwd) cwd = info[3].As<Napi::String>().Utf8Value();
  Napi::Int32Array stdio = info[4].As<Napi::Int32Array>();
  Napi::Function on_exit = info[8].As<Napi::Function>();
  Napi::Int32Array out = info[9].As<Napi::Int32Array>();

  clonefd_plan plan;
  memset(&plan, 0, sizeof plan);
  plan.paths = paths.get();
  plan.argv = argv.get();
  plan.envp = envp ? envp->get() : environ;
  plan.cwd = has_cwd ? cwd.c_str() : nullptr;
  plan.cwd_fd = -1;
  plan.umask = -1;
  plan.err_fd = -1;
  plan.hold_fd = -1;
  plan.stdio = stdio.Data();
  plan.nstdio = static_cast<int>(stdio.ElementLength());
  plan.flags = info[5].As<Napi::Number>().Int32Value();
  if (plan.flags & kKillWithParent) {
    // PR_SET_PDEATHSIG follows the thread that clones: this one.
    plan.pdeath_signal = SIGKILL;
    plan.parent_pid = getpid();
    plan.flags &= ~kKillWithParent;
  }
  plan.uid = info[6].As<Napi::Number>().Uint32Value();
  plan.gid = info[7].As<Napi::Number>().Uint32Value();

  int pidfd = -1;
  long pid = clonefd_spawn_vfork(&plan, &pidfd);
  out[0] = pid < 0 ? static_cast<int32_t>(-pid) : 0;
  out[1] = plan.stage;
  out[2] = pid < 0 ? 0 : static_cast<int32_t>(pid);
  if (pid < 0) return env.Undefined();

  Child* c = new Child();
  c->state = s;
  c->pid = static_cast<pid_t>(pid);
  c->pidfd = pidfd;
  c->poll = new uv_poll_t();
  c->poll->data = c;
  int r = uv_poll_init(s->loop, c->poll, pidfd);
  bool registered = r == 0;
  if (r == 0) r = uv_poll_start(c->poll, UV_READABLE, OnPoll);
  if (r != 0) {
    // The program runs but cannot be watched: kill it and hand it to the
    // reaper, so that a failed spawn leaves nothing behind.
    SYS4(__NR_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    if (clonefd_reaper_adopt(pidfd) != 0) {
      ReapBlocking(pidfd);
      close(pidfd);
    }
    c->pidfd = -1;
    c->js_owned = false;
    // Only a handle that uv_poll_init registered may be closed.
    if (registered) {
      uv_close(reinterpret_cast<uv_handle_t*>(c->poll), OnPollClosed);
    } else {
      delete c->poll;
      delete c;
    }
    out[0] = -r;
    out[1] = CLONEFD_STAGE_WATCH;
    return env.Undefined();
  }
  return Watched(env, s, c, on_exit, "CLONEFD_CHILD");
}

// reap(child, block) → record | -errno (-EAGAIN: still running).
Napi::Value ReapNow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Child* c = ChildArg(info);
  bool block = info[1].ToBoolean();
  if (c->pidfd < 0) return Napi::Number::New(env, -ECHILD);
  struct pollfd p = {c->pidfd, POLLIN, 0};
  int n;
  do n = poll(&p, 1, block ? -1 : 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Napi::Number::New(env, -errno);
  if (n == 0) return Napi::Number::New(env, -EAGAIN);
  clonefd_exit ex;
  int r = ReapAndStop(c, &ex);
  if (r == -EAGAIN) return Napi::Number::New(env, -EAGAIN);
  ReleaseJs(c, env);
  napi_value v = RecordOrError(env, r, ex, c->pid);
  if (v == nullptr) return env.Undefined();
  return Napi::Value(env, v);
}

// kill(child, signal) → 0 | -errno (-ESRCH once reaped: the pidfd never
// reaches a recycled pid).
Napi::Value Kill(const Napi::CallbackInfo& info) {
  Child* c = ChildArg(info);
  if (c->pidfd < 0) return Napi::Number::New(info.Env(), -ESRCH);
  long r = SYS4(__NR_pidfd_send_signal, c->pidfd, info[1].As<Napi::Number>().Int32Value(), nullptr, 0);
  return Napi::Number::New(info.Env(), static_cast<double>(r));
}

Napi::Value Ref(const Napi::CallbackInfo& info) {
  Child* c = ChildArg(info);
  if (c->poll && !uv_is_closing(reinterpret_cast<uv_handle_t*>(c->poll))) {
    if (info[1].ToBoolean()) uv_ref(reinterpret_cast<uv_handle_t*>(c->poll));
    else uv_unref(reinterpret_cast<uv_handle_t*>(c->poll));
  }
  return info.Env().Undefined();
}

// openPidfd(child, cloexec, nonblock) → fd | -errno. A pidfd of its own
// open file description, so the caller's O_NONBLOCK choice is independent
// of ours (libuv makes the watched one non-blocking).
Napi::Value OpenPidfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Child* c = ChildArg(info);
  bool cloexec = info[1].ToBoolean();
  bool nonblock = info[2].ToBoolean();
  if (c->pidfd < 0) return Napi::Number::New(env, -ESRCH);
  long fd = SYS2(__NR_pidfd_open, c->pid, nonblock ? PIDFD_NONBLOCK : 0);
  if (fd < 0) return Napi::Number::New(env, static_cast<double>(fd));
  // pidfd_open names a pid: make sure it was still our child when it ran.
  // If a foreign waitpid reaped it meanwhile, the pid may be another
  // process now, and the child is gone: nothing to hand out (ESRCH).
  siginfo_t si;
  long r = SYS5(__NR_waitid, P_PIDFD, c->pidfd, &si, WEXITED | WNOHANG | WNOWAIT | __WALL, nullptr);
  if (r == -ECHILD) {
    close(static_cast<int>(fd));
    return Napi::Number::New(env, -ESRCH);
  }
  if (!cloexec && fcntl(static_cast<int>(fd), F_SETFD, 0) < 0) {
    int err = errno;
    close(static_cast<int>(fd));
    return Napi::Number::New(env, -err);
  }
  struct stat st;
  if (fstat(static_cast<int>(fd), &st) == 0) State(env)->user_fds[static_cast<int>(fd)] = FdId{st.st_dev, st.st_ino};
  return Napi::Number::New(env, static_cast<double>(fd));
}

// closeFd(fd) → 0 | -errno. Closes an fd this addon created; fs.closeSync
// would make a worker warn about an fd it never saw opened.
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  State(info.Env())->user_fds.erase(fd);
  // Linux releases the fd even when close reports EINTR: never retry.
  int r = close(fd);
  return Napi::Number::New(info.Env(), r < 0 && errno != EINTR ? -errno : 0);
}

Napi::Value FdPair(Napi::Env env, int a, int b) {
  Napi::Array pair = Napi::Array::New(env, 2);
  pair[0u] = Napi::Number::New(env, a);
  pair[1u] = Napi::Number::New(env, b);
  return pair;
}

// socketpair() → [parentEnd, childEnd] | -errno. Both CLOEXEC: the child's
// end is placed by dup3 in the child, which clears the flag there only.
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return Napi::Number::New(env, -errno);
  return FdPair(env, sv[0], sv[1]);
}

// fdFlags(fd) → [F_GETFD, F_GETFL] | -errno (used to honour and test flags).
Napi::Value FdFlags(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int fdflags = fcntl(fd, F_GETFD);
  int flflags = fdflags < 0 ? -1 : fcntl(fd, F_GETFL);
  if (fdflags < 0 || flflags < 0) return Napi::Number::New(env, -errno);
  Napi::Array a = Napi::Array::New(env, 2);
  a[0u] = Napi::Number::New(env, fdflags);
  a[1u] = Napi::Number::New(env, flflags);
  return a;
}

Napi::Value SetLegacyClone(const Napi::CallbackInfo& info) {
  clonefd_force_legacy_clone(info[0].ToBoolean());
  return info.Env().Undefined();
}

Napi::Value ClonePath(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), clonefd_clone_path());
}

Napi::Value ReaperPending(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), clonefd_reaper_pending());
}

// probe() → 0 when pidfds work (Linux >= 5.4), else -errno.
Napi::Value Probe(const Napi::CallbackInfo& info) {
  siginfo_t si;
  long r = SYS5(__NR_waitid, P_PIDFD, 0x7fffffff, &si, WEXITED | WNOHANG, nullptr);
  return Napi::Number::New(info.Env(), r == -EBADF ? 0 : (r < 0 ? static_cast<double>(r) : -ENOSYS));
}


// ---- the helper engine's primitives -------------------------------------
// The orchestration (request ids, dispatch, recovery) is TypeScript
// (src/helper.ts); here are the system calls and the wire format.

// watchFd(fd, onReadable) → External. The watch owns fd from now on: it is
// closed with the watch (unwatch, or the environment's teardown).
Napi::Value WatchFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnvState* s = State(env);
  int fd = info[0].As<Napi::Number>().Int32Value();
  // The watch owns it now (closed with it): not an owned fd any more, or a
  // teardown would close it twice.
  s->user_fds.erase(fd);
  Child* c = new Child();
  c->kind = kFd;
  c->state = s;
  c->pidfd = fd;
  c->poll = new uv_poll_t();
  c->poll->data = c;
  int r = uv_poll_init(s->loop, c->poll, fd);
  if (r == 0) r = uv_poll_start(c->poll, UV_READABLE, OnPoll);
  if (r != 0) {
    c->js_owned = false;
    if (c->poll->type == UV_POLL) {
      uv_close(reinterpret_cast<uv_handle_t*>(c->poll), OnPollClosed);  // closes fd
    } else {
      delete c->poll;
      close(fd);
      delete c;
    }
    return Napi::Number::New(env, r);
  }
  return Watched(env, s, c, info[1], "CLONEFD_WATCH");
}

// unwatch(watch): stops watching and closes the fd. Idempotent.
Napi::Value Unwatch(const Napi::CallbackInfo& info) {
  Child* c = ChildArg(info);
  if (c->kind == kFd) {
    StopWatching(c);
    ReleaseJs(c, info.Env());
  }
  return info.Env().Undefined();
}

// The process's umask, read without changing it: umask(2) can only be
// read by setting it, which would briefly give other threads' new files
// the wrong mode. /proc/self/status has it (Linux >= 4.7).
int CurrentUmask() {
  static int fd = -1;
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  char buf[4096];
  pthread_mutex_lock(&mu);
  if (fd < 0) fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof buf - 1, 0);
  pthread_mutex_unlock(&mu);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* line = strstr(buf, "\nUmask:");
  if (!line) return -1;
  return static_cast<int>(strtol(line + 7, nullptr, 8));
}

// helperEnsure(fallbackPath, out: Int32Array[2]) → generation | -errno
// (out[1] = the stage when the exec of the helper failed).
Napi::Value HelperEnsure(const Napi::CallbackInfo& info) {
  std::string fallback = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : std::string();
  Napi::Int32Array out = info[1].As<Napi::Int32Array>();
  int stage = 0;
  long gen = clonefd_helper_ensure(fallback.c_str(), &stage);
  out[0] = clonefd_helper_from_memfd();
  out[1] = stage;
  return Napi::Number::New(info.Env(), static_cast<double>(gen));
}

Napi::Value HelperConnect(const Napi::CallbackInfo& info) {
  long gen = static_cast<long>(info[0].As<Napi::Number>().Int64Value());
  return Napi::Number::New(info.Env(), clonefd_helper_connect(gen));
}

Napi::Value HelperPid(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), clonefd_helper_pid());
}

void AppendStrings(std::string* payload, const Napi::Value& v, uint32_t* count) {
  Napi::Array a = v.As<Napi::Array>();
  uint32_t n = a.Length();
  for (uint32_t i = 0; i < n; i++) {
    std::string str = a.Get(i).As<Napi::String>().Utf8Value();
    payload->append(str.data(), str.size());
    payload->push_back('\0');
  }
  *count = n;
}

// helperSpawn(sock, id, paths, argv, envp|null, cwd|null, stdio: Int32Array,
//             flags, uid, gid, recordWriteFd, execWriteFd) → 0 | -errno
// Sends one SPAWN request. The caller keeps ownership of every fd it
// passes (they are duplicated into the helper by SCM_RIGHTS).
Napi::Value HelperSpawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = info[0].As<Napi::Number>().Int32Value();
  uint64_t id = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
  Napi::Int32Array stdio = info[6].As<Napi::Int32Array>();
  clonefd_spawn_req req;
  memset(&req, 0, sizeof req);
  req.flags = info[7].As<Napi::Number>().Uint32Value();
  req.uid = info[8].As<Napi::Number>().Uint32Value();
  req.gid = info[9].As<Napi::Number>().Uint32Value();
  int record_w = info[10].As<Napi::Number>().Int32Value();
  int exec_w = info[11].As<Napi::Number>().Int32Value();
  int mask = CurrentUmask();
  if (mask < 0) return Napi::Number::New(env, -ENOSYS);
  req.umask = static_cast<uint32_t>(mask);

  std::string payload;
  AppendStrings(&payload, info[2], &req.npaths);
  AppendStrings(&payload, info[3], &req.nargv);
  if (info[4].IsNull()) {
    // The process's real environment, as it is now.
    uint32_t n = 0;
    for (char** e = environ; *e; e++, n++) {
      payload.append(*e);
      payload.push_back('\0');
    }
    req.nenv = n;
  } else {
    AppendStrings(&payload, info[4], &req.nenv);
  }
  if (!info[5].IsNull()) {
    req.flags |= CLONEFD_REQ_HAS_CWD;
    std::string cwd = info[5].As<Napi::String>().Utf8Value();
    payload.append(cwd.data(), cwd.size());
    payload.push_back('\0');
  }
  if (payload.size() > CLONEFD_PAYLOAD_MAX) return Napi::Number::New(env, -E2BIG);
  req.payload_len = static_cast<uint32_t>(payload.size());

  // Passed fds: record pipe, Node's cwd, exec pipe, [payload memfd],
  // distinct stdio fds (native/protocol.h).
  int fds[CLONEFD_MAX_FDS];
  int nfds = 0;
  fds[nfds++] = record_w;
  int cwdfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cwdfd < 0) return Napi::Number::New(env, -errno);
  fds[nfds++] = cwdfd;
  fds[nfds++] = exec_w;
  int memfd = -1;
  bool inline_payload = payload.size() <= CLONEFD_INLINE_PAYLOAD_MAX;
  if (!inline_payload) {
    memfd = static_cast<int>(syscall(SYS_memfd_create, "clonefd-request", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    ssize_t w = memfd < 0 ? -1 : write(memfd, payload.data(), payload.size());
    // Sealed: what the helper reads is what was written.
    if (w == static_cast<ssize_t>(payload.size())) fcntl(memfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    if (w != static_cast<ssize_t>(payload.size())) {
      int err = memfd < 0 || w < 0 ? errno : EIO;
      if (memfd >= 0) close(memfd);
      close(cwdfd);
      return Napi::Number::New(env, -err);
    }
    req.flags |= CLONEFD_REQ_PAYLOAD_MEMFD;
    fds[nfds++] = memfd;
  }
  size_t nstdio = stdio.ElementLength();
  if (nstdio > CLONEFD_MAX_STDIO_REMOTE) {
    if (memfd >= 0) close(memfd);
    close(cwdfd);
    return Napi::Number::New(env, -E2BIG);
  }
  req.nstdio = static_cast<uint32_t>(nstdio);
  for (size_t i = 0; i < nstdio; i++) {
    int fd = stdio[i];
    if (fd < 0) {
      req.stdio[i] = -1;
      continue;
    }
    int k = -1;
    for (int j = inline_payload ? 3 : 4; j < nfds; j++)
      if (fds[j] == fd) k = j;
    if (k < 0) {
      k = nfds;
      fds[nfds++] = fd;
    }
    req.stdio[i] = k;
  }

  clonefd_msg_header h;
  memset(&h, 0, sizeof h);
  h.magic = CLONEFD_MAGIC;
  h.version = CLONEFD_PROTOCOL_VERSION;
  h.type = CLONEFD_MSG_SPAWN;
  h.id = id;
  struct iovec iov[3] = {{&h, sizeof h}, {&req, sizeof req}, {const_cast<char*>(payload.data()), payload.size()}};
  // Waits while the socket is full: the environment socket is ours alone
  // and the helper drains it promptly. A dead helper is EPIPE, not SIGPIPE.
  ssize_t n;
  for (;;) {
    n = clonefd_send_fds(sock, iov, inline_payload ? 3 : 2, fds, nfds, MSG_DONTWAIT);
    if (n != -EAGAIN && n != -ENOBUFS) break;
    struct pollfd p = {sock, POLLOUT, 0};
    if (poll(&p, 1, -1) < 0 && errno != EINTR) break;
  }
  close(cwdfd);
  if (memfd >= 0) close(memfd);
  return Napi::Number::New(env, n < 0 ? static_cast<double>(n) : 0);
}

// Slots of a received message (src/helper.ts mirrors them).
enum MsgSlot {
  kMsgType, kMsgId, kMsgPid, kMsgErr, kMsgStage, kMsgFd,
  kMsgRecord,  // kRecordSize slots of the record follow (EXIT)
  kMsgSize = kMsgRecord + kRecordSize
};

// helperRecv(sock, out: Float64Array, block) → type | 0 (EOF) | -errno
// (-EAGAIN: nothing there). A malformed message is dropped: -EPROTO.
Napi::Value HelperRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = info[0].As<Napi::Number>().Int32Value();
  Napi::Float64Array out = info[1].As<Napi::Float64Array>();
  bool block = info[2].ToBoolean();
  struct {
    clonefd_msg_header h;
    union {
      clonefd_spawned spawned;
      clonefd_exit_msg exit;
    } body;
  } msg;
  int fds[4];
  int nfds = 0, trunc = 0;
  ssize_t n;
  for (;;) {
    // libuv made the socket non-blocking (uv_poll_init): wait with poll.
    n = clonefd_recv_fds(sock, &msg, sizeof msg, fds, 4, &nfds, MSG_DONTWAIT, &trunc);
    if (n != -EAGAIN || !block) break;
    struct pollfd p = {sock, POLLIN, 0};
    if (poll(&p, 1, -1) < 0 && errno != EINTR) break;
  }
  if (n < 0) return Napi::Number::New(env, static_cast<double>(n));
  if (n == 0) return Napi::Number::New(env, 0);
  auto reject = [&]() {
    for (int i = 0; i < nfds; i++) close(fds[i]);
    return Napi::Number::New(env, -EPROTO);
  };
  if (trunc || n < static_cast<ssize_t>(sizeof msg.h) ||
      msg.h.magic != CLONEFD_MAGIC || msg.h.version != CLONEFD_PROTOCOL_VERSION)
    return reject();
  double* d = out.Data();
  for (int i = 0; i < kMsgSize; i++) d[i] = 0;
  d[kMsgType] = msg.h.type;
  d[kMsgId] = static_cast<double>(msg.h.id);
  d[kMsgFd] = -1;
  if (msg.h.type == CLONEFD_MSG_SPAWNED && n == sizeof msg.h + sizeof msg.body.spawned) {
    const clonefd_spawned& sp = msg.body.spawned;
    if ((sp.err == 0) != (nfds == 1)) return reject();
    d[kMsgPid] = sp.pid;
    d[kMsgErr] = sp.err;
    d[kMsgStage] = sp.stage;
    if (nfds == 1) {
      d[kMsgFd] = fds[0];
      // The child's pidfd: JavaScript owns it now, but a worker torn down
      // runs no JavaScript, so the environment closes it then.
      struct stat st;
      if (fstat(fds[0], &st) == 0) State(env)->user_fds[fds[0]] = FdId{st.st_dev, st.st_ino};
    }
    return Napi::Number::New(env, msg.h.type);
  }
  if (msg.h.type == CLONEFD_MSG_EXIT && n == sizeof msg.h + sizeof msg.body.exit && nfds == 0) {
    const clonefd_exit_msg& e = msg.body.exit;
    double* r = d + kMsgRecord;
    d[kMsgPid] = e.pid;
    r[kCode] = e.code;
    r[kStatus] = e.status;
    r[kUtime] = e.utime == CLONEFD_TIME_UNKNOWN ? -1 : static_cast<double>(e.utime);
    r[kStime] = e.stime == CLONEFD_TIME_UNKNOWN ? -1 : static_cast<double>(e.stime);
    r[kPid] = e.pid;
    r[kSource] = CLONEFD_SOURCE_WAITID;
    r[kRusageKnown] = e.rusage_known;
    r[kRuUtimeUs] = static_cast<double>(e.ru_utime_us);
    r[kRuStimeUs] = static_cast<double>(e.ru_stime_us);
    r[kMaxRss] = static_cast<double>(e.ru_maxrss);
    r[kMinflt] = static_cast<double>(e.ru_minflt);
    r[kMajflt] = static_cast<double>(e.ru_majflt);
    r[kInblock] = static_cast<double>(e.ru_inblock);
    r[kOublock] = static_cast<double>(e.ru_oublock);
    r[kNvcsw] = static_cast<double>(e.ru_nvcsw);
    r[kNivcsw] = static_cast<double>(e.ru_nivcsw);
    return Napi::Number::New(env, msg.h.type);
  }
  return reject();
}

// waitExec(readEnd, out: Int32Array[3]) → 0 (exec'd) | 1 (failed) | -errno.
// out = [pid (0 if the child never wrote it), errno, stage]. Blocks until
// EOF: the child writes its pid, then {errno, stage} on failure.
Napi::Value WaitExec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Int32Array out = info[1].As<Napi::Int32Array>();
  int32_t rec[3] = {0, 0, 0};
  size_t got = 0;
  while (got < sizeof rec) {
    ssize_t n = read(fd, reinterpret_cast<char*>(rec) + got, sizeof rec - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Napi::Number::New(env, -errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out[0] = got >= sizeof(int32_t) ? rec[0] : 0;
  out[1] = rec[1];
  out[2] = rec[2];
  if (got == 0 || got == sizeof(int32_t)) return Napi::Number::New(env, 0);
  if (got != sizeof rec) return Napi::Number::New(env, -EPROTO);
  return Napi::Number::New(env, 1);
}

// recordPipe(cloexec, nonblock) → [readEnd, writeEnd] | -errno. The read end
// is the contract's fd (the user's flags; registered as a user fd), the
// write end goes to the helper and is closed here right after.
Napi::Value RecordPipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool cloexec = info[0].ToBoolean();
  bool nonblock = info[1].ToBoolean();
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return Napi::Number::New(env, -errno);
  if ((nonblock && fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) || (!cloexec && fcntl(p[0], F_SETFD, 0) < 0)) {
    int err = errno;
    close(p[0]);
    close(p[1]);
    return Napi::Number::New(env, -err);
  }
  struct stat st;
  if (fstat(p[0], &st) == 0) State(env)->user_fds[p[0]] = FdId{st.st_dev, st.st_ino};
  return FdPair(env, p[0], p[1]);
}

// dupUserFd(fd, cloexec, nonblock) → fd | -errno: a user-owned duplicate.
Napi::Value DupUserFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int src = info[0].As<Napi::Number>().Int32Value();
  bool cloexec = info[1].ToBoolean();
  bool nonblock = info[2].ToBoolean();
  int fd = fcntl(src, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
  if (fd < 0) return Napi::Number::New(env, -errno);
  if (nonblock) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
      int err = errno;
      close(fd);
      return Napi::Number::New(env, -err);
    }
  }
  struct stat st;
  if (fstat(fd, &st) == 0) State(env)->user_fds[fd] = FdId{st.st_dev, st.st_ino};
  return Napi::Number::New(env, fd);
}

// readRecord(fd, block, exitFd) → Float64Array [code, status, utime, stime] |
// 0 (EOF) | -errno. One read(2) of the 24-byte struct clonefd_info.
Napi::Value ReadRecord(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  bool block = info[1].ToBoolean();
  int exit_fd = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : -1;
  if (!block) {
    // Not readable yet: EAGAIN, unless the child has exited already (its
    // pidfd is readable): then the record is on its way, and the contract
    // says a read after the exit returns it, so wait for it.
    struct pollfd p[2] = {{fd, POLLIN, 0}, {exit_fd, POLLIN, 0}};
    int n;
    do n = poll(p, exit_fd >= 0 ? 2 : 1, 0);
    while (n < 0 && errno == EINTR);
    if (n == 0) return Napi::Number::New(env, -EAGAIN);
  }
  // Wait for the record (or EOF) whatever the fd's O_NONBLOCK: it is due
  // (blocking read, or the child has exited and the helper is writing it).
  struct pollfd w = {fd, POLLIN, 0};
  while (poll(&w, 1, -1) < 0 && errno == EINTR) {
  }
  struct {
    int32_t code, status;
    uint64_t utime, stime;
  } rec;
  ssize_t n;
  do n = read(fd, &rec, sizeof rec);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Napi::Number::New(env, -errno);
  if (n == 0) return Napi::Number::New(env, 0);
  if (n != sizeof rec) return Napi::Number::New(env, -EPROTO);
  Napi::Float64Array a = Napi::Float64Array::New(env, 4);
  a[0] = rec.code;
  a[1] = rec.status;
  a[2] = rec.utime == CLONEFD_TIME_UNKNOWN ? -1 : static_cast<double>(rec.utime);
  a[3] = rec.stime == CLONEFD_TIME_UNKNOWN ? -1 : static_cast<double>(rec.stime);
  return a;
}

// killPid(pid, signal) → 0 | -errno, through a pidfd opened now: for a
// child the helper made but could not announce before it died (it is
// nobody's to reap from here; it only must not run on).
Napi::Value KillPid(const Napi::CallbackInfo& info) {
  long fd = SYS2(__NR_pidfd_open, info[0].As<Napi::Number>().Int32Value(), 0);
  if (fd < 0) return Napi::Number::New(info.Env(), static_cast<double>(fd));
  long r = SYS4(__NR_pidfd_send_signal, fd, info[1].As<Napi::Number>().Int32Value(), nullptr, 0);
  close(static_cast<int>(fd));
  return Napi::Number::New(info.Env(), static_cast<double>(r));
}

// fdValid(fd) → true when fd is open (stdio numbers are checked before a
// spawn allocates fds that could take a closed number's place).
Napi::Value FdValid(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), fcntl(info[0].As<Napi::Number>().Int32Value(), F_GETFD) >= 0);
}

// waitReadable(fd) → 0 | -errno: blocks until fd polls readable.
Napi::Value WaitReadable(const Napi::CallbackInfo& info) {
  struct pollfd p = {info[0].As<Napi::Number>().Int32Value(), POLLIN, 0};
  int n;
  do n = poll(&p, 1, -1);
  while (n < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), n < 0 ? -errno : 0);
}

// killPidfd(pidfd, signal) → 0 | -errno.
Napi::Value KillPidfd(const Napi::CallbackInfo& info) {
  long r = SYS4(__NR_pidfd_send_signal, info[0].As<Napi::Number>().Int32Value(),
                info[1].As<Napi::Number>().Int32Value(), nullptr, 0);
  return Napi::Number::New(info.Env(), static_cast<double>(r));
}

// recoverExit(pidfd, pid) → record | -EAGAIN (still running) | -ECHILD (lost).
// For a child whose helper died: it is someone else's orphan now. Its
// status comes from the zombie's /proc/<pid>/stat (field 52, times 14-15)
// while the zombie lasts, confirmed by the pidfd (the pid cannot be reused
// before the reap), else from PIDFD_INFO_EXIT with times unknown.
Napi::Value RecoverExit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pidfd = info[0].As<Napi::Number>().Int32Value();
  pid_t pid = info[1].As<Napi::Number>().Int32Value();
  struct pollfd p = {pidfd, POLLIN, 0};
  int n;
  do n = poll(&p, 1, 0);
  while (n < 0 && errno == EINTR);
  if (n == 0) return Napi::Number::New(env, -EAGAIN);
  clonefd_exit ex;
  int r = clonefd_recover(pidfd, pid, &ex);
  if (r < 0) return Napi::Number::New(env, r);
  napi_value v = RecordOrError(env, 0, ex, pid);
  if (v == nullptr) return env.Undefined();
  return Napi::Value(env, v);
}

// ---- synchronous spawns (clonefd/child_process spawnSync) ----------------

// pipe() → [readEnd, writeEnd] | -errno, both CLOEXEC: spawnSync's stdio,
// and the helper engine's exec pipe (a child end is placed by dup3 in the
// child, which clears the flag there only).
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return Napi::Number::New(env, -errno);
  return FdPair(env, p[0], p[1]);
}

// drainSync(readFds: Int32Array, writeFd, input: Buffer|null, exitFd,
//           pidfd, timeoutMs, maxBuffer, killSignal) →
//   { outputs: Buffer[], timedOut, overflow, error }
// The loop of spawnSync: feeds input, collects every output pipe, and
// returns once the child has exited (exitFd readable) and every pipe is at
// EOF. On timeout or when the outputs pass maxBuffer, the child gets
// killSignal once and our pipe ends are closed (as Node does), so only its
// exit is waited for. Closes writeFd and the read fds it was given.
Napi::Value DrainSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Int32Array rfds = info[0].As<Napi::Int32Array>();
  int wfd = info[1].As<Napi::Number>().Int32Value();
  const char* input = nullptr;
  size_t input_len = 0;
  if (info[2].IsBuffer()) {
    Napi::Buffer<char> b = info[2].As<Napi::Buffer<char>>();
    input = b.Data();
    input_len = b.Length();
  }
  int exit_fd = info[3].As<Napi::Number>().Int32Value();
  int pidfd = info[4].As<Napi::Number>().Int32Value();
  double timeout_ms = info[5].As<Napi::Number>().DoubleValue();
  double max_buffer = info[6].As<Napi::Number>().DoubleValue();
  int kill_signal = info[7].As<Napi::Number>().Int32Value();

  size_t nr = rfds.ElementLength();
  std::vector<int> fds(nr);
  std::vector<std::string> out(nr);
  for (size_t i = 0; i < nr; i++) fds[i] = rfds[i];
  size_t written = 0, total = 0;
  bool exited = false, killed = false, timed_out = false, overflow = false;
  int error = 0;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  if (wfd >= 0 && input_len == 0) {
    close(wfd);
    wfd = -1;
  }
  if (wfd >= 0) fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK);
  auto kill_once = [&]() {
    if (killed) return;
    killed = true;
    SYS4(__NR_pidfd_send_signal, pidfd, kill_signal, nullptr, 0);
    // As Node: our ends close with the kill, so a child that ignores the
    // signal and keeps writing dies of SIGPIPE instead of holding us here.
    if (wfd >= 0) {
      close(wfd);
      wfd = -1;
    }
    for (size_t i = 0; i < nr; i++)
      if (fds[i] >= 0) {
        close(fds[i]);
        fds[i] = -1;
      }
  };
  for (;;) {
    std::vector<struct pollfd> p;
    std::vector<int> which;  // index into fds, -1 write, -2 exit
    for (size_t i = 0; i < nr; i++)
      if (fds[i] >= 0) {
        p.push_back({fds[i], POLLIN, 0});
        which.push_back(static_cast<int>(i));
      }
    if (wfd >= 0) {
      p.push_back({wfd, POLLOUT, 0});
      which.push_back(-1);
    }
    if (!exited) {
      p.push_back({exit_fd, POLLIN, 0});
      which.push_back(-2);
    }
    bool reading = false;
    for (size_t i = 0; i < nr; i++) reading = reading || fds[i] >= 0;
    // Done: exited and all output read. After a kill, output pipes held by
    // grandchildren must not keep us here: once exited, stop reading.
    if (exited && (!reading || killed)) break;
    int wait = -1;
    if (timeout_ms > 0 && !killed) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      double elapsed = (now.tv_sec - start.tv_sec) * 1e3 + (now.tv_nsec - start.tv_nsec) / 1e6;
      if (elapsed >= timeout_ms) {
        timed_out = true;
        kill_once();
        continue;
      }
      double left = timeout_ms - elapsed + 1;
      wait = left > 2147483647.0 ? 2147483647 : static_cast<int>(left);
    }
    int n = poll(p.data(), p.size(), wait);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno;
      kill_once();
      break;
    }
    for (size_t k = 0; k < p.size(); k++) {
      if (!p[k].revents) continue;
      int w = which[k];
      if (w == -2) {
        exited = true;
      } else if (w == -1) {
        if (wfd < 0) continue;  // closed by a kill earlier in this round
        ssize_t m = write(wfd, input + written, input_len - written);
        if (m > 0) written += static_cast<size_t>(m);
        if ((m < 0 && errno != EAGAIN && errno != EINTR) || written == input_len) {
          // The child stopped reading before the input was all written:
          // Node reports that (EPIPE) next to the exit status.
          if (m < 0 && !error) error = errno;
          close(wfd);
          wfd = -1;
        }
      } else {
        if (fds[w] < 0) continue;  // closed by a kill earlier in this round
        char buf[65536];
        ssize_t m = read(fds[w], buf, sizeof buf);
        if (m > 0) {
          out[w].append(buf, static_cast<size_t>(m));
          total += static_cast<size_t>(m);
          // maxBuffer counts all outputs together, as Node's spawnSync does.
          if (max_buffer > 0 && static_cast<double>(total) > max_buffer) {
            size_t over = total - static_cast<size_t>(max_buffer);
            out[w].resize(out[w].size() > over ? out[w].size() - over : 0);
            overflow = true;
            kill_once();
          }
        } else if (m == 0 || (errno != EAGAIN && errno != EINTR)) {
          close(fds[w]);
          fds[w] = -1;
        }
      }
    }
  }
  if (wfd >= 0) close(wfd);
  for (size_t i = 0; i < nr; i++)
    if (fds[i] >= 0) close(fds[i]);
  Napi::Object result = Napi::Object::New(env);
  Napi::Array outputs = Napi::Array::New(env, nr);
  for (size_t i = 0; i < nr; i++) outputs[static_cast<uint32_t>(i)] = Napi::Buffer<char>::Copy(env, out[i].data(), out[i].size());
  result["outputs"] = outputs;
  result["timedOut"] = Napi::Boolean::New(env, timed_out);
  result["overflow"] = Napi::Boolean::New(env, overflow);
  result["error"] = Napi::Number::New(env, error);
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  EnvState* s = new EnvState();
  s->env = env;
  if (napi_get_uv_event_loop(env, &s->loop) != napi_ok ||
      napi_set_instance_data(env, s, nullptr, nullptr) != napi_ok ||
      napi_add_async_cleanup_hook(env, OnEnvTeardown, s, &s->cleanup) != napi_ok) {
    delete s;
    throw Napi::Error::New(env, "clonefd: cannot set up the environment state");
  }
  const char* legacy = getenv("CLONEFD_LEGACY_CLONE");
  if (legacy && legacy[0] == '1') clonefd_force_legacy_clone(1);

  exports["spawn"] = Napi::Function::New(env, Spawn, "spawn");
  exports["reap"] = Napi::Function::New(env, ReapNow, "reap");
  exports["kill"] = Napi::Function::New(env, Kill, "kill");
  exports["ref"] = Napi::Function::New(env, Ref, "ref");
  exports["openPidfd"] = Napi::Function::New(env, OpenPidfd, "openPidfd");
  exports["closeFd"] = Napi::Function::New(env, CloseFd, "closeFd");
  exports["socketPair"] = Napi::Function::New(env, SocketPair, "socketPair");
  exports["fdFlags"] = Napi::Function::New(env, FdFlags, "fdFlags");
  exports["setLegacyClone"] = Napi::Function::New(env, SetLegacyClone, "setLegacyClone");
  exports["clonePath"] = Napi::Function::New(env, ClonePath, "clonePath");
  exports["reaperPending"] = Napi::Function::New(env, ReaperPending, "reaperPending");
  exports["probe"] = Napi::Function::New(env, Probe, "probe");
  exports["watchFd"] = Napi::Function::New(env, WatchFd, "watchFd");
  exports["unwatch"] = Napi::Function::New(env, Unwatch, "unwatch");
  exports["helperEnsure"] = Napi::Function::New(env, HelperEnsure, "helperEnsure");
  exports["helperConnect"] = Napi::Function::New(env, HelperConnect, "helperConnect");
  exports["helperPid"] = Napi::Function::New(env, HelperPid, "helperPid");
  exports["helperSpawn"] = Napi::Function::New(env, HelperSpawn, "helperSpawn");
  exports["helperRecv"] = Napi::Function::New(env, HelperRecv, "helperRecv");
  exports["pipe"] = Napi::Function::New(env, Pipe, "pipe");
  exports["drainSync"] = Napi::Function::New(env, DrainSync, "drainSync");
  exports["waitExec"] = Napi::Function::New(env, WaitExec, "waitExec");
  exports["recordPipe"] = Napi::Function::New(env, RecordPipe, "recordPipe");
  exports["dupUserFd"] = Napi::Function::New(env, DupUserFd, "dupUserFd");
  exports["readRecord"] = Napi::Function::New(env, ReadRecord, "readRecord");
  exports["killPid"] = Napi::Function::New(env, KillPid, "killPid");
  exports["fdValid"] = Napi::Function::New(env, FdValid, "fdValid");
  exports["waitReadable"] = Napi::Function::New(env, WaitReadable, "waitReadable");
  exports["killPidfd"] = Napi::Function::New(env, KillPidfd, "killPidfd");
  exports["recoverExit"] = Napi::Function::New(env, RecoverExit, "recoverExit");
  exports["messageSize"] = Napi::Number::New(env, kMsgSize);
  exports["recordSize"] = Napi::Number::New(env, kRecordSize);
  exports["clockTicks"] = Napi::Number::New(env, static_cast<double>(sysconf(_SC_CLK_TCK)));
  return exports;
}

}  // namespace

NODE_API_MODULE(clonefd, Init)
