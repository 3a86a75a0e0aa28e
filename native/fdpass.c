/* See fdpass.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"

/* Room for the most fds any clonefd message carries (protocol.h). */
#define MAX_PASSED 64

ssize_t clonefd_send_fds(int sock, const struct iovec *iov, int iovcnt, const int *fds, int nfds, int flags) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_PASSED)];
    struct cmsghdr align;
  } u;
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = (struct iovec *)iov;
  mh.msg_iovlen = (size_t)iovcnt;
  if (nfds > MAX_PASSED) return -EINVAL;
  if (nfds > 0) {
    memset(&u, 0, sizeof u);
    mh.msg_control = u.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
  }
  ssize_t n;
  do n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

ssize_t clonefd_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds, int flags, int *trunc) {
  struct iovec iov = {buf, len};
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_PASSED)];
    struct cmsghdr align;
  } u;
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = u.buf;
  mh.msg_controllen = sizeof u.buf;
  ssize_t n;
  do n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  *nfds = 0;
  *trunc = 0;
  if (n < 0) return -errno;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < k; i++) {
      int f;
      memcpy(&f, CMSG_DATA(cm) + (size_t)i * sizeof(int), sizeof f);
      if (*nfds < maxfds) fds[(*nfds)++] = f;
      else close(f);
    }
  }
  if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    for (int i = 0; i < *nfds; i++) close(fds[i]);
    *nfds = 0;
    *trunc = (mh.msg_flags & MSG_CTRUNC) ? EMFILE : EMSGSIZE;
  }
  return n;
}
