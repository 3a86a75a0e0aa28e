/*
 * The Node side of the helper's lifetime, process-wide (shared by every
 * environment): start it lazily from the bytes embedded in the addon
 * (memfd) or from a file, notice when it died or when Node's credentials
 * changed, and connect environments to it.
 */
#ifndef CLONEFD_HELPER_START_H
#define CLONEFD_HELPER_START_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Makes sure a helper with Node's current credentials runs. Returns its
 * generation (> 0; a new number whenever a new helper had to be started),
 * or -errno when none could be started (*stage tells which step: 0 memfd
 * or socket, else a clonefd_stage of the exec). fallback_path: the helper
 * executable on disk, tried when the embedded copy cannot be executed.
 */
long clonefd_helper_ensure(const char *fallback_path, int *stage);

/* A new environment's two sockets (CLOEXEC) to the helper of that
   generation: requests and events (protocol.h). 0, or -errno (-ESTALE when
   the generation is not the current one any more; -EAGAIN when the helper
   does not read its control socket). */
int clonefd_helper_connect(long generation, int *req_sock, int *event_sock);

/* Gives up on the helper of that generation (it did not answer in time):
   the next clonefd_helper_ensure starts a new one. */
void clonefd_helper_abandon(long generation);

/* pid of the current helper, 0 if none (tests and diagnostics). */
int clonefd_helper_pid(void);

/* 1 when the embedded helper could be used, 0 when only a file could. */
int clonefd_helper_from_memfd(void);

#ifdef __cplusplus
}
#endif

#endif
