/*
 * Linked into the ASan build of clonefd-helper only (scripts/native-build.js
 * --mode asan), never into a real build.
 *
 * The helper is started with an empty environment (helper_start.c), so
 * ASAN_OPTIONS/UBSAN_OPTIONS from the test cannot reach it, and its stderr
 * is /dev/null. The sanitizer runtimes ask these functions for their
 * defaults instead: every report goes to a file in CLONEFD_SAN_LOG_DIR
 * (helper.<pid>), which scripts/asan.sh checks after the workload.
 */
#ifndef CLONEFD_SAN_LOG_DIR
#error "build with -DCLONEFD_SAN_LOG_DIR=\"/some/dir\""
#endif

#define EXPORT __attribute__((visibility("default"), used))

EXPORT const char *__asan_default_options(void) {
  return "log_path=" CLONEFD_SAN_LOG_DIR "/helper"
         ":detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=0"
         ":check_initialization_order=1:strict_string_checks=1";
}

/* log_path is one flag shared by the three runtimes: the same in each. */
EXPORT const char *__lsan_default_options(void) { return "log_path=" CLONEFD_SAN_LOG_DIR "/helper"; }

EXPORT const char *__ubsan_default_options(void) {
  return "log_path=" CLONEFD_SAN_LOG_DIR "/helper:print_stacktrace=1:halt_on_error=1";
}

/*
 * The positive control of scripts/asan.sh: while CLONEFD_SAN_LOG_DIR/selftest
 * exists, the helper reads one byte past a heap block as it exits, so the
 * script can prove that a bug in the helper process is caught, written to the
 * log directory and attributed (to this file) before it trusts an empty log.
 */
#include <stdlib.h>
#include <unistd.h>

__attribute__((destructor)) static void clonefd_san_selftest(void) {
  if (access(CLONEFD_SAN_LOG_DIR "/selftest", F_OK) != 0) return;
  char *volatile p = malloc(8);
  volatile char c = p[8]; /* heap-buffer-overflow, on purpose */
  (void)c;
  free(p);
}
