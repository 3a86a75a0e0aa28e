/*
 * Thawing and removing a child's cgroup once its owner or its tree is gone: shared by the helper
 * (groups whose Node process died) and the addon's reaper thread (groups of
 * an environment torn down first, e.g. a terminated worker).
 */
#ifndef CLONEFD_CGROUP_H
#define CLONEFD_CGROUP_H

#ifdef __cplusplus
extern "C" {
#endif

/* Whether the cgroup.events file at events_fd says "populated 0" (read from
   the start, which is also what re-arms its POLLPRI). Unreadable counts as
   empty: the group is gone. */
int clonefd_group_empty(int events_fd);

/* cgroup.freeze = 0 for the group at dirfd. For a group whose owner is
   gone: nobody is left to thaw it, and a tree frozen for ever never ends.
   Quiet: no cgroup.freeze, or a group removed, is nothing to do. */
void clonefd_group_thaw(int dirfd);

/* rmdir of the group at dirfd, its subgroups first (deepest first, up to
   1024 levels). Quiet: a group already removed is nothing to do. */
void clonefd_group_remove(int dirfd);

#ifdef __cplusplus
}
#endif

#endif
