// The drain loop of clonefd/child_process's spawnSync: feeds the input,
// collects every output pipe, and returns once the child has exited and
// every pipe is at EOF, all on this thread without the event loop.
#include <cerrno>
#include <ctime>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "addon.h"
#include "../sys.h"

namespace clonefd {

// drainSync(readFds: Int32Array, writeFd, input: Buffer|null, exitFd,
//           pidfd, timeoutMs, maxBuffer, killSignal) →
//   { outputs: Buffer[], timedOut, overflow, error }
// On timeout or when the outputs pass maxBuffer, the child gets killSignal
// once and our pipe ends are closed (as Node does), so only its exit is
// waited for. Closes writeFd and the read fds it was given.
napi_value DrainSync(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t nr = 0, input_len = 0;
  int32_t* rfds = a.i32array(0, &nr);
  int wfd = a.i32(1);
  const char* input = a.buffer(2, &input_len);
  int exit_fd = a.i32(3);
  int pidfd = a.i32(4);
  double timeout_ms = a.f64(5);
  double max_buffer = a.f64(6);
  int kill_signal = a.i32(7);
  if (!a.ok()) return nullptr;
  // Every fd given is closed here, not by JavaScript.
  EnvState* s = State(env);
  for (size_t i = 0; i < nr; i++) ForgetUserFd(s, rfds[i]);
  if (wfd >= 0) ForgetUserFd(s, wfd);

  std::vector<int> fds(rfds, rfds + nr);
  std::vector<std::string> out(nr);
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
          // maxBuffer counts all outputs together and the read that passes
          // it is kept whole, as Node's spawnSync does (src/spawn_sync.cc).
          if (max_buffer > 0 && static_cast<double>(total) > max_buffer) {
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

  napi_value result = nullptr, outputs = nullptr;
  if (napi_create_object(env, &result) != napi_ok || napi_create_array_with_length(env, nr, &outputs) != napi_ok)
    return nullptr;
  for (size_t i = 0; i < nr; i++) {
    napi_value b = nullptr;
    if (napi_create_buffer_copy(env, out[i].size(), out[i].data(), nullptr, &b) != napi_ok ||
        napi_set_element(env, outputs, static_cast<uint32_t>(i), b) != napi_ok)
      return nullptr;
  }
  napi_value timed = Boolean(env, timed_out), over = Boolean(env, overflow), err = Number(env, error);
  if (timed == nullptr || over == nullptr || err == nullptr ||
      napi_set_named_property(env, result, "outputs", outputs) != napi_ok ||
      napi_set_named_property(env, result, "timedOut", timed) != napi_ok ||
      napi_set_named_property(env, result, "overflow", over) != napi_ok ||
      napi_set_named_property(env, result, "error", err) != napi_ok)
    return nullptr;
  return result;
}

}  // namespace clonefd
