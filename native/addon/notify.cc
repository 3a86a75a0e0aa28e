// Readiness notification (src/readiness.ts): the sd_notify datagram socket
// and the reads of both kinds of readiness channel. The fds are watched by
// channel.cc's generic watch (channelWatch/channelPoll); the protocol (the
// newline of s6, sd_notify's KEY=VALUE lines) is TypeScript's. Here are the
// system calls, as numbers and -errno.
#include <cerrno>
#include <cstring>
#include <string>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "addon.h"

namespace clonefd {

namespace {

// The kernel's SCM_MAX_FD: the most fds one sendmsg can attach.
constexpr size_t kScmMaxFd = 253;

int RemovePath(const std::string& path) {
  int r = unlink(path.c_str()) < 0 && errno != ENOENT ? -errno : 0;
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    std::string dir = path.substr(0, slash);
    if (rmdir(dir.c_str()) < 0 && errno != ENOENT && r == 0) r = -errno;
  }
  return r;
}

}  // namespace

// notifySocket(path) → fd | -errno: an AF_UNIX SOCK_DGRAM socket
// (CLOEXEC, NONBLOCK) with SO_PASSCRED, bound to path (inside a private
// directory JavaScript made). The fd is JavaScript's (a user fd until
// channelWatch takes it); path is remembered so that a teardown of this
// environment removes it and its directory (notifyUnlink does it before).
napi_value NotifySocket(napi_env env, napi_callback_info info) {
  Args a(env, info);
  std::string path = a.str(0);
  if (!a.ok()) return nullptr;
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.find('\0') != std::string::npos) return Number(env, -EINVAL);
  if (path.size() >= sizeof addr.sun_path) return Number(env, -ENAMETOOLONG);
  memcpy(addr.sun_path, path.data(), path.size());
  EnvState* s = State(env);
  if (s == nullptr) return nullptr;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Number(env, -errno);
  int one = 1;
  // Credentials before the bind: no datagram can arrive without them.
  if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0 ||
      bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) < 0) {
    int err = errno;
    close(fd);
    return Number(env, -err);
  }
  napi_value r = Number(env, fd);
  if (r == nullptr) {
    close(fd);
    unlink(path.c_str());
    return nullptr;
  }
  TrackUserFd(s, fd);
  s->notify_paths.insert(path);
  return r;
}

// notifyUnlink(path) → 0 | -errno: removes the socket file and its
// directory (ENOENT counts as done) and forgets them.
napi_value NotifyUnlink(napi_env env, napi_callback_info info) {
  Args a(env, info);
  std::string path = a.str(0);
  if (!a.ok()) return nullptr;
  EnvState* s = State(env);
  if (s) s->notify_paths.erase(path);
  return Number(env, RemovePath(path));
}

void RemoveNotifyPaths(EnvState* s) {
  for (const std::string& path : s->notify_paths) RemovePath(path);
  s->notify_paths.clear();
}

// notifyRecv(fd, buf, out: Int32Array[3]) → bytes | -errno (-EAGAIN:
// nothing now): one datagram. out = [sender pid (0: unknown), sender uid,
// 1 when the datagram did not fit buf (truncated)]. Every fd that came with
// it (SCM_RIGHTS) is closed here: sd_notify's FDSTORE is not offered, and
// closing is what systemd-notify's BARRIER=1 waits for.
napi_value NotifyRecv(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0);
  size_t len = 0, nout = 0;
  char* buf = a.buffer(1, &len);
  int32_t* out = a.i32array(2, &nout);
  if (!a.ok() || buf == nullptr || out == nullptr || nout < 3) return Number(env, -EINVAL);
  union {
    char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * kScmMaxFd)];
    struct cmsghdr align;
  } u;
  struct iovec iov = {buf, len};
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = u.buf;
  mh.msg_controllen = sizeof u.buf;
  ssize_t n;
  do n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  out[0] = 0;
  out[1] = -1;
  out[2] = 0;
  if (n < 0) return Number(env, -errno);
  // fds beyond the control buffer (MSG_CTRUNC) were never installed: the
  // kernel dropped them. Those that were are closed now.
  for (struct cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level != SOL_SOCKET) continue;
    if (cm->cmsg_type == SCM_RIGHTS) {
      size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; i++) {
        int f;
        memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof f);
        close(f);
      }
    } else if (cm->cmsg_type == SCM_CREDENTIALS && cm->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
      struct ucred cred;
      memcpy(&cred, CMSG_DATA(cm), sizeof cred);
      out[0] = cred.pid;
      out[1] = static_cast<int32_t>(cred.uid);
    }
  }
  if (mh.msg_flags & MSG_TRUNC) out[2] = 1;
  return Number(env, static_cast<double>(n));
}

// notifyRead(fd, buf) → bytes | 0 at EOF | -errno (-EAGAIN: nothing now):
// read(2) of the s6 readiness pipe's read end.
napi_value NotifyRead(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0);
  size_t len = 0;
  char* buf = a.buffer(1, &len);
  if (!a.ok() || buf == nullptr) return Number(env, -EINVAL);
  ssize_t n;
  do n = read(fd, buf, len);
  while (n < 0 && errno == EINTR);
  return Number(env, static_cast<double>(n < 0 ? -errno : n));
}

}  // namespace clonefd
