/*
 * Valgrind builds only (scripts/native-build.js --mode valgrind): replaces
 * native/spawn_vfork.c, in the helper only.
 *
 * Valgrind cannot run a CLONE_VM child that is not a thread: it turns
 * CLONE_VM|CLONE_VFORK into a plain fork (which is what the addon's
 * clonefd_spawn_vfork gets under valgrind, unshimmed), and it refuses
 * CLONE_VM without CLONE_VFORK, the helper's clonefd_spawn_shared, with
 * "Unsupported clone() flags" and a fatal "Valgrind does not support general
 * clone()". So that valgrind can check the helper at all, its spawn here is
 * a fork-like clone (CLONE_PIDFD, exit signal 0: no shared memory) that runs
 * the same clonefd_child_main(plan) from native/child.c. Everything the
 * helper does around the spawn (decode, plan, stack cache, exec/record
 * pipes, pidfd watch, reap, EXIT) is the real code; only the address-space
 * sharing differs, which is also what ASan cannot look at (child-side code
 * is left uninstrumented there). The child has its own copy of the spawn
 * memory, so its in-use word is 0 at once and the helper frees that memory
 * at its next sweep, on the real code path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <linux/sched.h>

#include "child.h"
#include "sys.h"

void clonefd_force_legacy_clone(int on) { (void)on; }

const char *clonefd_clone_path(void) { return "clone"; }

/* A fork with a pidfd and no exit signal; the child runs the plan. */
static long fork_run(struct clonefd_plan *plan, int *pidfd) {
  uint64_t all = ~0ULL, saved = 0;
  SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &all, &saved, KERNEL_SIGSET_SIZE);
  /* Raw clone(flags, newsp = 0: fork-like, parent_tid = where CLONE_PIDFD
     stores the pidfd, 0, 0): the same first three arguments on x86_64 and
     aarch64. */
  long pid = SYS5(__NR_clone, CLONE_PIDFD, 0, pidfd, 0, 0);
  if (pid == 0) clonefd_child_main(plan); /* never returns */
  SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &saved, NULL, KERNEL_SIGSET_SIZE);
  return pid;
}

long clonefd_spawn_shared(struct clonefd_plan *plan, void *stack, size_t size, int *pidfd, volatile int *in_use) {
  (void)stack;
  (void)size;
  *in_use = 0; /* nothing of ours is shared with a forked child */
  plan->err = 0;
  plan->stage = CLONEFD_STAGE_NONE;
  *pidfd = -1;
  return fork_run(plan, pidfd);
}

/* Not used by the helper; defined so that the helper links. */
long clonefd_spawn_vfork(struct clonefd_plan *plan, int *pidfd_out) {
  int pidfd = -1;
  volatile int in_use;
  long pid = clonefd_spawn_shared(plan, 0, 0, &pidfd, &in_use);
  if (pid >= 0) *pidfd_out = pidfd;
  return pid;
}
