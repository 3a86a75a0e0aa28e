// The helper engine's client side: starting the helper and connecting this
// environment (helper_start.h), sending SPAWN (protocol.h), receiving
// replies, the record pipe's read end, and recovering a child's record
// after the helper died. Request ids, waiting and recovery decisions are
// TypeScript's (src/engines/helper.ts); here are the system calls.
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addon.h"
#include "../fdpass.h"
#include "../helper_start.h"
#include "../protocol.h"
#include "../reap.h"
#include "../sys.h"

extern char** environ;

namespace clonefd {

namespace {

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

// Reads the exec pipe to EOF: the child writes its pid, then {errno,
// stage} if a step before execve failed. Fills out[1..3] = pid (0 if the
// child never wrote it), errno (0: it exec'd), stage.
void WaitExec(int fd, int32_t* out) {
  int32_t rec[3] = {0, 0, 0};
  size_t got = 0;
  int err = 0;
  while (got < sizeof rec) {
    ssize_t n = read(fd, reinterpret_cast<char*>(rec) + got, sizeof rec - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = errno;
      break;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out[1] = got >= sizeof(int32_t) ? rec[0] : 0;
  out[2] = err ? err : (got == sizeof rec ? rec[1] : (got == 0 || got == sizeof(int32_t) ? 0 : EPROTO));
  out[3] = got == sizeof rec ? rec[2] : 0;
}

void OnFdReadable(uv_poll_t* handle, int status, int events) {
  (void)status;
  (void)events;
  Watch* w = static_cast<Watch*>(handle->data);
  // JavaScript handles one message (or one event) per call and says
  // whether there may be more. Each call is its own callback scope, so
  // promise continuations run between deliveries, and the batch is
  // bounded: the loop gets back to timers and other I/O in between (a
  // level-triggered poll calls again for what is left).
  for (int i = 0; i < 64; i++) {
    bool more = false;
    if (w->callback == nullptr || !CallFromLoop(w, 0, nullptr, &more) || !more) return;
    if (w->poll == nullptr || uv_is_closing(reinterpret_cast<uv_handle_t*>(w->poll))) return;
  }
}

}  // namespace

// watchFd(fd, onReadable) → handle | -errno. The watch owns fd from now on
// (closed with the watch: unwatch, or the environment's teardown), also
// when this fails. onReadable() returns true while there may be more.
napi_value WatchFd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  EnvState* s = State(env);
  int fd = a.i32(0);
  if (!a.ok() || s == nullptr) return nullptr;
  // Not an owned fd any more: a teardown would close it twice.
  ForgetUserFd(s, fd);
  int err = 0;
  Watch* w = StartWatch(s, WatchKind::kFd, fd, 0, OnFdReadable, &err);
  if (w == nullptr) {
    close(fd);
    return Number(env, err);
  }
  napi_value handle = WatchHandle(env, w, a.raw(1));  // on failure the watch closed fd
  return handle;
}

// unwatch(watch): stops watching and closes the fd. Idempotent.
napi_value Unwatch(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Watch* w = UnwrapWatch(env, a.raw(0));
  if (!a.ok() || w == nullptr || w->kind != WatchKind::kFd) return nullptr;
  StopWatching(w);
  ReleaseJs(w);
  return nullptr;
}

// helperEnsure(fallbackPath, out: Int32Array[2]) → generation | -errno;
// out = [started from the memfd (1) or the file (0), the stage when the
// helper's exec failed].
napi_value HelperEnsure(napi_env env, napi_callback_info info) {
  Args a(env, info);
  std::string fallback = a.str(0);
  size_t nout = 0;
  int32_t* out = a.i32array(1, &nout);
  if (!a.ok() || nout < 2) return nullptr;
  int stage = 0;
  long gen = clonefd_helper_ensure(fallback.c_str(), &stage);
  out[0] = clonefd_helper_from_memfd();
  out[1] = stage;
  return Number(env, static_cast<double>(gen));
}

// helperConnect(generation) → a new environment socket | -errno.
napi_value HelperConnect(napi_env env, napi_callback_info info) {
  Args a(env, info);
  long gen = static_cast<long>(a.i64(0));
  if (!a.ok()) return nullptr;
  return Number(env, clonefd_helper_connect(gen));
}

napi_value HelperPid(napi_env env, napi_callback_info info) {
  (void)info;
  return Number(env, clonefd_helper_pid());
}

// helperSpawn(sock, id, paths, argv, envp|null, cwd|null, stdio: Int32Array,
//             flags, uid, gid, userFlags: [cloexec, nonblock] as bits 1|2,
//             out: Int32Array[4]) → 0 | -errno
// One SPAWN request, with its own pipes: the record pipe (its read end is
// the contract's fd, the user's flags, kept by JavaScript as out[0]) and
// the exec pipe (read here to EOF). 0: sent, out = [recordFd, pid, errno
// (0: exec'd), stage]; JavaScript then waits for SPAWNED. -errno: not
// sent, nothing left open.
napi_value HelperSpawn(napi_env env, napi_callback_info info) {
  Args a(env, info);
  EnvState* s = State(env);
  int sock = a.i32(0);
  uint64_t id = static_cast<uint64_t>(a.i64(1));
  std::vector<std::string> paths = a.strs(2), argv = a.strs(3), envp;
  bool own_env = !a.isNull(4);
  if (own_env) envp = a.strs(4);
  bool has_cwd = !a.isNull(5);
  std::string cwd = has_cwd ? a.str(5) : std::string();
  size_t nstdio = 0, nout = 0;
  int32_t* stdio = a.i32array(6, &nstdio);
  uint32_t flags = a.u32(7), uid = a.u32(8), gid = a.u32(9);
  int user_flags = a.i32(10);
  int32_t* out = a.i32array(11, &nout);
  if (!a.ok() || s == nullptr || nout < 4) return nullptr;

  int mask = CurrentUmask();
  if (mask < 0) return Number(env, -ENOSYS);
  clonefd_spawn_builder b;
  clonefd_spawn_builder_init(&b, flags, uid, gid, static_cast<uint32_t>(mask));
  for (auto& p : paths) clonefd_spawn_add(&b, CLONEFD_LIST_PATHS, p.data(), p.size());
  for (auto& v : argv) clonefd_spawn_add(&b, CLONEFD_LIST_ARGV, v.data(), v.size());
  if (own_env) {
    for (auto& e : envp) clonefd_spawn_add(&b, CLONEFD_LIST_ENV, e.data(), e.size());
  } else {
    // The process's real environment, as it is now.
    for (char** e = environ; *e; e++) clonefd_spawn_add(&b, CLONEFD_LIST_ENV, *e, strlen(*e));
  }
  if (has_cwd) clonefd_spawn_add(&b, CLONEFD_LIST_CWD, cwd.data(), cwd.size());

  int record[2] = {-1, -1}, exec[2] = {-1, -1};
  int cwdfd = -1;
  int r = 0;
  if (pipe2(record, O_CLOEXEC) < 0 || pipe2(exec, O_CLOEXEC) < 0 ||
      ((user_flags & 2) && fcntl(record[0], F_SETFL, O_NONBLOCK) < 0) ||
      (!(user_flags & 1) && fcntl(record[0], F_SETFD, 0) < 0) ||
      (cwdfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
    r = -errno;
  } else {
    r = clonefd_spawn_send(&b, sock, id, record[1], cwdfd, exec[1], stdio, static_cast<int>(nstdio));
  }
  clonefd_spawn_builder_free(&b);
  // The helper (and through it the child) has its own copies now.
  for (int fd : {record[1], exec[1], cwdfd})
    if (fd >= 0) close(fd);
  if (r < 0) {
    for (int fd : {record[0], exec[0]})
      if (fd >= 0) close(fd);
    return Number(env, r);
  }
  // spawn() is synchronous: the exec's outcome comes straight from the
  // child (EOF: it exec'd; else its errno), the pid and pidfd from the
  // helper's SPAWNED, which JavaScript waits for next.
  WaitExec(exec[0], out);
  close(exec[0]);
  out[0] = record[0];
  TrackUserFd(s, record[0]);
  return Number(env, 0);
}

// helperRecv(sock, block) → reply (Float64Array, MsgSlot layout, a fresh
// one each time) | 0 (EOF) | -errno (-EAGAIN: nothing there; -EPROTO: a
// malformed message, dropped).
napi_value HelperRecv(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int sock = a.i32(0);
  bool block = a.flag(1);
  if (!a.ok()) return nullptr;
  clonefd_reply msg;
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
  if (n <= 0) return Number(env, static_cast<double>(n));
  int type = trunc ? -EPROTO : clonefd_reply_check(&msg, static_cast<size_t>(n), nfds);
  if (type < 0) {
    for (int i = 0; i < nfds; i++) close(fds[i]);
    return Number(env, -EPROTO);
  }
  napi_value buf = nullptr, arr = nullptr;
  void* data = nullptr;
  if (napi_create_arraybuffer(env, kMsgSize * sizeof(double), &data, &buf) != napi_ok || data == nullptr ||
      napi_create_typedarray(env, napi_float64_array, kMsgSize, buf, 0, &arr) != napi_ok) {
    for (int i = 0; i < nfds; i++) close(fds[i]);
    return nullptr;
  }
  double* d = static_cast<double*>(data);
  d[kMsgType] = type;
  d[kMsgId] = static_cast<double>(msg.h.id);
  d[kMsgFd] = -1;
  if (type == CLONEFD_MSG_SPAWNED) {
    d[kMsgPid] = msg.body.spawned.pid;
    d[kMsgErr] = msg.body.spawned.err;
    d[kMsgStage] = msg.body.spawned.stage;
    if (nfds == 1) {
      // The child's pidfd: JavaScript owns it now, but a worker torn down
      // runs no JavaScript, so the environment closes it then.
      d[kMsgFd] = fds[0];
      TrackUserFd(State(env), fds[0]);
    }
  } else {
    d[kMsgPid] = msg.body.exit.pid;
    clonefd_record_slots(&msg.body.exit, d + kMsgRecord);
  }
  return arr;
}

// readRecord(fd, block, exitFd) → record (source PIPE: the 24 bytes, no
// rusage) | 0 (EOF) | -errno. One read(2) of the struct clonefd_info.
napi_value ReadRecord(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0);
  bool block = a.flag(1);
  int exit_fd = a.isNull(2) ? -1 : a.i32(2);
  int32_t pid = a.i32(3);
  if (!a.ok()) return nullptr;
  if (!block) {
    // Not readable yet: EAGAIN, unless the child has exited already (its
    // pidfd is readable): then the record is on its way, and the contract
    // says a read after the exit returns it, so wait for it.
    struct pollfd p[2] = {{fd, POLLIN, 0}, {exit_fd, POLLIN, 0}};
    int n;
    do n = poll(p, exit_fd >= 0 ? 2 : 1, 0);
    while (n < 0 && errno == EINTR);
    if (n == 0) return Number(env, -EAGAIN);
  }
  // Wait for the record (or EOF) whatever the fd's O_NONBLOCK: it is due
  // (blocking read, or the child has exited and the helper is writing it).
  struct pollfd w = {fd, POLLIN, 0};
  while (poll(&w, 1, -1) < 0 && errno == EINTR) {
  }
  clonefd_record rec;
  clonefd_record_init(&rec, pid, CLONEFD_SOURCE_PIPE);
  ssize_t n;
  do n = read(fd, &rec.info, sizeof rec.info);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Number(env, -errno);
  if (n == 0) return Number(env, 0);
  if (n != sizeof rec.info) return Number(env, -EPROTO);
  return RecordValue(env, rec);
}

// recoverExit(pidfd, pid) → record | -EAGAIN (still running). For a child
// whose helper died: someone else's orphan now (reap.h clonefd_recover);
// a lost status is a record marked lost.
napi_value RecoverExit(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int pidfd = a.i32(0);
  pid_t pid = a.i32(1);
  if (!a.ok()) return nullptr;
  struct pollfd p = {pidfd, POLLIN, 0};
  int n;
  do n = poll(&p, 1, 0);
  while (n < 0 && errno == EINTR);
  if (n == 0) return Number(env, -EAGAIN);
  clonefd_record rec;
  clonefd_recover(pidfd, pid, &rec);
  return RecordValue(env, rec);
}

// dupUserFd(fd, cloexec, nonblock) → fd | -errno: a user-owned duplicate.
napi_value DupUserFd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int src = a.i32(0);
  bool cloexec = a.flag(1), nonblock = a.flag(2);
  if (!a.ok()) return nullptr;
  int fd = fcntl(src, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
  if (fd < 0) return Number(env, -errno);
  if (nonblock) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
      int err = errno;
      close(fd);
      return Number(env, -err);
    }
  }
  TrackUserFd(State(env), fd);
  return Number(env, fd);
}

}  // namespace clonefd
