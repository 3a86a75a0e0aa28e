/*
 * The floor for one spawn: clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD) +
 * execve("/bin/true") + waitid(P_PIDFD), one after another, in C.
 * Prints the microseconds of each of N individually timed spawns, one per
 * line, so that the bench can run it in blocks interleaved with the other
 * contenders and take the medians itself.
 *
 * With -c, the floor of the concurrency scenario: TOTAL spawns with at
 * most INFLIGHT alive at once, each exit reaped with waitid(P_ALL) as it
 * comes and a new child started in its place; prints the microseconds of
 * the whole run, one line.
 *
 * usage: floor [N]   (default 1000)
 *        floor -c TOTAL INFLIGHT
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x1000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef __WALL
#define __WALL 0x40000000
#endif

static char *const argv_true[] = {"true", NULL};

static int child(void *arg) {
  (void)arg;
  execve("/bin/true", argv_true, environ);
  _exit(127);
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int concurrent(int total, int inflight) {
  static char stack[65536] __attribute__((aligned(16)));
  if (total < 1 || inflight < 1 || inflight > 4096) {
    fprintf(stderr, "floor -c: needs TOTAL >= 1 and 1 <= INFLIGHT <= 4096\n");
    return 2;
  }
  /* Slot i holds a live child's pid and pidfd; pid 0: free. */
  pid_t *pids = calloc((size_t)inflight, sizeof *pids);
  int *pidfds = calloc((size_t)inflight, sizeof *pidfds);
  if (!pids || !pidfds) return 1;
  double t0 = now_us();
  int started = 0, done = 0;
  while (done < total) {
    for (int i = 0; i < inflight && started < total; i++) {
      if (pids[i] != 0) continue;
      /* The vfork stack is free again once clone returns: the child has exec'd. */
      pids[i] = clone(child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_PIDFD, NULL, &pidfds[i]);
      if (pids[i] < 0) { perror("clone"); return 1; }
      started++;
    }
    siginfo_t si;
    if (syscall(SYS_waitid, P_ALL, 0, &si, WEXITED | __WALL, NULL) < 0) { perror("waitid"); return 1; }
    if (si.si_code != CLD_EXITED || si.si_status != 0) { fprintf(stderr, "floor: /bin/true did not exit 0\n"); return 1; }
    int i = 0;
    while (i < inflight && pids[i] != si.si_pid) i++;
    if (i == inflight) { fprintf(stderr, "floor: reaped an unknown child %d\n", (int)si.si_pid); return 1; }
    close(pidfds[i]);
    pids[i] = 0;
    done++;
  }
  printf("%.1f\n", now_us() - t0);
  free(pids);
  free(pidfds);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "-c") == 0) return concurrent(atoi(argv[2]), atoi(argv[3]));
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  if (n < 1) n = 1;
  static char stack[65536] __attribute__((aligned(16)));
  double *t = malloc(sizeof(double) * n);
  if (!t) return 1;
  for (int i = 0; i < n; i++) {
    double t0 = now_us();
    int pidfd = -1;
    pid_t pid = clone(child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_PIDFD, NULL, &pidfd);
    if (pid < 0) { perror("clone"); return 1; }
    siginfo_t si;
    if (syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED | __WALL, NULL) < 0) { perror("waitid"); return 1; }
    close(pidfd);
    if (si.si_code != CLD_EXITED || si.si_status != 0) { fprintf(stderr, "floor: /bin/true did not exit 0\n"); return 1; }
    t[i] = now_us() - t0;
  }
  /* Printed after the loop, so that writing is not in any spawn's time. */
  for (int i = 0; i < n; i++) printf("%.1f\n", t[i]);
  free(t);
  return 0;
}
