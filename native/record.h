/*
 * The exit record: its one home. Every path that learns how a child ended
 * (the direct engine's reap, the helper's reap and its EXIT message, the
 * recovery after a helper death, the 24 bytes read back from a record
 * pipe) fills a struct clonefd_record; JavaScript receives it as a
 * Float64Array in the slot layout below (src/abi.ts mirrors it and checks
 * it at load).
 *
 * Adding a field: add it to struct clonefd_record and to enum clonefd_slot,
 * fill it in clonefd_record_slots(), then src/abi.ts and src/info.ts.
 */
#ifndef CLONEFD_RECORD_H
#define CLONEFD_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#ifdef __cplusplus
extern "C" {
#endif

/* utime/stime not known (another reaper took the child first). */
#define CLONEFD_TIME_UNKNOWN UINT64_MAX

/* code of a record whose status could not be obtained; status is the
   (positive) errno then. One encoding of "lost" for every engine. */
#define CLONEFD_CODE_LOST 0

/* The seed's struct clonefd_info (clone4 CLONE_FD v2): what a read(2) of
   the contract's fd yields. Host byte order. */
struct clonefd_info {
  int32_t code;   /* CLD_EXITED, CLD_KILLED, CLD_DUMPED */
  int32_t status; /* exit code or signal number */
  uint64_t utime; /* clock ticks, the child's own threads; CLONEFD_TIME_UNKNOWN */
  uint64_t stime;
};

/* Where the status came from. */
enum clonefd_source {
  CLONEFD_SOURCE_WAITID = 0,     /* reaped by its parent: times and rusage known */
  CLONEFD_SOURCE_PIDFD_INFO = 1, /* someone else reaped it: PIDFD_INFO_EXIT, no times */
  CLONEFD_SOURCE_ZOMBIE = 2,     /* its helper died: read off the orphan's /proc/<pid>/stat */
  CLONEFD_SOURCE_PIPE = 3,       /* the 24 bytes of a record pipe only */
};

/* The full record: fixed-width fields, so it also travels as the body of
   the helper's EXIT message (protocol.h). */
struct clonefd_record {
  struct clonefd_info info;
  int32_t pid;
  int32_t source; /* enum clonefd_source */
  int32_t rusage_known;
  int32_t reserved;
  /* waitid's rusage: the child and its reaped descendants */
  int64_t ru_utime_us;
  int64_t ru_stime_us;
  int64_t ru_maxrss; /* KiB */
  int64_t ru_minflt;
  int64_t ru_majflt;
  int64_t ru_inblock;
  int64_t ru_oublock;
  int64_t ru_nvcsw;
  int64_t ru_nivcsw;
};

/* Slots of the Float64Array JavaScript gets (src/abi.ts Slot). Unknown
   times are -1 there. */
enum clonefd_slot {
  CLONEFD_SLOT_CODE,
  CLONEFD_SLOT_STATUS,
  CLONEFD_SLOT_UTIME,
  CLONEFD_SLOT_STIME,
  CLONEFD_SLOT_PID,
  CLONEFD_SLOT_SOURCE,
  CLONEFD_SLOT_RUSAGE_KNOWN,
  CLONEFD_SLOT_RU_UTIME_US,
  CLONEFD_SLOT_RU_STIME_US,
  CLONEFD_SLOT_MAXRSS,
  CLONEFD_SLOT_MINFLT,
  CLONEFD_SLOT_MAJFLT,
  CLONEFD_SLOT_INBLOCK,
  CLONEFD_SLOT_OUBLOCK,
  CLONEFD_SLOT_NVCSW,
  CLONEFD_SLOT_NIVCSW,
  CLONEFD_SLOT_COUNT
};

/* An empty record for pid: times unknown, no rusage. */
void clonefd_record_init(struct clonefd_record *r, int32_t pid, enum clonefd_source source);

/* Marks r lost with errno err (> 0). */
void clonefd_record_lost(struct clonefd_record *r, int err);

/* Copies waitid's rusage into r (rusage_known = 1). */
void clonefd_record_set_rusage(struct clonefd_record *r, const struct rusage *ru);

/* The record in JavaScript's slot layout: CLONEFD_SLOT_COUNT doubles. */
void clonefd_record_slots(const struct clonefd_record *r, double *slots);

#ifdef __cplusplus
}
#endif

#endif
