/* The child side of a spawn: see child.h. Raw system calls only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sched.h>
#include <sys/prctl.h>
#include <linux/futex.h>

#include "child.h"
#include "sys.h"

#ifndef F_DUPFD_CLOEXEC
#define F_DUPFD_CLOEXEC 1030
#endif

__attribute__((noreturn)) static void fail(struct clonefd_plan *p, int stage, long r) {
  p->err = (int)-r;
  p->stage = stage;
  if (p->err_fd >= 0) {
    int32_t rec[2] = {(int32_t)-r, stage};
    SYS3(__NR_write, p->err_fd, rec, sizeof rec);
  }
  for (;;) SYS1(__NR_exit_group, 127);
}

/* For each open fd >= from other than keep_a/keep_b: close it, or mark it
   close-on-exec. Walks /proc/self/fd: for kernels without close_range
   (< 5.11), and never a loop to RLIMIT_NOFILE (Node raises it to the hard
   limit, often a million). */
static long walk_fds(int from, int keep_a, int keep_b, int close_them) {
  long dfd = SYS4(__NR_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (dfd < 0) return dfd;
  char buf[2048] __attribute__((aligned(8)));
  for (;;) {
    long n = SYS3(__NR_getdents64, dfd, buf, sizeof buf);
    if (n <= 0) {
      SYS1(__NR_close, dfd);
      return n;
    }
    for (long off = 0; off < n;) {
      /* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name */
      unsigned short reclen = *(unsigned short *)(buf + off + 16);
      const char *name = buf + off + 19;
      off += reclen;
      if (name[0] < '0' || name[0] > '9') continue;
      long fd = 0;
      for (; *name >= '0' && *name <= '9'; name++) fd = fd * 10 + (*name - '0');
      if (fd < from || fd == dfd || fd == keep_a || fd == keep_b) continue;
      if (close_them) SYS1(__NR_close, fd);
      else SYS3(__NR_fcntl, fd, F_SETFD, FD_CLOEXEC);
    }
  }
}

/* Every fd >= from becomes close-on-exec, so the child keeps only what was
   mapped for it: close_range (5.11) in one call, else the walk. */
static long cloexec_from(int from) {
  long r = SYS3(__NR_close_range, from, ~0U, CLOSE_RANGE_CLOEXEC);
  if (r != -ENOSYS && r != -EINVAL) return r;
  return walk_fds(from, -1, -1, 0);
}

/* The helper's children: close (not just mark) every fd from `from` on,
   except the exec pipe, which must live until exec. A child that has not
   exec'd yet then holds no copy of a sibling's record pipe, which would
   delay that sibling's EOF. */
static long close_from_except(int from, int keep) {
  long r = 0;
  if (keep > from) r = SYS3(__NR_close_range, from, keep - 1, 0);
  if (r == 0) r = SYS3(__NR_close_range, keep < from ? from : keep + 1, ~0U, 0);
  if (r == -ENOSYS || r == -EINVAL) return walk_fds(from, keep, -1, 1);
  return r;
}

void clonefd_plan_init(struct clonefd_plan *p) {
  /* Parent side: runs before the clone, libc is fine here. */
  memset(p, 0, sizeof *p);
  p->cwd_fd = -1;
  p->umask = -1;
  p->err_fd = -1;
  p->cgroup_fd = -1;
}

/* Into the cgroup: "0" written to its cgroup.procs moves the writer. */
static long join_cgroup(int dirfd) {
  long fd = SYS4(__NR_openat, dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC, 0);
  if (fd < 0) return fd;
  long r = SYS3(__NR_write, fd, "0", 1);
  SYS1(__NR_close, fd);
  return r < 0 ? r : 0;
}

/* The 64-bit hex mask after "\n<key>" in buf: 0 when found (*out set). No
   libc here (an interposed memcmp may not be safe on a borrowed stack). */
static int status_mask(const char *buf, long n, const char *key, uint64_t *out) {
  long keylen = 0;
  while (key[keylen]) keylen++;
  for (long i = 0; i + 1 + keylen + 16 <= n; i++) {
    if (buf[i] != '\n') continue;
    long k = 0;
    while (k < keylen && buf[i + 1 + k] == key[k]) k++;
    if (k < keylen) continue;
    uint64_t m = 0;
    const char *h = buf + i + 1 + keylen;
    for (int d = 0; d < 16; d++) {
      char c = h[d];
      int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (v < 0) return -1;
      m = m << 4 | (uint64_t)v;
    }
    *out = m;
    return 0;
  }
  return -1;
}

/* The signals whose disposition is not SIG_DFL in this process (ignored or
   caught), as bits sig-1, from its own /proc status: since the clone our
   signal handlers are our own copy, so nobody can change them under us.
   Every signal when that cannot be read (no /proc, a full fd table). */
__attribute__((noinline)) static uint64_t not_default_signals(void) {
  char buf[4096];
  long fd = SYS4(__NR_openat, AT_FDCWD, "/proc/thread-self/status", O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return ~0ULL;
  long n = 0, r;
  while (n < (long)sizeof buf && (r = SYS3(__NR_read, fd, buf + n, sizeof buf - (size_t)n)) > 0) n += r;
  SYS1(__NR_close, fd);
  uint64_t ign = 0, cgt = 0;
  if (status_mask(buf, n, "SigIgn:\t", &ign) < 0 || status_mask(buf, n, "SigCgt:\t", &cgt) < 0) return ~0ULL;
  return ign | cgt;
}

static int retry_next(long r) {
  /* execvp's rule: these mean "not here, try the next PATH entry". */
  return r == -ENOENT || r == -ENOTDIR || r == -ENODEV || r == -ETIMEDOUT || r == -ESTALE;
}

int clonefd_child_main(void *arg) {
  struct clonefd_plan *p = (struct clonefd_plan *)arg;
  const int n = p->nstdio;
  int fds[CLONEFD_MAX_STDIO];
  long r;

  if (p->files_below > 0) {
    /* Our own fd table before anything else, with only the fds below
       files_below (the kernel copies just those), then let the caller go
       on. Without CLOSE_RANGE_UNSHARE (< 5.9) a full private copy; the
       close below then drops the rest one by one. A failure is reported
       while the caller still waits, so its fds (the exec pipe) are there. */
    r = SYS3(__NR_close_range, p->files_below, ~0U, CLOSE_RANGE_UNSHARE);
    if (r == -ENOSYS || r == -EINVAL) r = SYS1(__NR_unshare, CLONE_FILES);
    if (r < 0) fail(p, CLONEFD_STAGE_CLOSE, r);
    __atomic_store_n(p->handoff, 2, __ATOMIC_RELEASE);
    SYS4(__NR_futex, p->handoff, FUTEX_WAKE, 1, 0);
  }
  if (p->cgroup_join) {
    r = join_cgroup(p->cgroup_fd);
    if (r < 0) fail(p, CLONEFD_STAGE_CGROUP, r);
  }
  if (p->err_fd >= 0) {
    /* First word on the exec pipe: our pid. Whoever waits on the pipe can
       then find (and stop) us even if the helper that made us dies before
       it answers. */
    int32_t pid = (int32_t)SYS0(__NR_getpid);
    SYS3(__NR_write, p->err_fd, &pid, sizeof pid);
  }
  if (p->pdeath_signal) {
    r = SYS2(__NR_prctl, PR_SET_PDEATHSIG, p->pdeath_signal);
    if (r < 0) fail(p, CLONEFD_STAGE_SIGNALS, r);
    /* The parent may have died before the prctl took effect. */
    if (SYS0(__NR_getppid) != p->parent_pid) fail(p, CLONEFD_STAGE_SIGNALS, -ESRCH);
  }
  if (p->flags & CLONEFD_SETSID) {
    r = SYS0(__NR_setsid);
    if (r < 0) fail(p, CLONEFD_STAGE_SETSID, r);
  } else if (p->flags & CLONEFD_SETPGID) {
    r = SYS2(__NR_setpgid, 0, 0);
    if (r < 0) fail(p, CLONEFD_STAGE_SETPGID, r);
  }
  /* Start from the given directory before any fd is moved: cwd_fd may sit
     where a stdio target goes. */
  if (p->cwd_fd >= 0) {
    r = SYS1(__NR_fchdir, p->cwd_fd);
    if (r < 0) fail(p, CLONEFD_STAGE_CHDIR, r);
  }
  if (p->umask >= 0) SYS1(__NR_umask, p->umask);
  /* The error pipe must survive the shuffle below: move it above n
     (still close-on-exec). */
  if (p->err_fd >= 0 && p->err_fd < n) {
    r = SYS3(__NR_fcntl, p->err_fd, F_DUPFD_CLOEXEC, n);
    if (r < 0) fail(p, CLONEFD_STAGE_STDIO, r);
    p->err_fd = (int)r;
  }

  /* Pass 1: move every source that a target slot could clobber (an fd
     below n) above n, so that pass 2 can dup in any order; swapping 1 and
     2 works. /dev/null is opened once, above n too. */
  int devnull = -1;
  for (int i = 0; i < n; i++) {
    int src = p->stdio[i];
    if (src < 0 && i < 3 && devnull < 0) {
      r = SYS4(__NR_openat, AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC, 0);
      if (r < 0) fail(p, CLONEFD_STAGE_DEVNULL, r);
      if (r < n) {
        long moved = SYS3(__NR_fcntl, r, F_DUPFD_CLOEXEC, n);
        SYS1(__NR_close, r);
        if (moved < 0) fail(p, CLONEFD_STAGE_DEVNULL, moved);
        r = moved;
      }
      devnull = (int)r;
    }
    if (src >= 0 && src < n && src != i) {
      r = SYS3(__NR_fcntl, src, F_DUPFD_CLOEXEC, n);
      if (r < 0) fail(p, CLONEFD_STAGE_STDIO, r);
      src = (int)r;
    }
    fds[i] = src;
  }
  /* Pass 2: place them. dup3 without O_CLOEXEC leaves the target
     inheritable; a source already in place only loses its FD_CLOEXEC. */
  for (int i = 0; i < n; i++) {
    int src = fds[i] >= 0 ? fds[i] : (i < 3 ? devnull : -1);
    if (src < 0)
      r = SYS1(__NR_close, i), r = (r == -EBADF ? 0 : r);
    else if (src == i)
      r = SYS3(__NR_fcntl, i, F_SETFD, 0);
    else
      r = SYS3(__NR_dup3, src, i, 0);
    if (r < 0) fail(p, CLONEFD_STAGE_STDIO, r);
    /* Programs expect blocking stdio: a pipe or socket Node gave us (its
       libuv handles are O_NONBLOCK) would make `cat` fail with EAGAIN.
       As libuv does for fds 0-2: clear it, on the shared open file
       description; a failure is ignored, as there. Our own /dev/null is
       blocking already. */
    if (i < 3 && src != devnull) {
      long fl = SYS3(__NR_fcntl, i, F_GETFL, 0);
      if (fl >= 0 && (fl & O_NONBLOCK)) SYS3(__NR_fcntl, i, F_SETFL, fl & ~(long)O_NONBLOCK);
    }
  }
  if (p->err_fd >= 0) r = close_from_except(n, p->err_fd);
  else r = cloexec_from(n);
  if (r < 0) fail(p, CLONEFD_STAGE_CLOSE, r);

  if (p->cwd) {
    r = SYS1(__NR_chdir, p->cwd);
    if (r < 0) fail(p, CLONEFD_STAGE_CHDIR, r);
  }
  if (p->flags & (CLONEFD_SETUID | CLONEFD_SETGID)) {
    /* Drop supplementary groups first, as libuv does; it fails without
       CAP_SETGID, in which case setgid/setuid report the real error. */
    SYS2(__NR_setgroups, 0, NULL);
  }
  if (p->flags & CLONEFD_SETGID) {
    r = SYS1(__NR_setgid, p->gid);
    if (r < 0) fail(p, CLONEFD_STAGE_SETGID, r);
  }
  if (p->flags & CLONEFD_SETUID) {
    r = SYS1(__NR_setuid, p->uid);
    if (r < 0) fail(p, CLONEFD_STAGE_SETUID, r);
  }

  /* Every disposition back to default: CLONE_CLEAR_SIGHAND resets handled
     signals but keeps ignored ones ignored (Node ignores SIGPIPE and
     SIGXFSZ), and legacy clone() cannot take that flag at all. Only those
     not at default need the call: a syscall costs about 1 µs here, and
     the 62 of them were a tenth of the time to exec. */
  struct kernel_sigaction dfl = {0};
  dfl.handler = SIG_DFL;
  uint64_t reset = not_default_signals();
  for (int sig = 1; sig <= 64; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP || !(reset & (1ULL << (sig - 1)))) continue;
    r = SYS4(__NR_rt_sigaction, sig, &dfl, NULL, KERNEL_SIGSET_SIZE);
    if (r < 0) fail(p, CLONEFD_STAGE_SIGNALS, r);
  }
  uint64_t none = 0;
  r = SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &none, NULL, KERNEL_SIGSET_SIZE);
  if (r < 0) fail(p, CLONEFD_STAGE_SIGNALS, r);

  int eacces = 0;
  r = -ENOENT;
  for (const char *const *path = p->paths; *path; path++) {
    r = SYS3(__NR_execve, *path, p->argv, p->envp);
    if (r == -EACCES) {
      eacces = 1;
      continue;
    }
    if (!retry_next(r)) break;
  }
  if (retry_next(r) && eacces) r = -EACCES;
  fail(p, CLONEFD_STAGE_EXEC, r);
}
