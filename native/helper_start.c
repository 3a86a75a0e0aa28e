/* See helper_start.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"
#include "helper_start.h"
#include "memfd.h"
#include "protocol.h"
#include "reaper.h"
#include "sys.h"

/* The helper's bytes, generated at build time (native/embed-helper.js). */
extern const unsigned char clonefd_helper_blob[];
extern const unsigned long clonefd_helper_blob_len;

#define MAX_GROUPS 256

struct creds {
  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  int ngroups;
  gid_t groups[MAX_GROUPS];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int control_fd = -1;
static pid_t helper_pid = 0;
static long generation = 0;
static int from_memfd = 0;
static struct creds started_with;

static int read_creds(struct creds *c) {
  memset(c, 0, sizeof *c);
  if (getresuid(&c->ruid, &c->euid, &c->suid) < 0 || getresgid(&c->rgid, &c->egid, &c->sgid) < 0) return -errno;
  c->ngroups = getgroups(MAX_GROUPS, c->groups);
  if (c->ngroups < 0) return -errno;
  return 0;
}

static int same_creds(const struct creds *a, const struct creds *b) {
  return a->ruid == b->ruid && a->euid == b->euid && a->suid == b->suid && a->rgid == b->rgid &&
         a->egid == b->egid && a->sgid == b->sgid && a->ngroups == b->ngroups &&
         memcmp(a->groups, b->groups, sizeof(gid_t) * (size_t)a->ngroups) == 0;
}

/* The helper is alive while its end of the control socket is open. */
static int helper_alive(void) {
  if (control_fd < 0) return 0;
  struct pollfd p = {control_fd, 0, 0};
  int n;
  do n = poll(&p, 1, 0);
  while (n < 0 && errno == EINTR);
  return n == 0 || !(p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

static long start_locked(const char *fallback_path, int *stage) {
  *stage = CLONEFD_STAGE_NONE;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
  char memfd_path[32] = "";
  int memfd = clonefd_sealed_memfd("clonefd-helper", clonefd_helper_blob, clonefd_helper_blob_len, 1);
  if (memfd >= 0) snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);

  /* Candidates in order; the exec loop moves on after EACCES (a memfd
     refused by vm.memfd_noexec, a noexec mount) or ENOENT. */
  const char *paths[3];
  int np = 0;
  if (memfd >= 0) paths[np++] = memfd_path;
  if (fallback_path && fallback_path[0]) paths[np++] = fallback_path;
  paths[np] = NULL;
  if (np == 0) {
    close(sv[0]);
    close(sv[1]);
    return memfd < 0 ? memfd : -ENOENT;
  }
  char arg0[] = "clonefd-helper";
  char *argv[] = {arg0, NULL};
  char *envp[] = {NULL};
  /* 0-2: /dev/null, so `$(node app.js)` never waits on the helper; 3: the
     control socket. Everything else is closed at exec. */
  int stdio[4] = {-1, -1, -1, sv[1]};
  struct clonefd_plan plan;
  clonefd_plan_init(&plan);
  plan.paths = paths;
  plan.argv = argv;
  plan.envp = envp;
  plan.cwd = "/"; /* never pin a directory of Node's */
  plan.stdio = stdio;
  plan.nstdio = 4;
  /* Same process group as Node, so its children get a terminal's Ctrl-C
     like child_process children do; the helper itself ignores it. */
  int pidfd = -1;
  long pid = clonefd_spawn_vfork(&plan, &pidfd);
  if (memfd >= 0) close(memfd);
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    *stage = plan.stage;
    return pid;
  }
  /* Node is the helper's parent: when it ends (normally only after Node),
     someone must reap it. The process-wide reaper does, never waitpid(-1). */
  if (clonefd_reaper_adopt(pidfd) != 0) close(pidfd);
  char exe[64], link[128];
  snprintf(exe, sizeof exe, "/proc/%ld/exe", pid);
  ssize_t k = readlink(exe, link, sizeof link - 1);
  from_memfd = k > 8 && strncmp(link, "/memfd:", 7) == 0;
  control_fd = sv[0];
  helper_pid = (pid_t)pid;
  return ++generation;
}

long clonefd_helper_ensure(const char *fallback_path, int *stage) {
  struct creds now;
  *stage = CLONEFD_STAGE_NONE;
  int r = read_creds(&now);
  if (r < 0) return r;
  pthread_mutex_lock(&lock);
  long result;
  if (helper_alive() && same_creds(&now, &started_with)) {
    result = generation;
  } else {
    if (control_fd >= 0) {
      /* Dead, or started with other credentials: closing the control
         channel tells an old helper to spawn nothing more and to exit once
         its children are reaped. */
      close(control_fd);
      control_fd = -1;
      helper_pid = 0;
    }
    result = start_locked(fallback_path, stage);
    if (result > 0) started_with = now;
  }
  pthread_mutex_unlock(&lock);
  return result;
}

int clonefd_helper_connect(long gen, int *req_sock, int *event_sock) {
  pthread_mutex_lock(&lock);
  int result = 0;
  int req[2] = {-1, -1}, ev[2] = {-1, -1};
  if (gen != generation || control_fd < 0) {
    result = -ESTALE;
  } else if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, req) < 0 ||
             socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ev) < 0) {
    result = -errno;
  } else {
    result = clonefd_hello_send(control_fd, req[1], ev[1]);
  }
  if (req[1] >= 0) close(req[1]);
  if (ev[1] >= 0) close(ev[1]);
  if (result < 0) {
    if (req[0] >= 0) close(req[0]);
    if (ev[0] >= 0) close(ev[0]);
  } else {
    *req_sock = req[0];
    *event_sock = ev[0];
  }
  pthread_mutex_unlock(&lock);
  return result;
}

void clonefd_helper_abandon(long gen) {
  pthread_mutex_lock(&lock);
  if (gen == generation && control_fd >= 0) {
    /* Its control channel's EOF tells it (once it runs again) to spawn
       nothing more and to exit after its children are reaped. */
    close(control_fd);
    control_fd = -1;
    helper_pid = 0;
  }
  pthread_mutex_unlock(&lock);
}

int clonefd_helper_pid(void) {
  pthread_mutex_lock(&lock);
  int pid = helper_alive() ? helper_pid : 0;
  pthread_mutex_unlock(&lock);
  return pid;
}

int clonefd_helper_from_memfd(void) { return from_memfd; }
