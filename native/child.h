/*
 * What a new child does between clone and execve, and how the parent asks
 * for it. Shared by every engine: the in-process engine runs it in a
 * CLONE_VM|CLONE_VFORK child, the helper in a CLONE_VM clone without vfork. The
 * child side only makes raw system calls (sys.h): no errno, no locks, no
 * allocation, so it is safe on a borrowed address space.
 */
#ifndef CLONEFD_CHILD_H
#define CLONEFD_CHILD_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Most stdio slots a plan may map (bounds the child's stack use). */
#define CLONEFD_MAX_STDIO 256

/* plan.flags */
#define CLONEFD_SETSID 0x1 /* detached: new session */
#define CLONEFD_SETUID 0x2
#define CLONEFD_SETGID 0x4
#define CLONEFD_SETPGID 0x40 /* its own process group (setpgid(0, 0)); SETSID gives one anyway */

/* plan.stage: the step that failed, so the parent can say what broke. */
enum clonefd_stage {
  CLONEFD_STAGE_NONE = 0,
  CLONEFD_STAGE_STDIO = 1,  /* dup3/fcntl while mapping stdio */
  CLONEFD_STAGE_DEVNULL = 2,/* opening /dev/null for an ignored fd */
  CLONEFD_STAGE_CLOSE = 3,  /* marking inherited fds close-on-exec */
  CLONEFD_STAGE_CHDIR = 4,
  CLONEFD_STAGE_SETSID = 5,
  CLONEFD_STAGE_SETGID = 6,
  CLONEFD_STAGE_SETUID = 7,
  CLONEFD_STAGE_SIGNALS = 8,
  CLONEFD_STAGE_EXEC = 9,
  CLONEFD_STAGE_CLONE = 10, /* the clone itself failed: no child exists */
  CLONEFD_STAGE_WATCH = 11, /* the child ran but could not be watched: killed */
  CLONEFD_STAGE_CGROUP = 12,/* joining the cgroup given as cgroup_fd */
  CLONEFD_STAGE_SETPGID = 13,
};

struct clonefd_plan {
  /* Executable candidates in the order execvp would try them (PATH was
     searched by the parent), NULL-terminated. */
  const char *const *paths;
  char *const *argv;
  char *const *envp;
  const char *cwd; /* NULL: inherit; relative to cwd_fd when that is set */
  int cwd_fd;      /* -1, or a directory to start from (the helper gets Node's cwd this way) */
  int umask;       /* -1: inherit */
  /* -1, or a CLOEXEC pipe (the helper's children): the child writes its
     pid (int32) first, then {err, stage} (two int32) if a step fails; EOF
     after the pid alone means the exec happened. */
  int err_fd;
  /* 0, or a signal the child gets when the thread that created it exits
     (PR_SET_PDEATHSIG); parent_pid guards against the parent being gone
     before the prctl. */
  int pdeath_signal;
  int parent_pid;
  /* 0, or: the clone shares the caller's fd table (CLONE_FILES; the helper
     does that when it holds many fds, all at or above this number, which a
     copied table would make the child close one by one). The child's first
     act is then a private copy of the fds below it (close_range with
     CLOSE_RANGE_UNSHARE), after which it stores 2 into *handoff and wakes
     it (a futex); the caller must not touch its fd table before. */
  int files_below;
  volatile int *handoff;
  /* -1, or a cgroup v2 directory (O_RDONLY) the child must start in: the
     clone puts it there (clone3 CLONE_INTO_CGROUP), so nothing it starts
     can ever run outside it. Where clone3 refuses that flag (seccomp
     profiles, kernels < 5.7) the spawn sets cgroup_join and the child
     writes itself into the group's cgroup.procs as its first act, before
     it could start anything. */
  int cgroup_fd;
  volatile int cgroup_join;
  /* stdio[i] is the parent's fd that becomes the child's fd i; -1 means
     /dev/null for i < 3 and "closed" beyond. */
  const int *stdio;
  int nstdio;
  int flags;
  uint32_t uid, gid;
  /* Filled by the child when a step fails (positive errno). The in-process
     engine reads them through the shared address space. */
  volatile int err;
  volatile int stage;
};

/* A plan that does nothing special: no cwd, inherited umask, no pipes, no
   stdio (the caller fills in what it needs). */
void clonefd_plan_init(struct clonefd_plan *plan);

/* The child's body: never returns. On failure it records err/stage and
   exits with 127. */
int clonefd_child_main(void *plan);

/*
 * In-process spawn: CLONE_VM|CLONE_VFORK|CLONE_PIDFD with exit signal 0 on
 * a stack borrowed from the caller's frame (the caller is suspended until
 * the child execs or exits), so the cost does not grow with the caller's
 * memory. clone3 first; on ENOSYS/EPERM legacy clone(), remembered.
 *
 * Returns the pid and stores a CLOEXEC pidfd in *pidfd; or -errno with
 * plan->stage saying which step failed. A child that failed before exec has
 * already been reaped: nothing is left behind.
 */
long clonefd_spawn_vfork(struct clonefd_plan *plan, int *pidfd);

/*
 * The helper's spawn: CLONE_VM|CLONE_PIDFD without CLONE_VFORK, so the
 * caller goes on serving others while the child execs, and nothing is
 * copied (no page tables, no copy-on-write faults). The child runs on
 * `stack` and reads `plan`: both must stay untouched while *in_use is not
 * 0. It is 1 on return; the kernel zeroes it (CLONE_CHILD_CLEARTID) when
 * the child has left the caller's memory: at its exec, or at its exit.
 * *in_use itself must stay valid memory until then. Reports through
 * plan->err_fd only. Returns the pid (and *pidfd), or -errno.
 */
long clonefd_spawn_shared(struct clonefd_plan *plan, void *stack, size_t size, int *pidfd, volatile int *in_use);

/* 0: clone3 then clone; 1: legacy clone() only (tests and old kernels). */
void clonefd_force_legacy_clone(int on);
/* Which path the last successful spawn used: "clone3" or "clone". */
const char *clonefd_clone_path(void);

#ifdef __cplusplus
}
#endif

#endif
