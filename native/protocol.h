/*
 * The wire format between the Node process and the clonefd helper: its one
 * home. Both ends link protocol.c, built from this header on the same
 * machine, so fields are in host byte order; every message starts with a
 * versioned header and the receiver checks every length and count before
 * it trusts anything.
 *
 * Sockets: one SOCK_SEQPACKET control socket per Node process (fd 3 in the
 * helper) that carries only HELLO messages, each with two new sockets
 * (SCM_RIGHTS) for one environment: its request socket (SPAWN in, SPAWNED
 * out; at most one request outstanding, since spawn() is synchronous) and
 * its event socket (EXIT out, read by the environment's event loop). A
 * spawn therefore never reads, or has to set aside, another child's exit.
 *
 * Adding a SPAWN field: struct clonefd_spawn_req (and struct clonefd_spawn
 * if it needs decoding), protocol.c, the helper client
 * (native/addon/helper_client.cc) and the helper (native/helper.c).
 */
#ifndef CLONEFD_PROTOCOL_H
#define CLONEFD_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <sys/types.h>

#include "record.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CLONEFD_MAGIC 0x4446434cu /* "LCFD" */
#define CLONEFD_PROTOCOL_VERSION 4

/* The helper finds its control socket here. */
#define CLONEFD_HELPER_CONTROL_FD 3

/* Above this, a SPAWN payload travels in a sealed memfd instead of inline. */
#define CLONEFD_INLINE_PAYLOAD_MAX (48 * 1024)
/* Hard limits the helper enforces. */
#define CLONEFD_PAYLOAD_MAX (64u * 1024 * 1024)
#define CLONEFD_MAX_STRINGS (1u << 20)
#define CLONEFD_MAX_FDS 64 /* per message: record pipe, cwd, exec pipe, payload memfd, stdio */
#define CLONEFD_MAX_STDIO_REMOTE 60

enum clonefd_msg_type {
  CLONEFD_MSG_HELLO = 1,   /* Node → helper (control): a new environment's two sockets */
  CLONEFD_MSG_SPAWN = 2,   /* Node → helper (environment) */
  CLONEFD_MSG_SPAWNED = 3, /* helper → Node: pid + pidfd, or an errno */
  CLONEFD_MSG_EXIT = 4,    /* helper → Node: the child's record */
};

struct clonefd_msg_header {
  uint32_t magic;
  uint16_t version;
  uint16_t type;
  uint64_t id; /* request id, chosen by the environment */
};

/* SPAWN flags (the same values as the plan flags of child.h, plus
   KILL_WITH_PARENT; src/abi.ts SpawnFlag mirrors the first four). */
#define CLONEFD_REQ_SETSID 0x1
#define CLONEFD_REQ_SETUID 0x2
#define CLONEFD_REQ_SETGID 0x4
#define CLONEFD_REQ_KILL_WITH_PARENT 0x8
#define CLONEFD_REQ_HAS_CWD 0x10
#define CLONEFD_REQ_PAYLOAD_MEMFD 0x20
#define CLONEFD_REQ_SETPGID 0x40 /* = CLONEFD_SETPGID */
#define CLONEFD_REQ_CGROUP 0x80  /* a cgroup directory fd follows the exec pipe (and memfd) */
#define CLONEFD_REQ_KILL_TREE 0x100 /* with KILL_WITH_PARENT and CGROUP: the whole group goes with the client */

/*
 * SPAWN: header, this struct, then (inline, or in the memfd) the strings:
 * npaths + nargv + nenv NUL-terminated strings, then cwd if HAS_CWD.
 * Passed fds, in order: record pipe write end, the caller's cwd (an O_PATH
 * directory fd), the exec pipe's write end, the payload memfd if
 * PAYLOAD_MEMFD, the cgroup v2 directory the child starts in if CGROUP,
 * then the distinct stdio fds. stdio[i] indexes into the
 * passed fds (-1: /dev/null for i < 3, closed beyond).
 *
 * The exec pipe (CLOEXEC) goes to the child, which writes its pid (int32)
 * into it, then {errno, stage} if anything before execve fails; EOF after
 * the pid alone means the exec happened. Node waits on it directly, so the
 * helper answers SPAWNED right after the clone and never waits for an exec.
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
  int32_t stage; /* enum clonefd_stage (child.h) */
  int32_t reserved;
};

/* EXIT: the body is the child's struct clonefd_record (record.h); a lost
   status is CLONEFD_CODE_LOST with the errno, as everywhere. */

void clonefd_msg_header_init(struct clonefd_msg_header *h, uint16_t type, uint64_t id);

/* 0 when buf (len bytes) starts with a header of ours, copied to *h;
   -EPROTO otherwise. */
int clonefd_msg_header_read(const void *buf, size_t len, struct clonefd_msg_header *h);

/* HELLO on the control socket with an environment's request and event
   sockets attached. Never blocks (-EAGAIN when the helper is not reading).
   0 or -errno. */
int clonefd_hello_send(int control, int req_sock, int event_sock);

/* ---- SPAWN, Node's side ------------------------------------------------ */

enum clonefd_spawn_list { CLONEFD_LIST_PATHS, CLONEFD_LIST_ARGV, CLONEFD_LIST_ENV, CLONEFD_LIST_CWD };

struct clonefd_spawn_builder {
  struct clonefd_spawn_req req;
  int last_list;
  int err; /* first failure while building (ENOMEM, E2BIG, EINVAL) */
  char *buf;
  size_t len, cap;
};

void clonefd_spawn_builder_init(struct clonefd_spawn_builder *b, uint32_t flags, uint32_t uid, uint32_t gid,
                                uint32_t umask);
/* Appends one string of a list; lists in order (paths, argv, env, then at
   most one cwd). A failure is kept in b->err for clonefd_spawn_send. */
void clonefd_spawn_add(struct clonefd_spawn_builder *b, enum clonefd_spawn_list list, const char *s, size_t n);
/*
 * Sends the request: the payload inline or in a sealed memfd, the fds in
 * protocol order with the stdio fds deduplicated. Every fd stays the
 * caller's. Waits while the socket is full, at most timeout_ms of time
 * this process runs (clonefd_wait). 0 or -errno (E2BIG: too large, or too
 * many stdio slots; ETIMEDOUT).
 */
int clonefd_spawn_send(struct clonefd_spawn_builder *b, int sock, uint64_t id, int record_fd, int cwd_fd,
                       int exec_fd, int cgroup_fd, const int *stdio, int nstdio, int timeout_ms);

/*
 * poll(2) with a deadline that counts only the time this process runs:
 * waits in slices of at most 100 ms and counts a slice that took much
 * longer (the process was stopped, or the machine suspended) as 100 ms, so
 * a Ctrl-Z and fg of the whole job does not expire it. timeout_ms < 0:
 * no deadline. Returns poll's result, 0 at the deadline, or -errno.
 * *left_ms (may be NULL) is what is left of the deadline afterwards.
 */
int clonefd_wait(struct pollfd *fds, int nfds, int timeout_ms, int *left_ms);
void clonefd_spawn_builder_free(struct clonefd_spawn_builder *b);

/* ---- SPAWN, the helper's side ------------------------------------------ */

struct clonefd_spawn {
  struct clonefd_spawn_req req;
  char *payload; /* a private copy of the strings, malloc'd */
  char **paths, **argv, **envp;
  const char *cwd; /* NULL: none (inside payload) */
  int record_fd, cwd_fd, exec_fd;
  int cgroup_fd; /* -1: none */
  int stdio[CLONEFD_MAX_STDIO_REMOTE]; /* fds (among the passed ones) or -1 */
};

/*
 * Checks a SPAWN body (after the header) and its passed fds and decodes it
 * into *out, copying the strings (the child reads them from our memory
 * while the receive buffer is reused). The fds stay the caller's; out's fd
 * fields point into them. Returns 0, or the positive errno to answer with
 * (EPROTO: malformed; ENOMEM).
 */
int clonefd_spawn_decode(const unsigned char *body, size_t len, const int *fds, int nfds, struct clonefd_spawn *out);
void clonefd_spawn_free(struct clonefd_spawn *s);

/* ---- SPAWNED and EXIT -------------------------------------------------- */

struct clonefd_spawned_msg {
  struct clonefd_msg_header h;
  struct clonefd_spawned body;
};

struct clonefd_exit_msg {
  struct clonefd_msg_header h;
  struct clonefd_record body;
};

void clonefd_spawned_msg_init(struct clonefd_spawned_msg *m, uint64_t id, int32_t pid, int32_t err, int32_t stage);
void clonefd_exit_msg_init(struct clonefd_exit_msg *m, uint64_t id, const struct clonefd_record *rec);

/* A reply as Node receives it. */
struct clonefd_reply {
  struct clonefd_msg_header h;
  union {
    struct clonefd_spawned spawned;
    struct clonefd_record exit;
  } body;
};

/* The type of a received reply (SPAWNED or EXIT) once its size and fd
   count are right; -EPROTO otherwise. */
int clonefd_reply_check(const struct clonefd_reply *m, size_t len, int nfds);

#ifdef __cplusplus
}
#endif

#endif
