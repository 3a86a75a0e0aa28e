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
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
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

const napi_type_tag kChildTag = {0x636c6f6e65666400ULL, 0x6368696c64000001ULL};

struct EnvState;

// One spawned child. Two owners: the JavaScript External (until its
// finalizer runs) and the uv_poll_t (until its close callback runs). The
// struct is freed when both are gone.
struct Child {
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
  // fds handed to the user and not yet closed through closeFd: a worker
  // torn down runs no finalizers, so teardown releases them.
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

napi_value RecordOrError(napi_env env, int r, const clonefd_exit& ex) {
  napi_value v;
  if (r < 0) {
    napi_create_int32(env, r, &v);
    return v;
  }
  napi_value buf;
  void* data;
  napi_create_arraybuffer(env, kRecordSize * sizeof(double), &data, &buf);
  double* d = static_cast<double*>(data);
  d[kCode] = ex.code;
  d[kStatus] = ex.status;
  d[kUtime] = ex.utime == CLONEFD_TIME_UNKNOWN ? -1 : static_cast<double>(ex.utime);
  d[kStime] = ex.stime == CLONEFD_TIME_UNKNOWN ? -1 : static_cast<double>(ex.stime);
  d[kPid] = 0;  // filled by the caller
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
  napi_create_typedarray(env, napi_float64_array, kRecordSize, buf, 0, &v);
  return v;
}

// Reap now (the pidfd is readable) and stop watching. Returns the reap's
// result; the record is in *ex.
int ReapAndStop(Child* c, clonefd_exit* ex) {
  int r = clonefd_reap(c->pidfd, c->pid, ex);
  close(c->pidfd);
  c->pidfd = -1;
  StopWatching(c);
  return r;
}

void OnPoll(uv_poll_t* handle, int status, int events) {
  (void)status;
  (void)events;
  Child* c = static_cast<Child*>(handle->data);
  EnvState* s = c->state;
  napi_env env = s->env;
  clonefd_exit ex;
  int r = ReapAndStop(c, &ex);

  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    ReleaseJs(c, env);
    return;
  }
  napi_value record = RecordOrError(env, r, ex);
  if (r >= 0) {
    napi_value ta = record;
    void* data;
    size_t len;
    napi_get_typedarray_info(env, ta, nullptr, &len, &data, nullptr, nullptr);
    static_cast<double*>(data)[kPid] = c->pid;
  }
  napi_value fn, recv;
  napi_get_reference_value(env, c->on_exit, &fn);
  napi_get_global(env, &recv);  // make_callback needs an object receiver
  // MakeCallback with the spawn's async context: AsyncLocalStorage sees the
  // spawner's store, and microtasks run afterwards as for any callback.
  napi_status st = napi_make_callback(env, c->async_ctx, recv, fn, 1, &record, nullptr);
  if (st == napi_pending_exception) {
    napi_value err;
    if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
  }
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
    if (clonefd_reaper_adopt(c->pidfd) == 0) {
      c->pidfd = -1;
    } else {
      // No reaper thread could be made: kill and reap here, as the last
      // resort that still leaves no zombie behind.
      SYS4(__NR_pidfd_send_signal, c->pidfd, SIGKILL, nullptr, 0);
      siginfo_t si;
      SYS5(__NR_waitid, P_PIDFD, c->pidfd, &si, WEXITED | __WALL, nullptr);
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
  plan.stdio = stdio.Data();
  plan.nstdio = static_cast<int>(stdio.ElementLength());
  plan.flags = info[5].As<Napi::Number>().Int32Value();
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
      siginfo_t si;
      SYS5(__NR_waitid, P_PIDFD, pidfd, &si, WEXITED | __WALL, nullptr);
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
  napi_create_reference(env, on_exit, 1, &c->on_exit);
  napi_async_init(env, nullptr, Napi::String::New(env, "CLONEFD_CHILD"), &c->async_ctx);
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
  ReleaseJs(c, env);
  napi_value v = RecordOrError(env, r, ex);
  if (r >= 0) {
    void* data;
    napi_get_typedarray_info(env, v, nullptr, nullptr, &data, nullptr, nullptr);
    static_cast<double*>(data)[kPid] = c->pid;
  }
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
  if (fd >= 0) {
    // pidfd_open names a pid: make sure it was still our child when it
    // ran. If a foreign waitpid reaped it meanwhile, the pid may be
    // another process now: use a duplicate of ours instead.
    siginfo_t si;
    long r = SYS5(__NR_waitid, P_PIDFD, c->pidfd, &si, WEXITED | WNOHANG | WNOWAIT | __WALL, nullptr);
    if (r == -ECHILD) {
      close(static_cast<int>(fd));
      fd = -ECHILD;
    }
  }
  if (fd < 0) {
    fd = fcntl(c->pidfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return Napi::Number::New(env, -errno);
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

// socketpair() → [parentEnd, childEnd] | -errno. Both CLOEXEC: the child's
// end is placed by dup3 in the child, which clears the flag there only.
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return Napi::Number::New(env, -errno);
  Napi::Array a = Napi::Array::New(env, 2);
  a[0u] = Napi::Number::New(env, sv[0]);
  a[1u] = Napi::Number::New(env, sv[1]);
  return a;
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
  exports["recordSize"] = Napi::Number::New(env, kRecordSize);
  exports["clockTicks"] = Napi::Number::New(env, static_cast<double>(sysconf(_SC_CLK_TCK)));
  return exports;
}

}  // namespace

NODE_API_MODULE(clonefd, Init)
