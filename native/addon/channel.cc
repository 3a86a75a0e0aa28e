// The drop-in's IPC channel (src/compat/ipc.ts): the parent's end of the
// socketpair a forked child knows as NODE_CHANNEL_FD. Node's protocol
// carries handles as SCM_RIGHTS beside the message bytes, which a
// net.Socket cannot send or receive (read(2) drops ancillary fds), so the
// channel polls its fd here and moves bytes with sendmsg/recvmsg. Framing,
// queues and the protocol are TypeScript's; here are the system calls.
#include <cerrno>

#include <sys/socket.h>
#include <unistd.h>

#include "addon.h"
#include "../fdpass.h"

namespace clonefd {

namespace {

// The most fds one read hands over: Node sends one handle per message,
// and one recvmsg never spans two messages that carry fds.
constexpr int kMaxRecvFds = 8;
// Beside UV_READABLE (1) and UV_WRITABLE (2): the poll failed (src/compat/ipc.ts CHANNEL_ERROR).
constexpr int kChannelError = 8;

void OnChannelEvent(uv_poll_t* handle, int status, int events) {
  Watch* w = static_cast<Watch*>(handle->data);
  // A poll error (the peer closed with our data unread: ECONNRESET): libuv
  // has stopped this poll. Reported as such (kChannelError); JavaScript's
  // next sendmsg/recvmsg says which error it was.
  int ev = status < 0 ? (UV_READABLE | UV_WRITABLE | kChannelError) : events;
  napi_handle_scope scope;
  if (w->callback == nullptr || napi_open_handle_scope(w->state->env, &scope) != napi_ok) return;
  napi_value arg = Number(w->state->env, ev);
  bool more = false;
  CallFromLoop(w, 1, &arg, &more);
  napi_close_handle_scope(w->state->env, scope);
}

}  // namespace

// channelWatch(fd, onEvent(events)) → watch | -errno. The watch owns fd
// from now on (closed by unwatch or the environment's teardown), also when
// this fails. Polls for UV_READABLE (1) until channelPoll says otherwise;
// onEvent gets UV_READABLE | UV_WRITABLE (2), or kChannelError (8) with both
// when the poll failed.
napi_value ChannelWatch(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0);
  if (!a.ok()) return nullptr;
  return WatchOwnedFd(env, fd, a.raw(1), OnChannelEvent);
}

// eventsWatch(fd, onEvent(events)) → watch | -errno: a kernfs file that
// says a change with POLLPRI (cgroup.events), polled for that alone from
// the start (POLLIN is always ready on such a file). The watch owns fd, as
// channelWatch's; onEvent gets UV_PRIORITIZED (4). Reading the file through
// fd is what re-arms it.
napi_value EventsWatch(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0);
  if (!a.ok()) return nullptr;
  return WatchOwnedFd(env, fd, a.raw(1), OnChannelEvent, UV_PRIORITIZED);
}

// channelPoll(watch, events) → 0 | -errno: what to wait for from now on
// (0 pauses the watch without closing it).
napi_value ChannelPoll(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Watch* w = UnwrapWatch(env, a.raw(0));
  int events = a.i32(1);
  if (!a.ok() || w == nullptr || w->kind != WatchKind::kFd || w->poll == nullptr) return Number(env, -EBADF);
  uv_handle_t* h = reinterpret_cast<uv_handle_t*>(w->poll);
  if (uv_is_closing(h)) return Number(env, -EBADF);
  int r = events == 0 ? uv_poll_stop(w->poll) : uv_poll_start(w->poll, events & (UV_READABLE | UV_WRITABLE), OnChannelEvent);
  return Number(env, r);
}

// channelRecv(fd, buf, fds: Int32Array) → bytes | 0 at EOF | -errno
// (-EAGAIN: nothing now). fds = [count, fd...] of the fds that came with
// these bytes (CLOEXEC, the caller's to close); when they did not fit
// (a full fd table) count is -1 and they are gone. Tracked as user fds.
napi_value ChannelRecv(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0);
  size_t len = 0, nout = 0;
  char* buf = a.buffer(1, &len);
  int32_t* out = a.i32array(2, &nout);
  if (!a.ok() || buf == nullptr || out == nullptr || nout < 1 + static_cast<size_t>(kMaxRecvFds)) return Number(env, -EINVAL);
  int fds[kMaxRecvFds];
  int nfds = 0, trunc = 0;
  ssize_t n = clonefd_recv_fds(fd, buf, len, fds, kMaxRecvFds, &nfds, MSG_DONTWAIT, &trunc);
  out[0] = trunc ? -1 : nfds;
  // JavaScript's until it closes them (closeFd) or gives them to a socket
  // (releaseFd); a teardown in between closes them.
  EnvState* s = State(env);
  for (int i = 0; i < nfds; i++) {
    out[1 + i] = fds[i];
    TrackUserFd(s, fds[i]);
  }
  return Number(env, static_cast<double>(n));
}

// channelSend(fd, buf, offset, length, passFd) → bytes written | -errno
// (-EAGAIN: the socket is full). passFd >= 0 travels with these bytes.
napi_value ChannelSend(napi_env env, napi_callback_info info) {
  Args a(env, info);
  int fd = a.i32(0);
  size_t len = 0;
  char* buf = a.buffer(1, &len);
  uint32_t off = a.u32(2), n = a.u32(3);
  int pass = a.i32(4);
  if (!a.ok() || buf == nullptr || off > len || n > len - off) return Number(env, -EINVAL);
  struct iovec iov = {buf + off, n};
  ssize_t r = clonefd_send_fds(fd, &iov, 1, pass >= 0 ? &pass : nullptr, pass >= 0 ? 1 : 0, MSG_DONTWAIT);
  return Number(env, static_cast<double>(r));
}

}  // namespace clonefd
