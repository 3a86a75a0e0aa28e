/*
 * The floor for one spawn: clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD) +
 * execve("/bin/true") + waitid(P_PIDFD), one after another, in C.
 * Prints the median microseconds of N individually timed spawns.
 * usage: floor [N]
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
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

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000;
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
    if (syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED | 0x40000000, NULL) < 0) { perror("waitid"); return 1; }
    close(pidfd);
    t[i] = now_us() - t0;
  }
  qsort(t, n, sizeof t[0], cmp);
  printf("%.1f\n", t[n / 2]);
  free(t);
  return 0;
}
