/* See reaper.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reaper.h"
#include "sys.h"

/* Plain statics with constant initialisers: nothing to destroy at exit
   while the detached thread may still run. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int epfd = -1;
static int pending = 0;

static void *reaper_main(void *arg) {
  (void)arg;
  struct epoll_event ev[16];
  for (;;) {
    int n = epoll_wait(epfd, ev, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return NULL; /* unreachable in practice: epfd lives forever */
    }
    for (int i = 0; i < n; i++) {
      int fd = ev[i].data.fd;
      siginfo_t si;
      si.si_pid = 0;
      long r = sys_waitid_pidfd(fd, &si, WEXITED | WNOHANG | __WALL, NULL);
      /* WNOHANG with si_pid 0: readable but not reapable yet (cannot happen
         for an exited child; keep polling rather than guess). */
      if (r == 0 && si.si_pid == 0) continue;
      epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
      close(fd);
      pthread_mutex_lock(&lock);
      pending--;
      pthread_mutex_unlock(&lock);
    }
  }
}

int clonefd_reaper_adopt(int pidfd) {
  int err = 0;
  pthread_mutex_lock(&lock);
  if (epfd < 0) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) {
      err = -errno;
      goto out;
    }
    /* The thread must never take a signal meant for Node's threads. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    epfd = fd;
    pthread_t t;
    int rc = pthread_create(&t, &attr, reaper_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (rc != 0) {
      close(fd);
      epfd = -1;
      err = -rc;
      goto out;
    }
  }
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.fd = pidfd;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, pidfd, &ev) < 0) {
    err = -errno;
    goto out;
  }
  pending++;
out:
  pthread_mutex_unlock(&lock);
  return err;
}

int clonefd_reaper_pending(void) {
  pthread_mutex_lock(&lock);
  int n = pending;
  pthread_mutex_unlock(&lock);
  return n;
}
