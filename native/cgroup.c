/* See cgroup.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"

int clonefd_group_empty(int events_fd) {
  char buf[128];
  ssize_t n = pread(events_fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 1;
  buf[n] = '\0';
  return strstr(buf, "populated 0") != NULL;
}

/* A level's names are read before descending, so each level holds one fd
   while the levels below it are removed; the bound limits those fds and
   the stack (cgroup.max.depth is "max" by default). */
#define MAX_SUBGROUP_DEPTH 1024

static void remove_subgroups(int dirfd, int depth) {
  if (depth >= MAX_SUBGROUP_DEPTH) return;
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return;
  }
  char *names = NULL;
  size_t len = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t n = strlen(e->d_name) + 1;
    if (len + n > cap) {
      size_t ncap = cap ? cap * 2 : 256;
      while (ncap < len + n) ncap *= 2;
      char *p = realloc(names, ncap);
      if (!p) break; /* out of memory: what was read is still removed */
      names = p;
      cap = ncap;
    }
    memcpy(names + len, e->d_name, n);
    len += n;
  }
  closedir(d);
  for (size_t off = 0; off < len; off += strlen(names + off) + 1) {
    int sub = openat(dirfd, names + off, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sub < 0) continue;
    remove_subgroups(sub, depth + 1);
    close(sub);
    unlinkat(dirfd, names + off, AT_REMOVEDIR);
  }
  free(names);
}

void clonefd_group_thaw(int dirfd) {
  int fd = openat(dirfd, "cgroup.freeze", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n;
  do n = write(fd, "0", 1);
  while (n < 0 && errno == EINTR);
  close(fd);
}

void clonefd_group_remove(int dirfd) {
  remove_subgroups(dirfd, 0);
  /* rmdir has no fd form: the path from /proc/self/fd. A group removed
     already reads "... (deleted)": rmdir fails with ENOENT, nothing done. */
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n > 0) {
    path[n] = '\0';
    rmdir(path); /* EBUSY cannot come back for an empty tree: no member left to fork */
  }
}
