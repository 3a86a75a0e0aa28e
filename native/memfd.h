/*
 * A sealed memfd holding given bytes: what is read from it (or executed) is
 * what was written, whoever else holds it. Used for the embedded helper
 * executable and for SPAWN requests too large to send inline.
 */
#ifndef CLONEFD_MEMFD_H
#define CLONEFD_MEMFD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A CLOEXEC memfd named `name` with len bytes of data, sealed against any
   change (write, grow, shrink, further seals); executable when exec is 1
   (MFD_EXEC where the kernel has it). Returns the fd or -errno. */
int clonefd_sealed_memfd(const char *name, const void *data, size_t len, int exec);

#ifdef __cplusplus
}
#endif

#endif
