/*
 * Raw Linux system calls, usable where libc is not: in a child that shares
 * the parent's memory (CLONE_VM) nothing may touch errno, take a lock or
 * allocate, so every call here returns the kernel's raw result (-errno on
 * failure) and is inlined into its caller.
 */
#ifndef CLONEFD_SYS_H
#define CLONEFD_SYS_H

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
static inline long sys_call6(long n, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
static inline long sys_call6(long n, long a, long b, long c, long d, long e, long f) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory", "cc");
  return x0;
}
#else
#error "clonefd supports x86_64 and aarch64"
#endif

#define SYS0(n) sys_call6((n), 0, 0, 0, 0, 0, 0)
#define SYS1(n, a) sys_call6((n), (long)(a), 0, 0, 0, 0, 0)
#define SYS2(n, a, b) sys_call6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define SYS3(n, a, b, c) sys_call6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define SYS4(n, a, b, c, d) sys_call6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define SYS5(n, a, b, c, d, e) \
  sys_call6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* Numbers missing from older uapi headers (Debian 12 ships 6.1's). */
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal 424
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef __WALL
#define __WALL 0x40000000 /* waitid: children of any exit signal (ours have none) */
#endif
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* The kernel's sigset is 64 bits on both supported architectures. */
#define KERNEL_SIGSET_SIZE 8

/* struct sigaction as rt_sigaction(2) takes it (x86_64 and aarch64 agree). */
struct kernel_sigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)(void);
  uint64_t mask;
};

/*
 * waitid(P_PIDFD, pidfd, ...) as the raw system call (glibc's wrapper has no
 * rusage argument), retried on EINTR. Returns 0 or -errno.
 */
static inline long sys_waitid_pidfd(int pidfd, siginfo_t *si, int options, struct rusage *ru) {
  long r;
  do r = SYS5(__NR_waitid, P_PIDFD, pidfd, si, options, ru);
  while (r == -EINTR);
  return r;
}

#endif
