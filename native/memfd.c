/* See memfd.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memfd.h"

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

int clonefd_sealed_memfd(const char *name, const void *data, size_t len, int exec) {
  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  int fd = (int)syscall(SYS_memfd_create, name, flags | (exec ? MFD_EXEC : 0));
  /* Before 6.3 there is no MFD_EXEC, and memfds are executable anyway. */
  if (fd < 0 && errno == EINVAL && exec) fd = (int)syscall(SYS_memfd_create, name, flags);
  if (fd < 0) return -errno;
  const char *p = (const char *)data;
  size_t left = len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int err = w < 0 ? -errno : -EIO;
      close(fd);
      return err;
    }
    p += w;
    left -= (size_t)w;
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}
