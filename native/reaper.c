/* See reaper.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "reaper.h"
#include "sys.h"

/* Plain statics with constant initialisers: nothing to destroy at exit
   while the detached thread may still run. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int epfd = -1;
static int pending = 0;

/* epoll data: a pidfd as fd << 1, or a struct group * with its low bit set
   (malloc'd: the bit is free). */
struct group {
  int dir, events;
  struct group *next, *prev; /* groups: the kernel may never say one emptied (below) */
};
static struct group *groups; /* with the lock held */

static void group_done(struct group *g) {
  clonefd_group_remove(g->dir);
  close(g->events);
  close(g->dir);
  free(g);
}

/* With the lock held: out of the epoll set and the list, removed. */
static void group_finish_locked(struct group *g) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, g->events, NULL);
  if (g->prev) g->prev->next = g->next;
  else groups = g->next;
  if (g->next) g->next->prev = g->prev;
  pending--;
  group_done(g);
}

/* cgroup.events notifications are rate-limited (one per 10 ms, the rest
   deferred) and an rmdir by someone else (the helper) cancels a deferred
   one: every group is looked at again once a second while any is held. */
#define GROUP_SWEEP_MS 1000
static void sweep_groups_locked(void) {
  for (struct group *g = groups, *next; g; g = next) {
    next = g->next;
    if (clonefd_group_empty(g->events)) group_finish_locked(g);
  }
}

/* Exited children whose zombie a tracer holds (the pidfd is readable, the
   reap is not possible yet): out of the epoll set (it is level-triggered:
   it would spin), tried again every DEFER_RETRY_MS. The thread's alone. */
#define DEFER_RETRY_MS 200
static int *deferred;
static size_t ndeferred, deferred_cap;

/* 1: reaped (or not ours any more), 0: not yet. */
static int try_reap(int fd) {
  siginfo_t si;
  si.si_pid = 0;
  long r = sys_waitid_pidfd(fd, &si, WEXITED | WNOHANG | __WALL, NULL);
  return !(r == 0 && si.si_pid == 0);
}

static void reaped(int fd) {
  close(fd);
  pthread_mutex_lock(&lock);
  pending--;
  pthread_mutex_unlock(&lock);
}

static void retry_deferred(void) {
  for (size_t i = 0; i < ndeferred;) {
    if (try_reap(deferred[i])) {
      reaped(deferred[i]);
      deferred[i] = deferred[--ndeferred];
    } else {
      i++;
    }
  }
}

static void *reaper_main(void *arg) {
  (void)arg;
  struct epoll_event ev[16];
  for (;;) {
    pthread_mutex_lock(&lock);
    int timeout = ndeferred > 0 ? DEFER_RETRY_MS : groups ? GROUP_SWEEP_MS : -1;
    pthread_mutex_unlock(&lock);
    int n = epoll_wait(epfd, ev, 16, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      return NULL; /* unreachable in practice: epfd lives forever */
    }
    if (ndeferred > 0) retry_deferred();
    if (n == 0) {
      pthread_mutex_lock(&lock);
      sweep_groups_locked();
      pthread_mutex_unlock(&lock);
      continue;
    }
    for (int i = 0; i < n; i++) {
      uint64_t d = ev[i].data.u64;
      if (d & 1) {
        /* Each group is in the set once, so this is its only event of the
           batch: freeing it here cannot leave a later one dangling. */
        struct group *g = (struct group *)(uintptr_t)(d & ~(uint64_t)1);
        pthread_mutex_lock(&lock);
        if (clonefd_group_empty(g->events)) group_finish_locked(g);
        pthread_mutex_unlock(&lock);
        continue;
      }
      int fd = (int)(d >> 1);
      if (!try_reap(fd)) {
        /* Readable but not reapable: a tracer holds the zombie. */
        if (ndeferred == deferred_cap) {
          size_t cap = deferred_cap ? deferred_cap * 2 : 16;
          int *grown = realloc(deferred, cap * sizeof *deferred);
          if (grown == NULL) {
            /* Stays in the set, polled again: slowed down, not a spin. */
            struct timespec nap = {0, 10 * 1000 * 1000};
            nanosleep(&nap, NULL);
            continue;
          }
          deferred = grown;
          deferred_cap = cap;
        }
        epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
        deferred[ndeferred++] = fd;
        continue;
      }
      epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
      reaped(fd);
    }
  }
}

/* Starts the thread on first use; with the lock held. 0 or -errno. */
static int start_locked(void) {
  int err = 0;
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
out:
  return err;
}

static int add_locked(int fd, uint32_t events, uint64_t data) {
  int err = start_locked();
  if (err < 0) return err;
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = events;
  ev.data.u64 = data;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) return -errno;
  pending++;
  return 0;
}

int clonefd_reaper_adopt(int pidfd) {
  pthread_mutex_lock(&lock);
  int err = add_locked(pidfd, EPOLLIN, (uint64_t)pidfd << 1);
  pthread_mutex_unlock(&lock);
  return err;
}

void clonefd_reaper_adopt_group(int dirfd) {
  /* Its environment is gone: a freeze of its (a freeze() or a killTree()
     cut short) would never be undone. */
  clonefd_group_thaw(dirfd);
  struct group *g = malloc(sizeof *g);
  int events = openat(dirfd, "cgroup.events", O_RDONLY | O_CLOEXEC);
  if (!g || events < 0) {
    /* Cannot follow it: remove it if that can be done now. */
    clonefd_group_remove(dirfd);
    if (events >= 0) close(events);
    close(dirfd);
    free(g);
    return;
  }
  g->dir = dirfd;
  g->events = events;
  /* Read first (kernfs reports every change since the open); empty now:
     removed now, no thread needed. */
  if (clonefd_group_empty(events)) {
    group_done(g);
    return;
  }
  g->prev = NULL;
  pthread_mutex_lock(&lock);
  int err = add_locked(events, EPOLLPRI, (uint64_t)(uintptr_t)g | 1);
  if (err == 0) {
    g->next = groups;
    if (groups) groups->prev = g;
    groups = g;
  }
  pthread_mutex_unlock(&lock);
  if (err < 0) group_done(g); /* populated: rmdir fails, the group stays (said in the README) */
}

int clonefd_reaper_pending(void) {
  pthread_mutex_lock(&lock);
  int n = pending;
  pthread_mutex_unlock(&lock);
  return n;
}
