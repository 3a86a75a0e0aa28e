/*
 * Turning an exited child into the seed's record. Shared by every engine:
 * read the zombie's own CPU times, reap it through its pidfd, and when
 * someone else reaped it first, ask the kernel for the status it kept.
 */
#ifndef CLONEFD_REAP_H
#define CLONEFD_REAP_H

#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CLONEFD_TIME_UNKNOWN UINT64_MAX

/* How the status was obtained. */
enum clonefd_source {
  CLONEFD_SOURCE_WAITID = 0,    /* we reaped it: times and rusage known */
  CLONEFD_SOURCE_PIDFD_INFO = 1,/* a foreign reaper won: PIDFD_INFO_EXIT */
};

struct clonefd_exit {
  int32_t code;   /* CLD_EXITED, CLD_KILLED, CLD_DUMPED */
  int32_t status; /* exit code or signal number */
  uint64_t utime; /* clock ticks, the child's own; CLONEFD_TIME_UNKNOWN */
  uint64_t stime;
  int source;
  int rusage_known;
  struct rusage ru; /* the child and its reaped descendants */
};

/*
 * The seed's utime/stime: fields 14 and 15 of /proc/<pid>/stat, taken only
 * when field 3 says Z (a zombie: its times are final), and with exit_code
 * non-NULL field 52 (the wait status). Returns 0 with the values filled,
 * or -errno / -ESRCH when not a zombie.
 */
int clonefd_zombie_times(pid_t pid, uint64_t *utime, uint64_t *stime, int *exit_code);

/*
 * The record of a child that is not ours to reap (its helper died and it
 * was reparented): from the zombie's /proc/<pid>/stat while it lasts, else
 * PIDFD_INFO_EXIT with times unknown. Call once the pidfd is readable.
 * Returns 0, or -ECHILD when the status is lost.
 */
int clonefd_recover(int pidfd, pid_t pid, struct clonefd_exit *out);

/*
 * Reap an exited child through its pidfd and fill *out. Call it once the
 * pidfd polls readable (the process has exited). Order (SPEC §5): zombie
 * times first, then waitid(P_PIDFD, WEXITED|__WALL) with rusage; on ECHILD
 * the times are dropped and PIDFD_GET_INFO/PIDFD_INFO_EXIT is asked,
 * briefly retried. Returns 0, or -ECHILD when the status is lost (a kernel
 * before 6.15 and a foreign reaper), or another -errno.
 */
int clonefd_reap(int pidfd, pid_t pid, struct clonefd_exit *out);

/* Wait status (as waitpid gives) to the seed's code/status pair. */
void clonefd_decode_wait_status(int wstatus, int32_t *code, int32_t *status);

#ifdef __cplusplus
}
#endif

#endif
