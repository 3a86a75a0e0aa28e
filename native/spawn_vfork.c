/* In-process spawn with a shared address space: see child.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <linux/sched.h>
#include <linux/wait.h>

#include "child.h"
#include "sys.h"

/*
 * clone3 with a stack needs a trampoline: the child returns from the
 * system call on the new, empty stack, so it cannot return into C. Both
 * sequences keep fn and arg in registers the kernel copies to the child,
 * call fn(arg) there and exit with its result; the parent just returns.
 */
__attribute__((visibility("hidden"))) long clonefd_clone3_run(struct clone_args *args, size_t size,
                                                              int (*fn)(void *), void *arg);
#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".globl clonefd_clone3_run\n"
    ".hidden clonefd_clone3_run\n"
    ".type clonefd_clone3_run,@function\n"
    "clonefd_clone3_run:\n"
    "  mov %rdx, %r8\n"  /* fn: rdx survives syscall, but keep it clear */
    "  mov %rcx, %r9\n"  /* arg: rcx is clobbered by syscall */
    "  mov $435, %eax\n" /* __NR_clone3 */
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jz 1f\n"
    "  ret\n"
    "1:\n"
    "  xor %ebp, %ebp\n" /* end of the frame chain for unwinders */
    "  mov %r9, %rdi\n"
    "  call *%r8\n"      /* stack top is 16-aligned: ABI-correct call */
    "  mov %eax, %edi\n"
    "  mov $231, %eax\n" /* __NR_exit_group */
    "  syscall\n"
    "  hlt\n"
    ".size clonefd_clone3_run, .-clonefd_clone3_run\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".globl clonefd_clone3_run\n"
    ".hidden clonefd_clone3_run\n"
    ".type clonefd_clone3_run,%function\n"
    "clonefd_clone3_run:\n"
    "  mov x8, #435\n" /* __NR_clone3; x2 (fn) and x3 (arg) reach the child */
    "  svc #0\n"
    "  cbz x0, 1f\n"
    "  ret\n"
    "1:\n"
    "  mov x29, #0\n"
    "  mov x30, #0\n"
    "  mov x0, x3\n"
    "  blr x2\n"
    "  mov x8, #94\n" /* __NR_exit_group */
    "  svc #0\n"
    "  brk #0\n"
    ".size clonefd_clone3_run, .-clonefd_clone3_run\n");
#endif

static int legacy_only = 0;
static int last_path_legacy = 0;

void clonefd_force_legacy_clone(int on) { __atomic_store_n(&legacy_only, on != 0, __ATOMIC_RELAXED); }

const char *clonefd_clone_path(void) {
  return __atomic_load_n(&last_path_legacy, __ATOMIC_RELAXED) ? "clone" : "clone3";
}

/* clone3 (or legacy clone) of clonefd_child_main(plan) on the given stack,
   sharing the caller's memory, with every signal blocked around it. With
   in_use, the kernel zeroes that word when the child leaves our memory
   (CLONE_CHILD_CLEARTID: at its exec's switch to a new address space, or
   at its exit). Returns the pid or -errno. */
static long clone_on_stack(struct clonefd_plan *plan, char *stack, size_t size, int vfork, int *pidfd,
                           volatile int *in_use) {
  uint64_t all = ~0ULL, saved = 0;
  long pid = -ENOSYS;
  int legacy = __atomic_load_n(&legacy_only, __ATOMIC_RELAXED);
  uint64_t shared = CLONE_VM | CLONE_PIDFD | (vfork ? CLONE_VFORK : 0) | (in_use ? CLONE_CHILD_CLEARTID : 0) |
                    (!vfork && plan->files_below > 0 ? CLONE_FILES : 0);
  if (in_use) *in_use = 1;

  /* Block everything with the raw call: libc's pthread_sigmask would leave
     its internal signals open, and a handler of the parent must never run
     on the child's borrowed memory before the child resets dispositions. */
  SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &all, &saved, KERNEL_SIGSET_SIZE);
  if (!legacy) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = shared | CLONE_CLEAR_SIGHAND;
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    args.exit_signal = 0; /* no SIGCHLD (until exec; see the README) */
    args.stack = (uint64_t)(uintptr_t)stack;
    args.stack_size = size;
    args.child_tid = (uint64_t)(uintptr_t)in_use;
    plan->cgroup_join = 0;
    if (plan->cgroup_fd >= 0) {
      args.flags |= CLONE_INTO_CGROUP;
      args.cgroup = (uint64_t)plan->cgroup_fd;
    }
    pid = clonefd_clone3_run(&args, sizeof args, clonefd_child_main, plan);
    if (plan->cgroup_fd >= 0 && (pid == -ENOSYS || pid == -EPERM || pid == -EINVAL || pid == -E2BIG)) {
      /* Maybe only CLONE_INTO_CGROUP is refused (< 5.7, or a seccomp
         profile): without it, the child joins the group itself before it
         can start anything. A real refusal of the group (no write access)
         then comes from that join, with its own errno and stage. */
      args.flags &= ~(uint64_t)CLONE_INTO_CGROUP;
      args.cgroup = 0;
      plan->cgroup_join = 1;
      pid = clonefd_clone3_run(&args, sizeof args, clonefd_child_main, plan);
    }
    /* ENOSYS: no clone3 (< 5.3). EPERM: container seccomp profiles refuse
       clone3 without CAP_SYS_ADMIN. EINVAL: clone3 without
       CLONE_CLEAR_SIGHAND (5.3-5.4). Remember, and go legacy. */
    if (pid == -ENOSYS || pid == -EPERM || pid == -EINVAL) {
      __atomic_store_n(&legacy_only, 1, __ATOMIC_RELAXED);
      legacy = 1;
    }
  }
  if (legacy) {
    plan->cgroup_join = plan->cgroup_fd >= 0;
    /* CLONE_PIDFD makes clone() store the pidfd through parent_tid. */
    pid = clone(clonefd_child_main, stack + size, (int)shared, plan, pidfd, NULL, in_use);
    if (pid < 0) pid = -errno;
  }
  SYS4(__NR_rt_sigprocmask, SIG_SETMASK, &saved, NULL, KERNEL_SIGSET_SIZE);
  if (pid >= 0) __atomic_store_n(&last_path_legacy, legacy, __ATOMIC_RELAXED);
  return pid;
}

long clonefd_spawn_vfork(struct clonefd_plan *plan, int *pidfd_out) {
  /* The child runs here, below nothing the suspended caller still uses:
     the caller is blocked in clone until the child execs or exits. */
  char stack[16384] __attribute__((aligned(16)));
  int pidfd = -1;
  plan->err = 0;
  plan->stage = CLONEFD_STAGE_NONE;
  long pid = clone_on_stack(plan, stack, sizeof stack, 1, &pidfd, NULL);
  if (pid < 0) {
    plan->stage = CLONEFD_STAGE_CLONE;
    return pid;
  }
  if (plan->err) {
    /* The child failed before exec and has exited (or is about to: vfork
       resumes us at its mm release). Reap it now so no zombie remains. */
    int err = plan->err;
    siginfo_t si;
    sys_waitid_pidfd(pidfd, &si, WEXITED | __WALL, NULL);
    SYS1(__NR_close, pidfd);
    return -err;
  }
  *pidfd_out = pidfd;
  return pid;
}

long clonefd_spawn_shared(struct clonefd_plan *plan, void *stack, size_t size, int *pidfd, volatile int *in_use) {
  plan->err = 0;
  plan->stage = CLONEFD_STAGE_NONE;
  *pidfd = -1;
  return clone_on_stack(plan, (char *)stack, size, 0, pidfd, in_use);
}
