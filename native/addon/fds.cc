// Small fd and signal utilities the TypeScript layer needs. Every fd made
// here is CLOEXEC; a child end is placed by dup3 in the child, which clears
// the flag there only.
#include <cerrno>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addon.h"
#include "../reaper.h"
#include "../sys.h"

namespace clonefd {

// closeFd(fd) → 0 | -errno. Closes an fd this addon created; fs.closeSync
// would make a worker warn about an fd it never saw opened.
napi_value CloseFd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0);
  if (!a.ok()) return nullptr;
  ForgetUserFd(State(env), fd);
  // Linux releases the fd even when close reports EINTR: never retry.
  int r = close(fd);
  return Number(env, r < 0 && errno != EINTR ? -errno : 0);
}

// Both ends of a new pair as [a, b], owned by JavaScript (closed by the
// teardown of a worker terminated before it could close them itself).
static napi_value OwnedPair(napi_env env, int a, int b) {
  napi_value pair = FdPair(env, a, b);
  if (pair == nullptr) {
    close(a);
    close(b);
    return nullptr;
  }
  TrackUserFd(State(env), a);
  TrackUserFd(State(env), b);
  return pair;
}

// socketPair() → [parentEnd, childEnd] | -errno (stdio 'pipe' slots).
napi_value SocketPair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return Number(env, -errno);
  return OwnedPair(env, sv[0], sv[1]);
}

// pipe() → [readEnd, writeEnd] | -errno (spawnSync's stdio).
napi_value Pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return Number(env, -errno);
  return OwnedPair(env, p[0], p[1]);
}

// releaseFd(fd): JavaScript handed fd to an owner of its own (a
// net.Socket, whose libuv handle closes it): teardown must not close it.
napi_value ReleaseFd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0);
  if (a.ok()) ForgetUserFd(State(env), fd);
  return nullptr;
}

// fdFlags(fd) → [F_GETFD, F_GETFL] | -errno (tests check flags with it).
napi_value FdFlags(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0);
  if (!a.ok()) return nullptr;
  int fdflags = fcntl(fd, F_GETFD);
  int flflags = fdflags < 0 ? -1 : fcntl(fd, F_GETFL);
  if (fdflags < 0 || flflags < 0) return Number(env, -errno);
  return FdPair(env, fdflags, flflags);
}

// fdValid(fd) → true when fd is open (stdio numbers are checked before a
// spawn allocates fds that could take a closed number's place).
napi_value FdValid(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0);
  if (!a.ok()) return nullptr;
  return Boolean(env, fcntl(fd, F_GETFD) >= 0);
}

// pollReadable(fds: Int32Array, readable: Uint8Array): readable[i] = 1
// when fds[i] polls readable right now.
napi_value PollReadable(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t n = 0, m = 0;
  int32_t* fds = a.i32array(0, &n);
  napi_typedarray_type type;
  void* data = nullptr;
  if (!a.ok() || napi_get_typedarray_info(env, a.raw(1), &type, &m, &data, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array || m < n)
    return nullptr;
  uint8_t* out = static_cast<uint8_t*>(data);
  std::vector<struct pollfd> p(n);
  for (size_t i = 0; i < n; i++) p[i] = {fds[i], POLLIN, 0};
  int r;
  do r = poll(p.data(), n, 0);
  while (r < 0 && errno == EINTR);
  for (size_t i = 0; i < n; i++) out[i] = r > 0 && (p[i].revents & POLLIN) ? 1 : 0;
  return nullptr;
}

// waitReadable(fd) → 0 | -errno: blocks until fd polls readable.
napi_value WaitReadable(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0);
  if (!a.ok()) return nullptr;
  struct pollfd p = {fd, POLLIN, 0};
  int n;
  do n = poll(&p, 1, -1);
  while (n < 0 && errno == EINTR);
  return Number(env, n < 0 ? -errno : 0);
}

// killPidfd(pidfd, signal) → 0 | -errno.
napi_value KillPidfd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0), sig = a.i32(1);
  if (!a.ok()) return nullptr;
  return Number(env, static_cast<double>(SYS4(__NR_pidfd_send_signal, fd, sig, nullptr, 0)));
}

// killPid(pid, signal) → 0 | -errno, through a pidfd opened now: for a
// child the helper made but could not announce before it died (it is
// nobody's to reap from here; it only must not run on).
napi_value KillPid(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int pid = a.i32(0), sig = a.i32(1);
  if (!a.ok()) return nullptr;
  long fd = SYS2(__NR_pidfd_open, pid, 0);
  if (fd < 0) return Number(env, static_cast<double>(fd));
  long r = SYS4(__NR_pidfd_send_signal, fd, sig, nullptr, 0);
  close(static_cast<int>(fd));
  return Number(env, static_cast<double>(r));
}

// pidfdOpen(pid) → fd | -errno: a CLOEXEC pidfd, JavaScript's to close
// (closeFd; a teardown closes it otherwise). It names the process that has
// the pid now: whoever checks that process afterwards (its cgroup) and then
// signals through the fd can never signal a process that took the pid later.
napi_value PidfdOpen(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int pid = a.i32(0);
  EnvState* s = State(env);
  if (!a.ok() || s == nullptr) return nullptr;
  if (pid <= 0) return Number(env, -EINVAL);
  long fd = SYS2(__NR_pidfd_open, pid, 0);  // pidfds are always close-on-exec
  if (fd >= 0) TrackUserFd(s, static_cast<int>(fd));
  return Number(env, static_cast<double>(fd));
}

// openForWatch(path) → fd | -errno: O_RDONLY|O_CLOEXEC, for a watch to own
// next (eventsWatch, which closes it natively). Opened here, not with
// fs.openSync: in a worker Node lists what fs opens and closes what is
// still listed when the worker ends, by number, long after the watch
// closed it and the number went to someone else.
napi_value OpenForWatch(napi_env env, napi_callback_info info) {
  Args a(env, info);
  std::string path = a.str(0);
  EnvState* s = State(env);
  if (!a.ok() || s == nullptr) return nullptr;
  int fd;
  do fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return Number(env, -errno);
  // Tracked until the watch takes it: a worker terminated in between
  // still has it closed by its teardown.
  TrackUserFd(s, fd);
  return Number(env, fd);
}

// groupMake(path) → 0 | -errno: mkdir(path, 0755) of a child's cgroup,
// listed in this environment until groupForget(path). A listed group that
// the environment's teardown finds (a worker terminated before its tree was
// gone, so no JavaScript of it will remove the group) goes to the reaper
// thread, which removes it once empty. mkdir and the listing are one call:
// no JavaScript runs between them, so a termination cannot come between.
napi_value GroupMake(napi_env env, napi_callback_info info) {
  Args a(env, info);
  std::string path = a.str(0);
  EnvState* s = State(env);
  if (!a.ok() || s == nullptr) return nullptr;
  if (mkdir(path.c_str(), 0755) < 0) return Number(env, -errno);
  s->group_paths.insert(path);
  return Number(env, 0);
}

// groupForget(path): the group is removed (or given up) by JavaScript.
napi_value GroupForget(napi_env env, napi_callback_info info) {
  Args a(env, info);
  std::string path = a.str(0);
  if (!a.ok()) return nullptr;
  EnvState* s = State(env);
  if (s) s->group_paths.erase(path);
  return nullptr;
}

void AdoptGroups(EnvState* s) {
  for (const std::string& path : s->group_paths) {
    int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) clonefd_reaper_adopt_group(fd);  // owns fd
  }
  s->group_paths.clear();
}

}  // namespace clonefd
