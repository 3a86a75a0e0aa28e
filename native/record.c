/* See record.h. */
#include <string.h>

#include "record.h"

_Static_assert(sizeof(struct clonefd_info) == 24, "struct clonefd_info is 24 bytes (the seed's)");
_Static_assert(offsetof(struct clonefd_info, code) == 0 && offsetof(struct clonefd_info, status) == 4 &&
                   offsetof(struct clonefd_info, utime) == 8 && offsetof(struct clonefd_info, stime) == 16,
               "struct clonefd_info: s32 code at 0, s32 status at 4, u64 utime at 8, u64 stime at 16");
_Static_assert(sizeof(struct clonefd_record) == 24 + 16 + 9 * 8, "struct clonefd_record has no padding");

void clonefd_record_init(struct clonefd_record *r, int32_t pid, enum clonefd_source source) {
  memset(r, 0, sizeof *r);
  r->info.utime = r->info.stime = CLONEFD_TIME_UNKNOWN;
  r->pid = pid;
  r->source = source;
}

void clonefd_record_lost(struct clonefd_record *r, int err) {
  r->info.code = CLONEFD_CODE_LOST;
  r->info.status = err;
  r->info.utime = r->info.stime = CLONEFD_TIME_UNKNOWN;
  r->rusage_known = 0;
}

void clonefd_record_set_rusage(struct clonefd_record *r, const struct rusage *ru) {
  r->rusage_known = 1;
  r->ru_utime_us = (int64_t)ru->ru_utime.tv_sec * 1000000 + ru->ru_utime.tv_usec;
  r->ru_stime_us = (int64_t)ru->ru_stime.tv_sec * 1000000 + ru->ru_stime.tv_usec;
  r->ru_maxrss = ru->ru_maxrss;
  r->ru_minflt = ru->ru_minflt;
  r->ru_majflt = ru->ru_majflt;
  r->ru_inblock = ru->ru_inblock;
  r->ru_oublock = ru->ru_oublock;
  r->ru_nvcsw = ru->ru_nvcsw;
  r->ru_nivcsw = ru->ru_nivcsw;
}

static double ticks(uint64_t t) { return t == CLONEFD_TIME_UNKNOWN ? -1 : (double)t; }

void clonefd_record_slots(const struct clonefd_record *r, double *d) {
  d[CLONEFD_SLOT_CODE] = r->info.code;
  d[CLONEFD_SLOT_STATUS] = r->info.status;
  d[CLONEFD_SLOT_UTIME] = ticks(r->info.utime);
  d[CLONEFD_SLOT_STIME] = ticks(r->info.stime);
  d[CLONEFD_SLOT_PID] = r->pid;
  d[CLONEFD_SLOT_SOURCE] = r->source;
  d[CLONEFD_SLOT_RUSAGE_KNOWN] = r->rusage_known;
  d[CLONEFD_SLOT_RU_UTIME_US] = (double)r->ru_utime_us;
  d[CLONEFD_SLOT_RU_STIME_US] = (double)r->ru_stime_us;
  d[CLONEFD_SLOT_MAXRSS] = (double)r->ru_maxrss;
  d[CLONEFD_SLOT_MINFLT] = (double)r->ru_minflt;
  d[CLONEFD_SLOT_MAJFLT] = (double)r->ru_majflt;
  d[CLONEFD_SLOT_INBLOCK] = (double)r->ru_inblock;
  d[CLONEFD_SLOT_OUBLOCK] = (double)r->ru_oublock;
  d[CLONEFD_SLOT_NVCSW] = (double)r->ru_nvcsw;
  d[CLONEFD_SLOT_NIVCSW] = (double)r->ru_nivcsw;
}
