// Per-environment state shared by both engines: the watches (uv_poll on
// this environment's loop), calls from the loop into JavaScript, the fds
// JavaScript owns, and what happens when the environment is torn down.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addon.h"
#include "../reap.h"
#include "../reaper.h"

namespace clonefd {

namespace {

const napi_type_tag kWatchTag = {0x636c6f6e65666400ULL, 0x7761746368000002ULL};

void MaybeFree(Watch* w) {
  if (!w->js_owned && w->poll == nullptr) delete w;
}

void Link(Watch* w) {
  EnvState* s = w->state;
  w->prev = nullptr;
  w->next = s->watched;
  if (s->watched) s->watched->prev = w;
  s->watched = w;
}

void Unlink(Watch* w) {
  EnvState* s = w->state;
  if (w->prev) w->prev->next = w->next;
  else if (s->watched == w) s->watched = w->next;
  if (w->next) w->next->prev = w->prev;
  w->prev = w->next = nullptr;
}

void FinishTeardown(EnvState* s) {
  if (s->async_ctx) napi_async_destroy(s->env, s->async_ctx);
  napi_remove_async_cleanup_hook(s->cleanup);
  delete s;
}

void OnPollClosed(uv_handle_t* handle) {
  Watch* w = static_cast<Watch*>(handle->data);
  delete reinterpret_cast<uv_poll_t*>(handle);
  w->poll = nullptr;
  if (w->kind == WatchKind::kFd && w->fd >= 0) {
    // A watched fd lives exactly as long as its watch.
    close(w->fd);
    w->fd = -1;
  }
  if (w->closed_by_teardown) {
    EnvState* s = w->state;
    w->state = nullptr;
    if (--s->closing == 0) FinishTeardown(s);
  }
  MaybeFree(w);
}

void OnRetryClosed(uv_handle_t* handle) {
  EnvState* s = static_cast<EnvState*>(handle->data);
  delete reinterpret_cast<uv_timer_t*>(handle);
  s->retry = nullptr;
  if (--s->closing == 0) FinishTeardown(s);
}

// No JavaScript runs from here on. Children still running are handed to
// the process-wide reaper, so none is left a zombie; the helper engine's
// sockets close (the helper then kills this environment's killWithParent
// children); the fds JavaScript owned are closed.
void OnEnvTeardown(napi_async_cleanup_hook_handle handle, void* arg) {
  EnvState* s = static_cast<EnvState*>(arg);
  s->cleanup = handle;
  while (Watch* w = s->watched) {
    Unlink(w);
    if (w->kind == WatchKind::kChild) {
      if (clonefd_reaper_adopt(w->fd) != 0) {
        // No reaper thread could be made: the last resort that still
        // leaves no zombie behind.
        clonefd_kill_and_reap(w->fd);
        close(w->fd);
      }
      w->fd = -1;
    }
    ReleaseJs(w);
    w->closed_by_teardown = true;
    s->closing++;
    uv_close(reinterpret_cast<uv_handle_t*>(w->poll), OnPollClosed);
  }
  for (const auto& entry : s->user_fds) {
    struct stat st;
    if (fstat(entry.first, &st) == 0 && st.st_dev == entry.second.dev && st.st_ino == entry.second.ino) {
      close(entry.first);
    }
  }
  if (s->retry) {
    s->closing++;
    uv_close(reinterpret_cast<uv_handle_t*>(s->retry), OnRetryClosed);
  }
  s->user_fds.clear();
  RemoveNotifyPaths(s);
  AdoptGroups(s);
  if (s->closing == 0) FinishTeardown(s);
}

}  // namespace

bool InitEnv(napi_env env) {
  EnvState* s = new EnvState();
  s->env = env;
  napi_value name;
  if (napi_get_uv_event_loop(env, &s->loop) != napi_ok ||
      napi_create_string_utf8(env, "CLONEFD_WATCH", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, nullptr, name, &s->async_ctx) != napi_ok) {
    delete s;
    return false;
  }
  if (napi_set_instance_data(env, s, nullptr, nullptr) != napi_ok ||
      napi_add_async_cleanup_hook(env, OnEnvTeardown, s, &s->cleanup) != napi_ok) {
    napi_async_destroy(env, s->async_ctx);
    delete s;
    return false;
  }
  return true;
}

EnvState* State(napi_env env) {
  void* data = nullptr;
  if (napi_get_instance_data(env, &data) != napi_ok) return nullptr;
  return static_cast<EnvState*>(data);
}

Watch* StartWatch(EnvState* s, WatchKind kind, int fd, pid_t pid, uv_poll_cb cb, int* err, int events) {
  Watch* w = new Watch();
  w->kind = kind;
  w->state = s;
  w->fd = fd;
  w->pid = pid;
  w->cb = cb;
  w->poll = new uv_poll_t();
  w->poll->data = w;
  int r = uv_poll_init(s->loop, w->poll, fd);
  if (r != 0) {
    // Never registered with the loop: plain deletes.
    delete w->poll;
    delete w;
    *err = r;
    return nullptr;
  }
  r = uv_poll_start(w->poll, events, cb);
  if (r != 0) {
    // Registered: only uv_close may release it. The fd stays the caller's.
    w->fd = -1;
    w->js_owned = false;
    uv_close(reinterpret_cast<uv_handle_t*>(w->poll), OnPollClosed);
    *err = r;
    return nullptr;
  }
  return w;
}

napi_value WatchOwnedFd(napi_env env, int fd, napi_value callback, uv_poll_cb cb, int events) {
  EnvState* s = State(env);
  if (s == nullptr) return nullptr;
  // Not a user fd any more: a teardown would close it twice.
  ForgetUserFd(s, fd);
  int err = 0;
  Watch* w = StartWatch(s, WatchKind::kFd, fd, 0, cb, &err, events);
  if (w == nullptr) {
    close(fd);
    return Number(env, err);
  }
  return WatchHandle(env, w, callback);  // on failure the watch closed fd
}

napi_value WatchHandle(napi_env env, Watch* w, napi_value callback) {
  napi_value ext = nullptr;
  auto finalize = [](napi_env, void* data, void*) {
    Watch* watch = static_cast<Watch*>(data);
    watch->js_owned = false;
    MaybeFree(watch);
  };
  if (napi_create_reference(env, callback, 1, &w->callback) != napi_ok ||
      napi_create_external(env, w, finalize, nullptr, &ext) != napi_ok) {
    if (w->callback) {
      napi_delete_reference(env, w->callback);
      w->callback = nullptr;
    }
    if (w->kind == WatchKind::kChild) w->fd = -1;  // still the caller's
    w->js_owned = false;
    uv_close(reinterpret_cast<uv_handle_t*>(w->poll), OnPollClosed);
    return nullptr;
  }
  // From here the External's finalizer owns the JavaScript side.
  napi_type_tag_object(env, ext, &kWatchTag);
  Link(w);
  return ext;
}

Watch* UnwrapWatch(napi_env env, napi_value v) {
  bool tagged = false;
  void* data = nullptr;
  if (v == nullptr || napi_check_object_type_tag(env, v, &kWatchTag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, v, &data) != napi_ok)
    return nullptr;
  return static_cast<Watch*>(data);
}

void StopWatching(Watch* w) {
  if (w->poll && !uv_is_closing(reinterpret_cast<uv_handle_t*>(w->poll))) {
    Unlink(w);
    uv_close(reinterpret_cast<uv_handle_t*>(w->poll), OnPollClosed);
    // The retry timer no longer keeps the loop alive for it.
    if (w->deferred && w->state) UpdateRetryRef(w->state);
  }
}

namespace {

constexpr uint64_t kRetryMs = 200;

void OnRetry(uv_timer_t* timer) {
  EnvState* s = static_cast<EnvState*>(timer->data);
  // Linked watches only: a stopped (closing) one is out of the list.
  for (Watch* w = s->watched; w; w = w->next) {
    if (!w->deferred) continue;
    w->deferred = false;
    if (w->poll && !uv_is_closing(reinterpret_cast<uv_handle_t*>(w->poll)) &&
        uv_poll_start(w->poll, UV_READABLE, w->cb) != 0)
      w->deferred = true;  // not polled: left to the next round
  }
  bool again = false;
  for (Watch* w = s->watched; w && !again; w = w->next) again = w->deferred;
  if (again) uv_timer_start(timer, OnRetry, kRetryMs, 0);
  UpdateRetryRef(s);
}

}  // namespace

void UpdateRetryRef(EnvState* s) {
  if (s->retry == nullptr) return;
  bool wanted = false;
  for (Watch* w = s->watched; w && !wanted; w = w->next)
    wanted = w->deferred && w->poll && uv_has_ref(reinterpret_cast<uv_handle_t*>(w->poll));
  if (wanted) uv_ref(reinterpret_cast<uv_handle_t*>(s->retry));
  else uv_unref(reinterpret_cast<uv_handle_t*>(s->retry));
}

void PollLater(Watch* w) {
  EnvState* s = w->state;
  if (s == nullptr || w->poll == nullptr || uv_is_closing(reinterpret_cast<uv_handle_t*>(w->poll))) return;
  if (s->retry == nullptr) {
    s->retry = new uv_timer_t();
    uv_timer_init(s->loop, s->retry);  // cannot fail
    s->retry->data = s;
  }
  uv_poll_stop(w->poll);
  w->deferred = true;
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(s->retry))) uv_timer_start(s->retry, OnRetry, kRetryMs, 0);
  UpdateRetryRef(s);
}

void ReleaseJs(Watch* w) {
  if (w->callback && w->state) {
    napi_delete_reference(w->state->env, w->callback);
    w->callback = nullptr;
  }
}

bool CallFromLoop(Watch* w, size_t argc, const napi_value* argv, bool* truthy) {
  EnvState* s = w->state;
  napi_env env = s->env;
  *truthy = false;
  napi_handle_scope scope;
  if (w->callback == nullptr || napi_open_handle_scope(env, &scope) != napi_ok) return false;
  napi_value fn = nullptr, recv = nullptr, result = nullptr;
  bool called = false;
  if (napi_get_reference_value(env, w->callback, &fn) == napi_ok && fn != nullptr &&
      napi_get_global(env, &recv) == napi_ok) {
    napi_status st = napi_make_callback(env, s->async_ctx, recv, fn, argc, argv, &result);
    called = st == napi_ok;
    if (st == napi_pending_exception) {
      // JavaScript's delivery reports its listeners' exceptions itself
      // (src/engine.ts); this is for anything else. A terminating
      // environment has no exception to report (undefined).
      napi_value err = nullptr;
      napi_valuetype type = napi_undefined;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok && err != nullptr &&
          napi_typeof(env, err, &type) == napi_ok && type != napi_undefined)
        napi_fatal_exception(env, err);
    }
    if (called && result != nullptr) napi_get_value_bool(env, result, truthy);
  }
  napi_close_handle_scope(env, scope);
  return called;
}

void TrackUserFd(EnvState* s, int fd) {
  struct stat st;
  if (s && fd >= 0 && fstat(fd, &st) == 0) s->user_fds[fd] = FdId{st.st_dev, st.st_ino};
}

void ForgetUserFd(EnvState* s, int fd) {
  if (s) s->user_fds.erase(fd);
}

// fatalException(err): reports err as an uncaught exception now, in the
// async context that is current (src/engine.ts calls it inside a child's
// own scope, so 'uncaughtException' handlers see that child's context).
napi_value FatalException(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (a.ok() && a.raw(0) != nullptr) napi_fatal_exception(env, a.raw(0));
  return nullptr;
}

// ---- values and arguments ----------------------------------------------------

napi_value Number(napi_env env, double v) {
  napi_value r = nullptr;
  if (napi_create_double(env, v, &r) != napi_ok) return nullptr;
  return r;
}

napi_value Boolean(napi_env env, bool v) {
  napi_value r = nullptr;
  if (napi_get_boolean(env, v, &r) != napi_ok) return nullptr;
  return r;
}

napi_value RecordValue(napi_env env, const clonefd_record& rec) {
  napi_value buf = nullptr, arr = nullptr;
  void* data = nullptr;
  if (napi_create_arraybuffer(env, CLONEFD_SLOT_COUNT * sizeof(double), &data, &buf) != napi_ok || data == nullptr)
    return nullptr;
  clonefd_record_slots(&rec, static_cast<double*>(data));
  if (napi_create_typedarray(env, napi_float64_array, CLONEFD_SLOT_COUNT, buf, 0, &arr) != napi_ok) return nullptr;
  return arr;
}

napi_value FdPair(napi_env env, int a, int b) {
  napi_value pair = nullptr;
  napi_value x = Number(env, a), y = Number(env, b);
  if (x == nullptr || y == nullptr || napi_create_array_with_length(env, 2, &pair) != napi_ok ||
      napi_set_element(env, pair, 0, x) != napi_ok || napi_set_element(env, pair, 1, y) != napi_ok)
    return nullptr;
  return pair;
}

Args::Args(napi_env env, napi_callback_info info) : env_(env) {
  size_t argc = kMax;
  ok_ = napi_get_cb_info(env, info, &argc, v_, nullptr, nullptr) == napi_ok;
}

bool Args::isNull(size_t i) {
  napi_valuetype t = napi_undefined;
  if (!ok_ || napi_typeof(env_, raw(i), &t) != napi_ok) ok_ = false;
  return t == napi_null || t == napi_undefined;
}

int32_t Args::i32(size_t i) {
  int32_t r = 0;
  if (!ok_ || napi_get_value_int32(env_, raw(i), &r) != napi_ok) ok_ = false;
  return r;
}

uint32_t Args::u32(size_t i) {
  uint32_t r = 0;
  if (!ok_ || napi_get_value_uint32(env_, raw(i), &r) != napi_ok) ok_ = false;
  return r;
}

int64_t Args::i64(size_t i) {
  int64_t r = 0;
  if (!ok_ || napi_get_value_int64(env_, raw(i), &r) != napi_ok) ok_ = false;
  return r;
}

double Args::f64(size_t i) {
  double r = 0;
  if (!ok_ || napi_get_value_double(env_, raw(i), &r) != napi_ok) ok_ = false;
  return r;
}

bool Args::flag(size_t i) {
  napi_value b = nullptr;
  bool r = false;
  if (!ok_ || napi_coerce_to_bool(env_, raw(i), &b) != napi_ok || napi_get_value_bool(env_, b, &r) != napi_ok)
    ok_ = false;
  return r;
}

std::string Args::str(size_t i) {
  size_t len = 0;
  if (!ok_ || napi_get_value_string_utf8(env_, raw(i), nullptr, 0, &len) != napi_ok) {
    ok_ = false;
    return std::string();
  }
  std::string s(len, '\0');
  if (napi_get_value_string_utf8(env_, raw(i), &s[0], len + 1, &len) != napi_ok) ok_ = false;
  return s;
}

std::vector<std::string> Args::strs(size_t i) {
  std::vector<std::string> out;
  uint32_t n = 0;
  if (!ok_ || napi_get_array_length(env_, raw(i), &n) != napi_ok) {
    ok_ = false;
    return out;
  }
  out.reserve(n);
  for (uint32_t k = 0; k < n && ok_; k++) {
    napi_value e = nullptr;
    size_t len = 0;
    if (napi_get_element(env_, raw(i), k, &e) != napi_ok ||
        napi_get_value_string_utf8(env_, e, nullptr, 0, &len) != napi_ok) {
      ok_ = false;
      break;
    }
    std::string s(len, '\0');
    if (napi_get_value_string_utf8(env_, e, &s[0], len + 1, &len) != napi_ok) ok_ = false;
    out.push_back(std::move(s));
  }
  return out;
}

static void* TypedData(napi_env env, napi_value v, napi_typedarray_type want, size_t* len, bool* ok) {
  napi_typedarray_type type;
  void* data = nullptr;
  size_t n = 0;
  if (!*ok || napi_get_typedarray_info(env, v, &type, &n, &data, nullptr, nullptr) != napi_ok || type != want) {
    *ok = false;
    *len = 0;
    return nullptr;
  }
  *len = n;
  return data;
}

int32_t* Args::i32array(size_t i, size_t* len) {
  return static_cast<int32_t*>(TypedData(env_, raw(i), napi_int32_array, len, &ok_));
}

double* Args::f64array(size_t i, size_t* len) {
  return static_cast<double*>(TypedData(env_, raw(i), napi_float64_array, len, &ok_));
}

char* Args::buffer(size_t i, size_t* len) {
  bool is = false;
  void* data = nullptr;
  *len = 0;
  if (!ok_ || napi_is_buffer(env_, raw(i), &is) != napi_ok) {
    ok_ = false;
    return nullptr;
  }
  if (!is) return nullptr;
  if (napi_get_buffer_info(env_, raw(i), &data, len) != napi_ok) ok_ = false;
  return static_cast<char*>(data);
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> p;
  p.reserve(v.size() + 1);
  for (auto& s : v) p.push_back(&s[0]);
  p.push_back(nullptr);
  return p;
}

}  // namespace clonefd
