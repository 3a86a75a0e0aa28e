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

// The process's umask, read without changing it: umask(2) can only be
// read by setting it, which would briefly give other threads' new files
// the wrong mode. /proc/self/status has it (Linux >= 4.7); its fd is
// opened once (OpenUmaskSource, at the addon's load) and kept, so a full fd
// table later cannot make this fail. Returns the umask or -errno.
namespace {
pthread_mutex_t umask_mu = PTHREAD_MUTEX_INITIALIZER;
int umask_fd = -1;
}  // namespace

int CurrentUmask() {
  char buf[4096];
  pthread_mutex_lock(&umask_mu);
  if (umask_fd < 0) umask_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  int err = umask_fd < 0 ? errno : 0;
  ssize_t n = umask_fd < 0 ? -1 : pread(umask_fd, buf, sizeof buf - 1, 0);
  if (n < 0 && !err) err = errno;
  pthread_mutex_unlock(&umask_mu);
  if (n <= 0) return -(err ? err : ENOSYS);
  buf[n] = '\0';
  const char* line = strstr(buf, "\nUmask:");
  if (!line) return -ENOSYS;
  return static_cast<int>(strtol(line + 7, nullptr, 8));
}

namespace {

// Reads what the child wrote into the exec pipe so far (non-blocking):
// its pid, then {errno, stage} if a step before execve failed. true at
// EOF (the child exec'd or exited; or there was never a child).
struct ExecReport {
  int32_t rec[3] = {0, 0, 0};
  size_t got = 0;
  int err = 0;
  bool eof = false;
  void ReadAvailable(int fd) {
    while (!eof && got < sizeof rec) {
      ssize_t n = read(fd, reinterpret_cast<char*>(rec) + got, sizeof rec - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) {
        if (n < 0) err = errno;
        eof = true;
        return;
      }
      got += static_cast<size_t>(n);
    }
    if (got == sizeof rec) eof = true;  // a failure report is the last thing written
  }
  int32_t pid() const { return got >= sizeof(int32_t) ? rec[0] : 0; }
  int32_t errnum() const { return err ? err : got == sizeof rec ? rec[1] : (got == 0 || got == sizeof(int32_t) ? 0 : EPROTO); }
  int32_t stage() const { return got == sizeof rec ? rec[2] : 0; }
};

// Messages delivered per wake-up of an environment socket's watch. Each
// delivery may run a continuation that spawns again (a few hundred µs), so
// a small batch keeps one loop iteration short: timers and other I/O get
// their turn between batches, whatever the callers do.
constexpr int kEventBatch = 8;

void OnFdReadable(uv_poll_t* handle, int status, int events) {
  (void)status;
  (void)events;
  Watch* w = static_cast<Watch*>(handle->data);
  // JavaScript handles one message (or one event) per call and says
  // whether there may be more. Each call is its own callback scope, so
  // promise continuations run between deliveries, and the batch is
  // bounded (a level-triggered poll calls again for what is left).
  for (int i = 0; i < kEventBatch; i++) {
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
  int fd = a.i32(0);
  if (!a.ok()) return nullptr;
  return WatchOwnedFd(env, fd, a.raw(1), OnFdReadable);
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

// helperConnect(generation, out: Int32Array[2]) → 0 | -errno; out = [the
// request socket, the event socket] of a new environment connection.
napi_value HelperConnect(napi_env env, napi_callback_info info) {
  Args a(env, info);
  long gen = static_cast<long>(a.i64(0));
  size_t nout = 0;
  int32_t* out = a.i32array(1, &nout);
  if (!a.ok() || nout < 2) return nullptr;
  int req = -1, ev = -1;
  int r = clonefd_helper_connect(gen, &req, &ev);
  if (r == 0) {
    out[0] = req;
    out[1] = ev;
    TrackUserFd(State(env), req);
    TrackUserFd(State(env), ev);
  }
  return Number(env, r);
}

// helperAbandon(generation): the helper did not answer in time; the next
// helperEnsure starts a new one.
napi_value HelperAbandon(napi_env env, napi_callback_info info) {
  Args a(env, info);
  long gen = static_cast<long>(a.i64(0));
  if (a.ok()) clonefd_helper_abandon(gen);
  return nullptr;
}

napi_value HelperPid(napi_env env, napi_callback_info info) {
  (void)info;
  return Number(env, clonefd_helper_pid());
}

// Slots of helperSpawn's out array (src/engines/helper.ts mirrors them).
enum SpawnOut { kOutRecordFd, kOutPid, kOutPidfd, kOutExecErr, kOutExecStage, kOutErr, kOutStage, kOutStep, kOutSize };
// kOutStep: where a -errno came from.
enum SpawnStep { kStepLocal = 1, kStepSend = 2, kStepReply = 3, kStepUmask = 4 };

// helperSpawn(sock, id, paths, argv, envp|null, cwd|null, stdio: Int32Array,
//             flags, uid, gid, userFlags (1 cloexec | 2 nonblock), timeoutMs,
//             out: Int32Array[8]) → 0 | -errno
// One SPAWN request on the environment's request socket, with its own
// pipes: the record pipe (its read end is the contract's fd, the user's
// flags, kept by JavaScript) and the exec pipe (read here). Waits for the
// exec pipe's EOF (the exec's outcome, straight from the child), then for
// the helper's SPAWNED, at most timeoutMs of our running time in all.
// 0: out = [recordFd, pid, pidfd (-1 when the helper sent none), exec
// errno (0: it exec'd), exec stage, SPAWNED's errno, its stage]. -errno:
// nothing is left open; out[kOutStep] says where it failed, out[kOutPid]
// is the pid the child reported when the helper went away mid-spawn
// (-ECONNRESET), so it can be stopped; -ETIMEDOUT: the helper did not
// answer in time.
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
  int timeout_ms = a.i32(11);
  int32_t* out = a.i32array(12, &nout);
  int cgroup_fd = a.i32(13);  // -1, or the cgroup directory to start the child in (still the caller's)
  if (!a.ok() || s == nullptr || nout < kOutSize) return nullptr;
  for (size_t i = 0; i < kOutSize; i++) out[i] = 0;
  out[kOutRecordFd] = out[kOutPidfd] = -1;

  int mask = CurrentUmask();
  if (mask < 0) {
    out[kOutStep] = kStepUmask;
    return Number(env, mask);
  }
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
  if (b.err) {
    r = -b.err;  // E2BIG and friends: before any fd is made
    out[kOutStep] = kStepLocal;
  } else if (pipe2(record, O_CLOEXEC) < 0 || pipe2(exec, O_CLOEXEC | O_NONBLOCK) < 0 ||
             ((user_flags & 2) && fcntl(record[0], F_SETFL, O_NONBLOCK) < 0) ||
             (!(user_flags & 1) && fcntl(record[0], F_SETFD, 0) < 0) ||
             (cwdfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
    r = -errno;
    out[kOutStep] = kStepLocal;
  } else {
    r = clonefd_spawn_send(&b, sock, id, record[1], cwdfd, exec[1], cgroup_fd, stdio, static_cast<int>(nstdio), timeout_ms);
    if (r < 0) out[kOutStep] = kStepSend;
  }
  clonefd_spawn_builder_free(&b);
  // The helper (and through it the child) has its own copies now. Ours of
  // the exec pipe's write end must go before we wait for its EOF.
  for (int fd : {record[1], exec[1], cwdfd})
    if (fd >= 0) close(fd);
  if (r < 0) {
    for (int fd : {record[0], exec[0]})
      if (fd >= 0) close(fd);
    return Number(env, r);
  }

  // First the exec pipe's EOF: the child exec'd or failed (or the helper
  // closed its copy without making one). The helper answers SPAWNED right
  // after the clone, long before that, so it is then already queued and
  // this thread is woken once per spawn, not twice: a wake-up here is an
  // expensive thing, and ours used to preempt the exec'ing child on its
  // CPU. Both are polled for hangup alone (events 0): the child's pid,
  // written into the pipe as it starts, must not wake us either; the
  // pipe's POLLHUP is its EOF, and the socket's a helper that died.
  ExecReport exec_report;
  bool have_reply = false;
  // SPAWNED if it is there: 1 (ours, taken), 0 (nothing yet), -errno
  // (-ECONNRESET: the helper closed the socket).
  auto take_reply = [&]() -> int {
    for (;;) {
      clonefd_reply msg;
      int fds[4];
      int nfds = 0, trunc = 0;
      ssize_t got = clonefd_recv_fds(sock, &msg, sizeof msg, fds, 4, &nfds, MSG_DONTWAIT, &trunc);
      if (got == -EAGAIN) return 0;
      if (got <= 0) return got == 0 ? -ECONNRESET : static_cast<int>(got);
      if (trunc || clonefd_reply_check(&msg, static_cast<size_t>(got), nfds) != CLONEFD_MSG_SPAWNED || msg.h.id != id) {
        for (int i = 0; i < nfds; i++) close(fds[i]);
        continue;  // not ours: the request socket carries nothing else
      }
      have_reply = true;
      out[kOutPid] = msg.body.spawned.pid;
      out[kOutErr] = msg.body.spawned.err;
      out[kOutStage] = msg.body.spawned.stage;
      if (nfds == 1) {
        out[kOutPidfd] = fds[0];
        // JavaScript owns it now, but a worker torn down runs no JavaScript,
        // so the environment closes it then.
        TrackUserFd(s, fds[0]);
      }
      return 1;
    }
  };
  // A child that is not done yet when the deadline passes.
  auto timed_out = [&]() {
    r = -ETIMEDOUT;
    // A child the unresponsive helper already made (it reported its pid)
    // must not run on for a spawn that fails: JavaScript stops it.
    exec_report.ReadAvailable(exec[0]);
    out[kOutPid] = exec_report.pid();
  };
  int left = timeout_ms;
  r = 0;
  while (!exec_report.eof) {
    struct pollfd p[2] = {{exec[0], 0, 0}, {sock, 0, 0}};
    // The deadline is the helper's: once it answered, the child's own time
    // before its exec (a binary on a slow mount) is not held against it.
    int n = have_reply ? clonefd_wait(p, 2, -1, nullptr) : clonefd_wait(p, 2, left, &left);
    if (n == 0) {
      int got = take_reply();
      if (got == 1) continue;
      if (got < 0) r = got;
      else timed_out();
      break;
    }
    if (n < 0) {
      r = n;
      break;
    }
    if (p[0].revents) exec_report.ReadAvailable(exec[0]);
    if (p[1].revents) break;  // hung up: what it sent before is still read below
  }
  // Then SPAWNED, normally waiting in the socket already.
  while (r == 0 && !have_reply) {
    int got = take_reply();
    if (got < 0) r = got;
    if (got != 0) break;
    struct pollfd p = {sock, POLLIN, 0};
    int n = clonefd_wait(&p, 1, left, &left);
    if (n == 0) timed_out();
    else if (n < 0) r = n;
  }
  // The child holds the exec pipe until its exec or exit, so this ends.
  // No deadline: that was the helper's, which has answered or gone.
  auto wait_exec_eof = [&]() -> int {
    struct pollfd p = {exec[0], POLLIN, 0};
    while (!exec_report.eof) {
      int n = clonefd_wait(&p, 1, -1, nullptr);
      if (n < 0) return n;
      exec_report.ReadAvailable(exec[0]);
    }
    return 0;
  };
  // The helper answered and hung up while the child is still before its
  // exec: its outcome is still ours to hear.
  if (r == 0) r = wait_exec_eof();
  if (r == -ECONNRESET) {
    // The helper went away before it answered. A child it made wrote its
    // pid first: JavaScript must stop an orphan nobody else knows of.
    wait_exec_eof();
    out[kOutPid] = exec_report.pid();
  }
  close(exec[0]);
  if (r < 0) {
    close(record[0]);
    if (out[kOutPidfd] >= 0) {
      ForgetUserFd(s, out[kOutPidfd]);
      close(out[kOutPidfd]);
      out[kOutPidfd] = -1;
    }
    out[kOutStep] = kStepReply;
    return Number(env, r);
  }
  if (out[kOutPid] == 0) out[kOutPid] = exec_report.pid();
  out[kOutExecErr] = exec_report.errnum();
  out[kOutExecStage] = exec_report.stage();
  out[kOutRecordFd] = record[0];
  TrackUserFd(s, record[0]);
  return Number(env, 0);
}

// helperRecv(sock, timeoutMs) → reply (Float64Array, MsgSlot layout, a
// fresh one each time) | 0 (EOF) | -errno (-EAGAIN: nothing there with
// timeoutMs 0; -ETIMEDOUT: nothing within timeoutMs > 0; -EPROTO: a
// malformed message, dropped). timeoutMs < 0 waits without a deadline.
napi_value HelperRecv(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int sock = a.i32(0);
  int timeout_ms = a.i32(1);
  if (!a.ok()) return nullptr;
  clonefd_reply msg;
  int fds[4];
  int nfds = 0, trunc = 0;
  ssize_t n;
  int left = timeout_ms;
  for (;;) {
    // libuv made the socket non-blocking (uv_poll_init): wait with poll.
    n = clonefd_recv_fds(sock, &msg, sizeof msg, fds, 4, &nfds, MSG_DONTWAIT, &trunc);
    if (n != -EAGAIN || timeout_ms == 0) break;
    struct pollfd p = {sock, POLLIN, 0};
    int w = clonefd_wait(&p, 1, left, &left);
    if (w == 0) return Number(env, -ETIMEDOUT);
    if (w < 0) return Number(env, w);
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

// readRecord(fd, block, exitFd, pid, timeoutMs) → record (source PIPE: the
// 24 bytes, no rusage) | 0 (EOF) | -errno. One read(2) of the struct
// clonefd_info. Before the child exits: -EAGAIN (block false), or a wait
// as long as the child runs (block true). Once it has exited (exitFd
// readable) the record is due from the helper: that wait has the deadline
// (-ETIMEDOUT: the helper did not write it in time).
napi_value ReadRecord(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0);
  bool block = a.flag(1);
  int exit_fd = a.isNull(2) ? -1 : a.i32(2);
  int32_t pid = a.i32(3);
  int timeout_ms = a.i32(4);
  if (!a.ok()) return nullptr;
  struct pollfd p[2] = {{fd, POLLIN, 0}, {exit_fd, POLLIN, 0}};
  int nfds = exit_fd >= 0 ? 2 : 1;
  int n = clonefd_wait(p, nfds, block ? -1 : 0, nullptr);
  if (n < 0) return Number(env, n);
  if (n == 0) return Number(env, -EAGAIN);
  if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
    // Exited, record not there yet: the helper writes it right after the
    // reap, unless it is stopped or wedged.
    struct pollfd w = {fd, POLLIN, 0};
    n = clonefd_wait(&w, 1, timeout_ms, nullptr);
    if (n == 0) return Number(env, -ETIMEDOUT);
    if (n < 0) return Number(env, n);
  }
  clonefd_record rec;
  clonefd_record_init(&rec, pid, CLONEFD_SOURCE_PIPE);
  ssize_t r;
  do r = read(fd, &rec.info, sizeof rec.info);
  while (r < 0 && errno == EINTR);
  if (r < 0) return Number(env, -errno);
  if (r == 0) return Number(env, 0);
  if (r != sizeof rec.info) return Number(env, -EPROTO);
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
