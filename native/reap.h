/*
 * Turning an exited child into its record (record.h). Shared by every
 * engine: read the zombie's own CPU times, reap it through its pidfd, and
 * when someone else reaped it first, ask the kernel for the status it kept.
 */
#ifndef CLONEFD_REAP_H
#define CLONEFD_REAP_H

#include <stdint.h>
#include <sys/types.h>

#include "record.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The seed's utime/stime: fields 14 and 15 of /proc/<pid>/stat, taken only
 * when field 3 says Z (a zombie: its times are final), and with exit_code
 * non-NULL field 52 (the wait status). Returns 0 with the values filled,
 * or -errno / -ESRCH when not a zombie.
 */
int clonefd_zombie_times(pid_t pid, uint64_t *utime, uint64_t *stime, int *exit_code);

/*
 * Reap an exited child through its pidfd into *out. Call it once the pidfd
 * polls readable. Order (docs/ARCHITECTURE.md, "reaping"): zombie times
 * first, then waitid(P_PIDFD, WEXITED|__WALL) with rusage; on ECHILD (a
 * foreign reaper won) the times are dropped and PIDFD_GET_INFO /
 * PIDFD_INFO_EXIT is asked, briefly retried. Returns 0; or -errno with *out
 * marked lost (-ECHILD: a kernel before 6.15 kept no status); or -EAGAIN
 * when the pidfd is O_NONBLOCK or flags has CLONEFD_REAP_NOHANG and the
 * exit cannot be taken yet (a zombie held by its ptracer).
 */
#define CLONEFD_REAP_NOHANG 1 /* -EAGAIN instead of waiting when the exit cannot be taken yet */
int clonefd_reap(int pidfd, pid_t pid, struct clonefd_record *out, int flags);

/*
 * The record of a child that is not ours to reap (its helper died and it
 * was reparented): from the zombie's /proc/<pid>/stat while it lasts
 * (source ZOMBIE, times known), else PIDFD_INFO_EXIT with times unknown.
 * Call once the pidfd is readable. Returns 0, or -ECHILD (lost).
 */
int clonefd_recover(int pidfd, pid_t pid, struct clonefd_record *out);

/*
 * The last resort for a child that must not outlive a failure: SIGKILL
 * through its pidfd, wait for the exit whatever the fd's O_NONBLOCK, reap.
 * Blocks only as long as the kernel takes to kill it.
 */
void clonefd_kill_and_reap(int pidfd);

/* Wait status (as waitpid gives) to the seed's code/status pair. */
void clonefd_decode_wait_status(int wstatus, int32_t *code, int32_t *status);

#ifdef __cplusplus
}
#endif

#endif
