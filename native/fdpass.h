/*
 * Messages with file descriptors over a unix socket (SCM_RIGHTS), shared
 * by the helper and both sides of the Node process's connection to it.
 */
#ifndef CLONEFD_FDPASS_H
#define CLONEFD_FDPASS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* sendmsg of iov with nfds fds attached (none if nfds is 0). flags as
   sendmsg's (MSG_NOSIGNAL is always added). EINTR is retried. Returns the
   byte count or -errno. */
ssize_t clonefd_send_fds(int sock, const struct iovec *iov, int iovcnt, const int *fds, int nfds, int flags);

/* recvmsg into buf, fds received CLOEXEC into fds (at most maxfds; any
   beyond are closed). EINTR is retried. Returns the byte count, 0 at EOF,
   or -errno. *nfds: fds received. *trunc: 0, or the errno to answer a
   message that did not fit (EMSGSIZE: bytes; EMFILE: fds, when the fd
   table is full); its fds are then closed and *nfds is 0. */
ssize_t clonefd_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds, int flags, int *trunc);

#ifdef __cplusplus
}
#endif

#endif
