/*
 * The process-wide reaper for children whose environment is gone (a worker
 * thread terminated while they ran): a thread started on first use polls
 * their pidfds with epoll and reaps each one once it exits. Never
 * waitpid(-1): it only touches the pidfds it was given.
 */
#ifndef CLONEFD_REAPER_H
#define CLONEFD_REAPER_H

#ifdef __cplusplus
extern "C" {
#endif

/* Takes ownership of pidfd (closed after the reap). Returns 0 or -errno;
   on failure the caller still owns pidfd. */
int clonefd_reaper_adopt(int pidfd);

/* Takes ownership of dirfd, a child's cgroup directory whose environment
   is gone: removed (subgroups first) once cgroup.events says it is empty,
   at once when it already is. Without a thread or the fds for it, removed
   now if empty, else left. */
void clonefd_reaper_adopt_group(int dirfd);

/* How many children (and groups) the reaper holds right now (for tests). */
int clonefd_reaper_pending(void);

#ifdef __cplusplus
}
#endif

#endif
