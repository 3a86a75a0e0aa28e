/* See protocol.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "fdpass.h"
#include "memfd.h"
#include "protocol.h"

/* One set of spawn flags for both engines: the direct engine hands them to
   the plan as they are, the helper masks the wire's into its plan. */
_Static_assert(CLONEFD_SETSID == CLONEFD_REQ_SETSID && CLONEFD_SETUID == CLONEFD_REQ_SETUID &&
                   CLONEFD_SETGID == CLONEFD_REQ_SETGID && CLONEFD_SETPGID == CLONEFD_REQ_SETPGID,
               "child.h plan flags and protocol.h SPAWN flags share values");

void clonefd_msg_header_init(struct clonefd_msg_header *h, uint16_t type, uint64_t id) {
  memset(h, 0, sizeof *h);
  h->magic = CLONEFD_MAGIC;
  h->version = CLONEFD_PROTOCOL_VERSION;
  h->type = type;
  h->id = id;
}

int clonefd_msg_header_read(const void *buf, size_t len, struct clonefd_msg_header *h) {
  if (len < sizeof *h) return -EPROTO;
  memcpy(h, buf, sizeof *h);
  if (h->magic != CLONEFD_MAGIC || h->version != CLONEFD_PROTOCOL_VERSION) return -EPROTO;
  return 0;
}

int clonefd_hello_send(int control, int req_sock, int event_sock) {
  struct clonefd_msg_header h;
  clonefd_msg_header_init(&h, CLONEFD_MSG_HELLO, 0);
  struct iovec iov = {&h, sizeof h};
  int fds[2] = {req_sock, event_sock};
  ssize_t n = clonefd_send_fds(control, &iov, 1, fds, 2, MSG_DONTWAIT);
  return n < 0 ? (int)n : 0;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int clonefd_wait(struct pollfd *fds, int nfds, int timeout_ms, int *left_ms) {
  int left = timeout_ms;
  int r;
  for (;;) {
    int slice = left < 0 || left > 100 ? 100 : left;
    long start = now_ms();
    r = poll(fds, (nfds_t)nfds, timeout_ms < 0 ? -1 : slice);
    if (r < 0 && errno != EINTR) {
      r = -errno;
      break;
    }
    if (r > 0 || timeout_ms < 0) {
      if (r < 0) continue; /* EINTR without a deadline */
      break;
    }
    long took = now_ms() - start;
    /* A slice that took far longer than asked: we were not running. */
    if (took > slice + 1000) took = slice;
    left -= (int)(took < slice && r == 0 ? slice : took);
    if (left <= 0) {
      left = 0;
      r = 0;
      break;
    }
  }
  if (left_ms) *left_ms = left < 0 ? -1 : left;
  return r;
}

/* ---- SPAWN, Node's side ------------------------------------------------ */

void clonefd_spawn_builder_init(struct clonefd_spawn_builder *b, uint32_t flags, uint32_t uid, uint32_t gid,
                                uint32_t umask) {
  memset(b, 0, sizeof *b);
  b->req.flags = flags & ~(uint32_t)(CLONEFD_REQ_HAS_CWD | CLONEFD_REQ_PAYLOAD_MEMFD | CLONEFD_REQ_CGROUP);
  b->req.uid = uid;
  b->req.gid = gid;
  b->req.umask = umask;
}

void clonefd_spawn_add(struct clonefd_spawn_builder *b, enum clonefd_spawn_list list, const char *s, size_t n) {
  if (b->err) return;
  if ((int)list < b->last_list || (list == CLONEFD_LIST_CWD && (b->req.flags & CLONEFD_REQ_HAS_CWD))) {
    b->err = EINVAL; /* out of order: a bug of the caller's */
    return;
  }
  b->last_list = (int)list;
  if (n > CLONEFD_PAYLOAD_MAX || b->len + n + 1 > CLONEFD_PAYLOAD_MAX) {
    b->err = E2BIG;
    return;
  }
  uint32_t *count = list == CLONEFD_LIST_PATHS ? &b->req.npaths
                    : list == CLONEFD_LIST_ARGV ? &b->req.nargv
                    : list == CLONEFD_LIST_ENV  ? &b->req.nenv
                                                : NULL;
  if (count && *count >= CLONEFD_MAX_STRINGS) {
    b->err = E2BIG;
    return;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *grown = realloc(b->buf, cap);
    if (!grown) {
      b->err = ENOMEM;
      return;
    }
    b->buf = grown;
    b->cap = cap;
  }
  memcpy(b->buf + b->len, s, n);
  b->buf[b->len + n] = '\0';
  b->len += n + 1;
  if (count) (*count)++;
  else b->req.flags |= CLONEFD_REQ_HAS_CWD;
}

int clonefd_spawn_send(struct clonefd_spawn_builder *b, int sock, uint64_t id, int record_fd, int cwd_fd,
                       int exec_fd, int cgroup_fd, const int *stdio, int nstdio, int timeout_ms) {
  if (b->err) return -b->err;
  if (nstdio < 0 || nstdio > CLONEFD_MAX_STDIO_REMOTE) return -E2BIG;
  struct clonefd_spawn_req *req = &b->req;
  req->payload_len = (uint32_t)b->len;
  req->nstdio = (uint32_t)nstdio;

  int fds[CLONEFD_MAX_FDS];
  int nfds = 0;
  fds[nfds++] = record_fd;
  fds[nfds++] = cwd_fd;
  fds[nfds++] = exec_fd;
  int memfd = -1;
  int inline_payload = b->len <= CLONEFD_INLINE_PAYLOAD_MAX;
  if (!inline_payload) {
    memfd = clonefd_sealed_memfd("clonefd-request", b->buf, b->len, 0);
    if (memfd < 0) return memfd;
    req->flags |= CLONEFD_REQ_PAYLOAD_MEMFD;
    fds[nfds++] = memfd;
  }
  if (cgroup_fd >= 0) {
    req->flags |= CLONEFD_REQ_CGROUP;
    fds[nfds++] = cgroup_fd;
  } else {
    req->flags &= ~(uint32_t)CLONEFD_REQ_CGROUP;
  }
  int first_stdio = nfds;
  for (int i = 0; i < nstdio; i++) {
    int fd = stdio[i];
    if (fd < 0) {
      req->stdio[i] = -1;
      continue;
    }
    int k = -1;
    for (int j = first_stdio; j < nfds; j++)
      if (fds[j] == fd) k = j;
    if (k < 0) {
      k = nfds;
      fds[nfds++] = fd;
    }
    req->stdio[i] = k;
  }

  struct clonefd_msg_header h;
  clonefd_msg_header_init(&h, CLONEFD_MSG_SPAWN, id);
  struct iovec iov[3] = {{&h, sizeof h}, {req, sizeof *req}, {b->buf, b->len}};
  /* The request socket is ours alone and the helper drains it promptly:
     wait while it is full, within the deadline. A dead helper is EPIPE,
     not SIGPIPE. */
  ssize_t n;
  int left = timeout_ms;
  for (;;) {
    n = clonefd_send_fds(sock, iov, inline_payload ? 3 : 2, fds, nfds, MSG_DONTWAIT);
    if (n != -EAGAIN && n != -ENOBUFS) break;
    struct pollfd p = {sock, POLLOUT, 0};
    int r = clonefd_wait(&p, 1, left, &left);
    if (r <= 0) {
      n = r == 0 ? -ETIMEDOUT : r;
      break;
    }
  }
  if (memfd >= 0) close(memfd);
  return n < 0 ? (int)n : 0;
}

void clonefd_spawn_builder_free(struct clonefd_spawn_builder *b) {
  free(b->buf);
  b->buf = NULL;
  b->len = b->cap = 0;
}

/* ---- SPAWN, the helper's side ------------------------------------------ */

/* Splits count NUL-terminated strings off [*p, end). NULL if malformed. */
static char **take_strings(char **p, char *end, uint32_t count) {
  char **v = calloc((size_t)count + 1, sizeof *v);
  if (!v) return NULL;
  for (uint32_t i = 0; i < count; i++) {
    char *nul = memchr(*p, '\0', (size_t)(end - *p));
    if (!nul) {
      free(v);
      return NULL;
    }
    v[i] = *p;
    *p = nul + 1;
  }
  return v;
}

int clonefd_spawn_decode(const unsigned char *body, size_t len, const int *fds, int nfds, struct clonefd_spawn *out) {
  memset(out, 0, sizeof *out);
  struct clonefd_spawn_req *req = &out->req;
  if (len < sizeof *req || nfds < 3) return EPROTO;
  memcpy(req, body, sizeof *req);
  if (req->nstdio > CLONEFD_MAX_STDIO_REMOTE || req->payload_len > CLONEFD_PAYLOAD_MAX || req->npaths == 0 ||
      req->npaths > CLONEFD_MAX_STRINGS || req->nargv == 0 || req->nargv > CLONEFD_MAX_STRINGS ||
      req->nenv > CLONEFD_MAX_STRINGS)
    return EPROTO;
  int first_stdio = 3;
  int in_memfd = (req->flags & CLONEFD_REQ_PAYLOAD_MEMFD) != 0;
  if (in_memfd) {
    /* Large requests: the strings travel in a memfd, nothing inline. */
    struct stat st;
    if (nfds < 4 || len != sizeof *req || req->payload_len == 0) return EPROTO;
    first_stdio = 4;
    if (fstat(fds[3], &st) < 0 || (uint64_t)st.st_size != req->payload_len) return EPROTO;
  } else if (len - sizeof *req != req->payload_len) {
    return EPROTO;
  }
  out->cgroup_fd = -1;
  if (req->flags & CLONEFD_REQ_CGROUP) {
    struct stat st;
    if (nfds <= first_stdio || fstat(fds[first_stdio], &st) < 0 || !S_ISDIR(st.st_mode)) return EPROTO;
    out->cgroup_fd = fds[first_stdio++];
  }

  if (!(out->payload = malloc(req->payload_len ? req->payload_len : 1))) return ENOMEM;
  if (in_memfd) {
    /* pread, never mmap: a sender that shrinks the memfd meanwhile gets a
       short read and EPROTO, not our SIGBUS. */
    size_t got = 0;
    while (got < req->payload_len) {
      ssize_t r = pread(fds[3], out->payload + got, req->payload_len - got, (off_t)got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += (size_t)r;
    }
    if (got != req->payload_len) goto bad;
  } else {
    memcpy(out->payload, body + sizeof *req, req->payload_len);
  }
  char *p = out->payload, *end = out->payload + req->payload_len;
  if (!(out->paths = take_strings(&p, end, req->npaths)) || !(out->argv = take_strings(&p, end, req->nargv)) ||
      !(out->envp = take_strings(&p, end, req->nenv)))
    goto bad;
  if (req->flags & CLONEFD_REQ_HAS_CWD) {
    char *nul = memchr(p, '\0', (size_t)(end - p));
    if (!nul) goto bad;
    out->cwd = p;
    p = nul + 1;
  }
  if (p != end) goto bad; /* every byte accounted for, or it is not ours */
  for (uint32_t i = 0; i < req->nstdio; i++) {
    int32_t k = req->stdio[i];
    if (k == -1) out->stdio[i] = -1;
    else if (k >= first_stdio && k < nfds) out->stdio[i] = fds[k];
    else goto bad;
  }
  out->record_fd = fds[0];
  out->cwd_fd = fds[1];
  out->exec_fd = fds[2];
  return 0;

bad:
  clonefd_spawn_free(out);
  return EPROTO;
}

void clonefd_spawn_free(struct clonefd_spawn *s) {
  free(s->payload);
  free(s->paths);
  free(s->argv);
  free(s->envp);
  s->payload = NULL;
  s->paths = s->argv = s->envp = NULL;
}

/* ---- SPAWNED and EXIT -------------------------------------------------- */

void clonefd_spawned_msg_init(struct clonefd_spawned_msg *m, uint64_t id, int32_t pid, int32_t err, int32_t stage) {
  memset(m, 0, sizeof *m);
  clonefd_msg_header_init(&m->h, CLONEFD_MSG_SPAWNED, id);
  m->body.pid = pid;
  m->body.err = err;
  m->body.stage = stage;
}

void clonefd_exit_msg_init(struct clonefd_exit_msg *m, uint64_t id, const struct clonefd_record *rec) {
  memset(m, 0, sizeof *m);
  clonefd_msg_header_init(&m->h, CLONEFD_MSG_EXIT, id);
  m->body = *rec;
}

int clonefd_reply_check(const struct clonefd_reply *m, size_t len, int nfds) {
  struct clonefd_msg_header h;
  if (clonefd_msg_header_read(m, len, &h) < 0) return -EPROTO;
  if (h.type == CLONEFD_MSG_SPAWNED && len == sizeof h + sizeof m->body.spawned &&
      (m->body.spawned.err == 0) == (nfds == 1))
    return CLONEFD_MSG_SPAWNED;
  if (h.type == CLONEFD_MSG_EXIT && len == sizeof h + sizeof m->body.exit && nfds == 0) return CLONEFD_MSG_EXIT;
  return -EPROTO;
}
