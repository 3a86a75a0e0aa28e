/*
 * The wire format between the Node process and the clonefd helper. Both
 * ends are built from this header on the same machine, so fields are in
 * host byte order; every message starts with a versioned header and the
 * receiver checks every length and count before it trusts anything.
 *
 * Sockets: one SOCK_SEQPACKET control socket per Node process (fd 3 in the
 * helper) that carries only HELLO messages, each with one new environment
 * socket (SCM_RIGHTS); then one SOCK_SEQPACKET socket per environment for
 * SPAWN requests and SPAWNED/EXIT replies.
 */
#ifndef CLONEFD_PROTOCOL_H
#define CLONEFD_PROTOCOL_H

#include <stdint.h>

#define CLONEFD_MAGIC 0x4446434cu /* "LCFD" */
#define CLONEFD_PROTOCOL_VERSION 1

/* The helper finds its control socket here. */
#define CLONEFD_HELPER_CONTROL_FD 3

/* Above this, a SPAWN payload travels in a sealed memfd instead of inline. */
#define CLONEFD_INLINE_PAYLOAD_MAX (48 * 1024)
/* Hard limits the helper enforces. */
#define CLONEFD_PAYLOAD_MAX (64u * 1024 * 1024)
#define CLONEFD_MAX_STRINGS (1u << 20)
#define CLONEFD_MAX_FDS 64 /* per message: record pipe, cwd, payload memfd, stdio */
#define CLONEFD_MAX_STDIO_REMOTE 60

enum clonefd_msg_type {
  CLONEFD_MSG_HELLO = 1,   /* Node → helper (control): a new environment socket */
  CLONEFD_MSG_SPAWN = 2,   /* Node → helper (environment) */
  CLONEFD_MSG_SPAWNED = 3, /* helper → Node: pid + pidfd, or the exec errno */
  CLONEFD_MSG_EXIT = 4,    /* helper → Node: the record with full rusage */
};

struct clonefd_msg_header {
  uint32_t magic;
  uint16_t version;
  uint16_t type;
  uint64_t id; /* request id, chosen by the environment */
};

/* SPAWN flags */
#define CLONEFD_REQ_SETSID 0x1
#define CLONEFD_REQ_SETUID 0x2
#define CLONEFD_REQ_SETGID 0x4
#define CLONEFD_REQ_KILL_WITH_PARENT 0x8
#define CLONEFD_REQ_HAS_CWD 0x10
#define CLONEFD_REQ_PAYLOAD_MEMFD 0x20

/*
 * SPAWN: header, this struct, then (inline, or in the memfd) the strings:
 * npaths + nargv + nenv NUL-terminated strings, then cwd if HAS_CWD.
 * Passed fds, in order: record pipe write end, the caller's cwd (an
 * O_PATH directory fd), the exec pipe's write end, the payload memfd if
 * PAYLOAD_MEMFD, then the distinct stdio fds. stdio[i] indexes into the
 * passed fds (-1: /dev/null for i < 3, closed beyond).
 *
 * The exec pipe (CLOEXEC) goes to the child, which writes its pid (int32)
 * into it, then {errno, stage} if anything before execve fails; EOF after
 * the pid alone means the exec happened. Node waits on it directly, so the helper answers SPAWNED right
 * after the clone and never waits for an exec itself.
 */
struct clonefd_spawn_req {
  uint32_t flags;
  uint32_t uid;
  uint32_t gid;
  uint32_t umask;
  uint32_t npaths;
  uint32_t nargv;
  uint32_t nenv;
  uint32_t nstdio;
  uint32_t payload_len;
  int32_t stdio[CLONEFD_MAX_STDIO_REMOTE];
};

/* SPAWNED: with one fd (the child's pidfd) when err == 0. */
struct clonefd_spawned {
  int32_t pid;
  int32_t err;   /* positive errno, 0 on success */
  int32_t stage; /* enum clonefd_stage */
  int32_t reserved;
};

/* EXIT: the seed's record plus what waitid gave. code 0: the status could
   not be obtained, status is the errno. */
struct clonefd_exit_msg {
  int32_t pid;
  int32_t code;
  int32_t status;
  int32_t rusage_known;
  uint64_t utime; /* clock ticks; UINT64_MAX unknown */
  uint64_t stime;
  int64_t ru_utime_us;
  int64_t ru_stime_us;
  int64_t ru_maxrss;
  int64_t ru_minflt;
  int64_t ru_majflt;
  int64_t ru_inblock;
  int64_t ru_oublock;
  int64_t ru_nvcsw;
  int64_t ru_nivcsw;
};

#endif
