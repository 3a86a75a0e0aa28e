/* See reap.h. Runs in a parent (Node or the helper): libc is fine here. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reap.h"
#include "sys.h"

/* PIDFD_GET_INFO (6.13) and PIDFD_INFO_EXIT (6.15), absent from Debian 12's
   headers. The first 64 bytes are the version-0 layout; exit_code took the
   spare slot at offset 60. */
struct clonefd_pidfd_info {
  uint64_t mask;
  uint64_t cgroupid;
  uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
  int32_t exit_code;
};
#define CLONEFD_PIDFD_GET_INFO _IOWR(0xFF, 11, struct clonefd_pidfd_info)
#define CLONEFD_PIDFD_INFO_EXIT (1UL << 3)

int clonefd_zombie_times(pid_t pid, uint64_t *utime, uint64_t *stime, int *exit_code) {
  char path[32], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t n;
  do n = read(fd, buf, sizeof buf - 1);
  while (n < 0 && errno == EINTR);
  int err = n < 0 ? -errno : 0;
  close(fd);
  if (err) return err;
  buf[n] = '\0';
  /* comm (field 2) may hold spaces and parentheses: fields resume after the
     last ')'. */
  char *p = strrchr(buf, ')');
  if (!p || p[1] != ' ') return -EINVAL;
  p += 2;
  if (*p != 'Z') return -ESRCH;
  /* Walk from field 3 to field 52, picking 14, 15 and 52. */
  unsigned long long v14 = 0, v15 = 0;
  long long v52 = -1;
  for (int field = 3; field <= 52; field++) {
    if (field == 14 || field == 15 || field == 52) {
      char *end;
      long long v = strtoll(p, &end, 10);
      if (end == p) return -EINVAL;
      if (field == 14) v14 = (unsigned long long)v;
      else if (field == 15) v15 = (unsigned long long)v;
      else v52 = v;
    }
    if (field == 52) break;
    p = strchr(p, ' ');
    if (!p) {
      if (field >= 15 && !exit_code) break; /* old kernels: no field 52 */
      return -EINVAL;
    }
    p++;
  }
  *utime = v14;
  *stime = v15;
  if (exit_code) {
    if (v52 < 0) return -EINVAL;
    *exit_code = (int)v52;
  }
  return 0;
}

void clonefd_decode_wait_status(int wstatus, int32_t *code, int32_t *status) {
  if (WIFEXITED(wstatus)) {
    *code = CLD_EXITED;
    *status = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    *code = WCOREDUMP(wstatus) ? CLD_DUMPED : CLD_KILLED;
    *status = WTERMSIG(wstatus);
  } else {
    *code = 0;
    *status = wstatus;
  }
}

static int from_pidfd_info(int pidfd, struct clonefd_record *out) {
  /* The kernel stores the exit info a moment after the reap: retry for up
     to ~100 ms. ENOTTY/EINVAL: no PIDFD_GET_INFO here (< 6.13). */
  for (int attempt = 0; attempt < 100; attempt++) {
    struct clonefd_pidfd_info info;
    memset(&info, 0, sizeof info);
    info.mask = CLONEFD_PIDFD_INFO_EXIT;
    if (ioctl(pidfd, CLONEFD_PIDFD_GET_INFO, &info) == 0) {
      if (info.mask & CLONEFD_PIDFD_INFO_EXIT) {
        clonefd_decode_wait_status(info.exit_code, &out->info.code, &out->info.status);
        out->source = CLONEFD_SOURCE_PIDFD_INFO;
        return 0;
      }
    } else if (errno != ESRCH && errno != EINTR) {
      break;
    }
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  clonefd_record_lost(out, ECHILD);
  return -ECHILD;
}

int clonefd_reap(int pidfd, pid_t pid, struct clonefd_record *out, int flags) {
  clonefd_record_init(out, pid, CLONEFD_SOURCE_WAITID);
  uint64_t u, s;
  int have_times = clonefd_zombie_times(pid, &u, &s, NULL) == 0;

  siginfo_t si;
  struct rusage ru;
  memset(&si, 0, sizeof si);
  int nohang = (flags & CLONEFD_REAP_NOHANG) != 0;
  long r = sys_waitid_pidfd(pidfd, &si, WEXITED | __WALL | (nohang ? WNOHANG : 0), &ru);
  /* WNOHANG and no pid: exited but not ours to wait for yet (a tracer
     holds the zombie until it waits for it or detaches). */
  if (r == 0 && nohang && si.si_pid == 0) return -EAGAIN;
  if (r == 0) {
    out->info.code = si.si_code;
    out->info.status = si.si_status;
    clonefd_record_set_rusage(out, &ru);
    if (have_times) {
      out->info.utime = u;
      out->info.stime = s;
    }
    return 0;
  }
  if (r != -ECHILD) {
    clonefd_record_lost(out, (int)-r);
    return (int)r;
  }
  /* Someone else's waitpid(-1) won: the zombie we read may not even have
     been ours by then, so its times are dropped. */
  return from_pidfd_info(pidfd, out);
}

int clonefd_recover(int pidfd, pid_t pid, struct clonefd_record *out) {
  clonefd_record_init(out, pid, CLONEFD_SOURCE_ZOMBIE);
  uint64_t u, s;
  int wstatus;
  if (clonefd_zombie_times(pid, &u, &s, &wstatus) == 0) {
    /* The pid is only reusable after the reap; if the pidfd's process is
       still there (a zombie takes signal 0), what we read was ours. */
    if (SYS4(__NR_pidfd_send_signal, pidfd, 0, NULL, 0) == 0) {
      clonefd_decode_wait_status(wstatus, &out->info.code, &out->info.status);
      out->info.utime = u;
      out->info.stime = s;
      return 0;
    }
  }
  return from_pidfd_info(pidfd, out);
}

void clonefd_kill_and_reap(int pidfd) {
  SYS4(__NR_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
  for (;;) {
    struct pollfd p = {pidfd, POLLIN, 0};
    if (poll(&p, 1, -1) < 0 && errno != EINTR) return;
    siginfo_t si;
    long r = sys_waitid_pidfd(pidfd, &si, WEXITED | __WALL, NULL);
    if (r != -EAGAIN) return; /* reaped, or nothing left to reap */
  }
}
