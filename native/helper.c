/*
 * clonefd-helper: one per Node process. It creates, watches and reaps the
 * children of every environment of that process, so that the Node process
 * gets no SIGCHLD for them and no waitpid(-1) in it can see them (docs/ARCHITECTURE.md, "Why a helper").
 *
 * fd 0-2: /dev/null; fd 3: the control socket (HELLO messages, each with a
 * new environment socket). Single-threaded: one epoll loop over the
 * control socket, the environment sockets and each child's pidfd. It never blocks on a client: replies that do not
 * fit go to a per-client queue flushed on EPOLLOUT.
 *
 * A child's life: SPAWN request → clone3(CLONE_VM|CLONE_PIDFD) running the
 * shared child setup (child.c) on a stack of ours, reporting exec errors
 * into the exec pipe Node gave us → SPAWNED (pid + pidfd) at once; Node
 * learns the exec's outcome from that pipe → the kernel zeroes a word of
 * ours when the child left our memory (exec or exit; CLONE_CHILD_CLEARTID),
 * seen at our next spawn or reap → pidfd readable: zombie times, waitid,
 * the 24-byte clonefd_info into the record pipe, which is then closed (the
 * contract's EOF), then EXIT to the client.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/sched.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include "cgroup.h"
#include "child.h"
#include "fdpass.h"
#include "protocol.h"
#include "reap.h"
#include "record.h"
#include "sys.h"

struct outmsg {
  struct outmsg *next;
  size_t len;
  int fd; /* passed with the message, or -1; owned by the queue */
  unsigned char data[];
};

/* One socket's messages that did not fit (flushed on EPOLLOUT). */
struct outq {
  int fd;
  struct outmsg *head, *tail;
};

/* An environment of the Node process: its request socket (SPAWN in,
   SPAWNED out) and its event socket (EXIT out). */
struct client {
  struct outq req;
  struct outq ev;
  int dead;
  int children; /* children spawned through this client and not yet reaped */
};

/* What a child reads from our memory until it has exec'd (it shares it:
   CLONE_VM without CLONE_VFORK). Freed once in_use is 0 (the kernel clears
   it when the child exec'd or exited), or after the reap, never before. */
struct spawn_mem {
  struct clonefd_plan plan;
  struct clonefd_spawn spec; /* the decoded request: strings, stdio */
  void *stack;
  volatile int in_use;
};

#define CHILD_STACK_SIZE (64 * 1024)

/* With many live children (two fds each: the pidfd and the record pipe's
   write end) a child's copy of our fd table costs it a close per entry
   before exec: ~4 ms per spawn at 4,000 children here. From SHARE_FILES_MIN
   children on, those fds are kept at or above FD_BASE, and a child whose
   request fds are all below it is cloned sharing our table: its private
   copy then holds only the fds below FD_BASE (child.h files_below). */
#define FD_BASE 1024
#define SHARE_FILES_MIN 128

/* fd moved to FD_BASE or above when many children are alive; fd itself
   when not needed or not possible (a low RLIMIT_NOFILE). */
static int keep_high(int fd, size_t live) {
  if (live < SHARE_FILES_MIN / 2 || fd >= FD_BASE) return fd;
  int high = fcntl(fd, F_DUPFD_CLOEXEC, FD_BASE);
  if (high < 0) return fd;
  close(fd);
  return high;
}

/* A few stacks are kept for reuse: sequential spawns then touch pages
   that are already mapped instead of faulting in fresh ones. */
static void *stack_cache[8];
static int nstack_cache;

static void *get_stack(void) {
  if (nstack_cache > 0) return stack_cache[--nstack_cache];
  void *p = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static void put_stack(void *p) {
  if (nstack_cache < (int)(sizeof stack_cache / sizeof stack_cache[0])) stack_cache[nstack_cache++] = p;
  else munmap(p, CHILD_STACK_SIZE);
}

static void free_spawn_mem(struct spawn_mem *m) {
  if (!m) return;
  clonefd_spawn_free(&m->spec);
  if (m->stack) put_stack(m->stack);
  free(m);
}

struct child {
  struct child *next, *prev;
  struct spawn_mem *mem;      /* until the child exec'd or exited */
  struct child *next_holding; /* in `holding` while mem is set */
  pid_t pid;
  int pidfd;
  int record;  /* the record pipe's write end */
  uint64_t id;
  int kill_with_parent;
  int deferred; /* exited, but its zombie is held by a ptracer: out of the epoll set, retried */
  struct client *client; /* NULL once the client is gone */
};

/*
 * A child's cgroup (the `cgroup` option: its process tree), from the spawn
 * until the group is empty: the tree outlives the child as long as any
 * process in it does. While the client is there, the group is Node's to
 * remove; once it is gone, killWithParent trees are killed whole
 * (cgroup.kill) and every tree's group is removed here when it empties, so
 * a Node process that dies leaves no group behind. The helper stays while
 * it has such trees.
 */
struct tree {
  struct tree *next, *prev;
  int dir;    /* the group's directory */
  int events; /* its cgroup.events, watched for POLLPRI; -1 once handed */
  int kill_with_parent;
  int dead; /* freed after this epoll batch, which may still hold an event of it */
  struct client *client; /* NULL once the client is gone */
};
/* Followed until empty (they keep the loop going once their client is
   gone). */
static struct tree *trees, *dead_trees;
static size_t ntrees;
/* Empty while their client lives: Node removes the group once it has the
   child's exit. Kept (the directory fd only) until we see it removed, so
   that a Node that dies before it gets there still leaves no group: the
   client's departure removes what is left. Checked a few at a time at each
   tree spawn, oldest first, so the list stays as long as Node is behind. */
static struct tree *handed;

/* epoll data: a tagged pointer (low 3 bits; every pointer here comes from
   malloc, so they are free) to what became ready. */
enum tag { TAG_CONTROL = 0, TAG_CLIENT = 1, TAG_EVENTS = 2, TAG_TREE = 3, TAG_PIDFD = 4, TAG_SIGCHLD = 5 };
#define TAG_MASK 7u

static int epfd = -1;
/* SIGCHLD as a readable fd (the orphans, below), or -1: no subreaper. */
static int sigchld_fd = -1;
static int orphans_pending;
/* The own child's zombie the last orphan scan stopped at (0: none). */
static pid_t scan_stopped_at;
/* When a scan is due that no SIGCHLD of an orphan asked for (0: none). */
static uint64_t orphan_scan_due_ms;
static int control_open = 1;
/* Clients that went away during this epoll batch: freed after the batch,
   since a later event of the same batch may still point at them. */
static struct client *graveyard[CLONEFD_MAX_FDS];
static size_t ngraveyard;
static struct client **clients;
static size_t nclients, cap_clients;
static struct child *children; /* doubly linked: a reap removes in O(1) */
static size_t nchildren;
/* Children whose spawn memory is still held: swept at each spawn and reap
   (no wake-up of ours per exec: the exec'ing child keeps its CPU). */
static struct child *holding;

static uint64_t tagged(void *p, enum tag t) { return (uint64_t)(uintptr_t)p | (uint64_t)t; }
_Static_assert(_Alignof(max_align_t) >= 8, "malloc'd pointers leave 3 tag bits");

static int watch(int fd, uint32_t events, void *p, enum tag t, int op) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = events;
  ev.data.u64 = tagged(p, t);
  return epoll_ctl(epfd, op, fd, &ev);
}

static void close_fds(int *fds, int n) {
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
}

/* ---- messages out ------------------------------------------------------ */

static int send_now(struct outq *q, const void *data, size_t len, int fd) {
  struct iovec iov = {(void *)data, len};
  ssize_t n = clonefd_send_fds(q->fd, &iov, 1, &fd, fd >= 0 ? 1 : 0, MSG_DONTWAIT);
  return n < 0 ? (int)n : 0;
}

static void client_gone(struct client *c);

/* What epoll watches on a client's sockets: requests always, and EPOLLOUT
   while a queue waits. An event socket with nothing queued is watched for
   nothing but its hangup (always reported). */
static void rewatch(struct client *c) {
  watch(c->req.fd, EPOLLIN | (c->req.head ? EPOLLOUT : 0), c, TAG_CLIENT, EPOLL_CTL_MOD);
  watch(c->ev.fd, c->ev.head ? EPOLLOUT : 0, c, TAG_EVENTS, EPOLL_CTL_MOD);
}

/* Sends on q, or queues when its buffer is full. Takes ownership of fd.
   0: sent or queued; -1: the client is gone (nothing was delivered). */
static int send_msg(struct client *c, struct outq *q, const void *data, size_t len, int fd) {
  if (!c || c->dead) {
    if (fd >= 0) close(fd);
    return -1;
  }
  if (!q->head) {
    int r = send_now(q, data, len, fd);
    if (r == 0) {
      if (fd >= 0) close(fd);
      return 0;
    }
    if (r != -EAGAIN && r != -ENOBUFS) {
      if (fd >= 0) close(fd);
      client_gone(c);
      return -1;
    }
  }
  struct outmsg *m = malloc(sizeof *m + len);
  if (!m) {
    /* Out of memory: this client cannot be served reliably any more. */
    if (fd >= 0) close(fd);
    client_gone(c);
    return -1;
  }
  m->next = NULL;
  m->len = len;
  m->fd = fd;
  memcpy(m->data, data, len);
  int was_empty = !q->head;
  if (q->tail) q->tail->next = m;
  else q->head = m;
  q->tail = m;
  if (was_empty) rewatch(c);
  return 0;
}

/* 0 when q is empty now, -EAGAIN when it must wait, -1 when the client went. */
static int flush_queue(struct client *c, struct outq *q) {
  while (q->head) {
    struct outmsg *m = q->head;
    int r = send_now(q, m->data, m->len, m->fd);
    if (r == -EAGAIN || r == -ENOBUFS) return -EAGAIN;
    if (r < 0) {
      client_gone(c);
      return -1;
    }
    q->head = m->next;
    if (!q->head) q->tail = NULL;
    if (m->fd >= 0) close(m->fd);
    free(m);
  }
  return 0;
}

static void drop_queue(struct outq *q) {
  while (q->head) {
    struct outmsg *m = q->head;
    q->head = m->next;
    if (m->fd >= 0) close(m->fd);
    free(m);
  }
  q->tail = NULL;
}

/* The answer to a SPAWN, on the request socket. -1: it could not be
   delivered (the client is gone). */
static int reply_spawned(struct client *c, uint64_t id, pid_t pid, int err, int stage, int pidfd) {
  struct clonefd_spawned_msg msg;
  clonefd_spawned_msg_init(&msg, id, pid, err, stage);
  return send_msg(c, &c->req, &msg, sizeof msg, pidfd);
}

/* ---- trees (cgroups) ---------------------------------------------------- */

/* SIGKILL for every process in the group (cgroup.kill, 5.14). */
static int kill_cgroup(int dirfd) {
  int fd = openat(dirfd, "cgroup.kill", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t n = write(fd, "1", 1);
  int err = n == 1 ? 0 : -errno;
  close(fd);
  return err;
}

static int tree_empty(struct tree *t) { return clonefd_group_empty(t->events); }

static void unlink_tree(struct tree *t) {
  if (t->prev) t->prev->next = t->next;
  else trees = t->next;
  if (t->next) t->next->prev = t->prev;
  ntrees--;
}

static void free_tree(struct tree *t, int remove) {
  if (remove) clonefd_group_remove(t->dir);
  epoll_ctl(epfd, EPOLL_CTL_DEL, t->events, NULL);
  close(t->events);
  close(t->dir);
  unlink_tree(t);
  t->dead = 1;
  t->next = dead_trees;
  dead_trees = t;
}

/* An empty tree whose client lives: Node's to remove; followed (handed)
   until it has. */
static void hand_tree(struct tree *t) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, t->events, NULL);
  close(t->events);
  t->events = -1;
  /* Out of the epoll set before the next epoll_wait; its one event of
     this batch, if any, is the one that handed it. */
  unlink_tree(t);
  t->prev = NULL;
  t->next = NULL;
  struct tree **pp = &handed;
  while (*pp) pp = &(*pp)->next; /* appended: oldest first */
  *pp = t;
}

/* Frees handed trees whose group Node has removed: at most `budget`
   looked at, oldest first; one still there goes to the end. */
static void prune_handed(int budget) {
  struct tree **tail = &handed;
  while (*tail) tail = &(*tail)->next;
  struct tree *stop = NULL; /* the first moved to the end: a full round */
  while (budget-- > 0 && handed && handed != stop) {
    struct tree *t = handed;
    if (faccessat(t->dir, "cgroup.procs", F_OK, 0) == 0) {
      if (!t->next) break; /* alone: nowhere to move it */
      handed = t->next;
      t->next = NULL;
      *tail = t;
      tail = &t->next;
      if (!stop) stop = t;
      continue;
    }
    int last = t->next == NULL;
    handed = t->next;
    close(t->dir);
    free(t); /* not in any epoll set: no event can name it */
    if (last) tail = &handed;
  }
}

/* The client is gone: remove what Node did not get to. */
static void handed_orphaned(struct client *c) {
  for (struct tree **pp = &handed; *pp;) {
    struct tree *t = *pp;
    if (t->client != c) {
      pp = &t->next;
      continue;
    }
    *pp = t->next;
    clonefd_group_remove(t->dir);
    close(t->dir);
    free(t);
  }
}

/* cgroup.events changed: an empty group is done with (removed here once its client is gone). */
static void on_tree(struct tree *t) {
  if (t->dead || !tree_empty(t)) return;
  if (t->client) hand_tree(t);
  else free_tree(t, 1);
}

/* The kernel sends at most one cgroup.events notification per 10 ms and
   defers the rest; an rmdir (Node's) cancels a deferred one. So a tree that
   empties right after it started may never be heard of: every tree is
   looked at again once a second while there are any (a removed group reads
   as empty and is then handed, and freed by prune_handed). */
#define TREE_SWEEP_MS 1000
static uint64_t last_sweep_ms;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sweep_trees(void) {
  uint64_t now = now_ms();
  if (now - last_sweep_ms < TREE_SWEEP_MS) return;
  last_sweep_ms = now;
  for (struct tree *t = trees, *next; t; t = next) {
    next = t->next; /* on_tree may unlink t */
    on_tree(t);
  }
  prune_handed(64);
}

/* Follows the group at dirfd (dup'd; the caller keeps its fd). Without the
   fds for it (a full table), the tree is Node's alone: nothing is lost
   but the cleanup after Node's death. */
static void add_tree(int dirfd, struct client *c, int kill_with_parent) {
  struct tree *t = calloc(1, sizeof *t);
  if (!t) return;
  t->dir = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  t->events = t->dir < 0 ? -1 : openat(t->dir, "cgroup.events", O_RDONLY | O_CLOEXEC);
  if (t->events < 0) {
    if (t->dir >= 0) close(t->dir);
    free(t);
    return;
  }
  t->dir = keep_high(t->dir, nchildren);
  t->events = keep_high(t->events, nchildren);
  t->client = c;
  t->kill_with_parent = kill_with_parent;
  t->next = trees;
  if (trees) trees->prev = t;
  trees = t;
  ntrees++;
  /* Read first: kernfs counts every change since the open as news. Empty
     already: the tree (child included) is done, Node removes the group. */
  if (tree_empty(t)) {
    hand_tree(t);
  } else if (watch(t->events, EPOLLPRI, t, TAG_TREE, EPOLL_CTL_ADD) < 0) {
    free_tree(t, 0); /* Node's alone, as without the fds */
  }
  prune_handed(4);
}

/* The client is gone: its killWithParent trees are killed whole; the
   others are thawed (a freeze of its, by freeze() or a killTree() cut
   short, would never be undone); every tree of it is removed here once
   empty. */
static void trees_orphaned(struct client *c) {
  for (struct tree *t = trees, *next; t; t = next) {
    next = t->next;
    if (t->client != c) continue;
    t->client = NULL;
    if (t->kill_with_parent) kill_cgroup(t->dir);
    else clonefd_group_thaw(t->dir);
    if (tree_empty(t)) free_tree(t, 1);
  }
  handed_orphaned(c);
}

/* ---- clients ------------------------------------------------------------ */

static void drop_unread(struct client *c);

static void client_gone(struct client *c) {
  if (c->dead) return;
  c->dead = 1;
  /* Whichever way we learnt of it (its request socket, its event socket,
     a failed send), what it sent and we did not read goes here. */
  drop_unread(c);
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->req.fd, NULL);
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->ev.fd, NULL);
  close(c->req.fd);
  close(c->ev.fd);
  c->req.fd = c->ev.fd = -1;
  drop_queue(&c->req);
  drop_queue(&c->ev);
  /* Its environment is gone: killWithParent children go with it; the
     others are still reaped, their records still written. */
  for (struct child *ch = children; ch; ch = ch->next) {
    if (ch->client != c) continue;
    if (ch->kill_with_parent) SYS4(__NR_pidfd_send_signal, ch->pidfd, SIGKILL, NULL, 0);
    ch->client = NULL;
  }
  c->children = 0;
  trees_orphaned(c);
  for (size_t i = 0; i < nclients; i++) {
    if (clients[i] == c) {
      clients[i] = clients[--nclients];
      break;
    }
  }
  if (ngraveyard < sizeof graveyard / sizeof graveyard[0]) graveyard[ngraveyard++] = c;
  /* else: leak one small struct rather than risk a use after free */
}

static void add_client(int req_fd, int ev_fd) {
  struct client *c = calloc(1, sizeof *c);
  if (c && nclients == cap_clients) {
    size_t cap = cap_clients ? cap_clients * 2 : 8;
    struct client **grown = realloc(clients, cap * sizeof *clients);
    if (grown) {
      clients = grown;
      cap_clients = cap;
    }
  }
  if (!c || nclients == cap_clients) {
    free(c);
    close(req_fd);
    close(ev_fd);
    return;
  }
  c->req.fd = req_fd;
  c->ev.fd = ev_fd;
  clients[nclients++] = c;
  if (watch(req_fd, EPOLLIN, c, TAG_CLIENT, EPOLL_CTL_ADD) < 0 || watch(ev_fd, 0, c, TAG_EVENTS, EPOLL_CTL_ADD) < 0)
    client_gone(c);
}

/* One message with its fds; see clonefd_recv_fds (fdpass.h). */
static ssize_t recv_msg(int fd, void *buf, size_t len, int *fds, int *nfds, int *trunc) {
  return clonefd_recv_fds(fd, buf, len, fds, CLONEFD_MAX_FDS, nfds, MSG_DONTWAIT, trunc);
}

/* ---- spawning ----------------------------------------------------------- */

static void remove_child(struct child *ch);
static void release_mem(struct child *ch);

static void sweep_holding(void);

#define HANDOFF_MS 1000

/* Waits until a child cloned sharing our fd table has its own copy (it
   stores 2) or has exited (0, CLONE_CHILD_CLEARTID): until then nothing of
   our table may change. Those are its first system calls, so this is
   short; false past HANDOFF_MS (someone stopped it there). */
static int handed_off(volatile int *word) {
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (__atomic_load_n(word, __ATOMIC_ACQUIRE) == 1) {
    struct timespec slice = {0, 50 * 1000 * 1000};
    syscall(SYS_futex, word, FUTEX_WAIT, 1, &slice, NULL, 0);
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L;
    if (ms > HANDOFF_MS && __atomic_load_n(word, __ATOMIC_ACQUIRE) == 1) return 0;
  }
  return 1;
}

static void handle_spawn(struct client *c, uint64_t id, unsigned char *body, size_t len, int *fds, int nfds) {
  sweep_holding();
  struct spawn_mem *m = calloc(1, sizeof *m);
  struct child *ch = NULL;
  int err = ENOMEM;
  if (!m) goto bad;
  /* The child reads everything from our memory while we go on: the decoded
     request is a private copy, not the receive buffer the next message
     overwrites. */
  if ((err = clonefd_spawn_decode(body, len, fds, nfds, &m->spec)) != 0) goto bad;
  const struct clonefd_spawn *spec = &m->spec;

  struct clonefd_plan *plan = &m->plan;
  clonefd_plan_init(plan);
  plan->paths = (const char *const *)spec->paths;
  plan->argv = spec->argv;
  plan->envp = spec->envp;
  plan->cwd_fd = spec->cwd_fd;
  plan->cwd = spec->cwd;
  plan->stdio = spec->stdio;
  plan->nstdio = (int)spec->req.nstdio;
  plan->umask = (int)(spec->req.umask & 0777);
  plan->uid = spec->req.uid;
  plan->gid = spec->req.gid;
  plan->flags = (int)(spec->req.flags & (CLONEFD_SETSID | CLONEFD_SETUID | CLONEFD_SETGID | CLONEFD_SETPGID));
  plan->cgroup_fd = spec->cgroup_fd;

  if (!(m->stack = get_stack())) {
    err = ENOMEM;
    goto bad;
  }
  plan->err_fd = spec->exec_fd; /* Node's exec pipe */
  int share_files = nchildren >= SHARE_FILES_MIN;
  for (int i = 0; i < nfds && share_files; i++) share_files = fds[i] < FD_BASE;
  if (share_files) {
    plan->files_below = FD_BASE;
    plan->handoff = &m->in_use;
  }
  if (!(ch = calloc(1, sizeof *ch))) {
    err = ENOMEM;
    goto bad;
  }
  /* Shared memory, no vfork: nothing is copied, and this loop keeps
     serving every other environment while the child execs (a binary on a
     stalled mount stalls only its own spawn). */
  int pidfd = -1;
  long pid = clonefd_spawn_shared(plan, m->stack, CHILD_STACK_SIZE, &pidfd, &m->in_use);
  if (pid >= 0 && share_files && !handed_off(&m->in_use)) {
    /* Stopped (SIGSTOP) or starved in its first instructions: it must not
       hold every environment up. It never ran anything of the request's:
       kill it, reap it (then nothing shares our table), fail the spawn. */
    clonefd_kill_and_reap(pidfd);
    close(pidfd);
    pid = -ETIMEDOUT;
  }
  if (pid < 0) {
    free(ch);
    free_spawn_mem(m);
    close_fds(fds, nfds); /* our exec pipe copy too: Node sees EOF, then this */
    reply_spawned(c, id, 0, (int)-pid, CLONEFD_STAGE_CLONE, -1);
    return;
  }
  /* The child has its own fd table: keep only the record pipe. Closing
     our copy of the exec pipe lets Node see its EOF at the exec. */
  if (spec->cgroup_fd >= 0) {
    uint32_t both = CLONEFD_REQ_KILL_WITH_PARENT | CLONEFD_REQ_KILL_TREE;
    add_tree(spec->cgroup_fd, c, (spec->req.flags & both) == both);
  }
  int record = keep_high(fds[0], nchildren);
  fds[0] = -1;
  close_fds(fds, nfds);
  pidfd = keep_high(pidfd, nchildren);
  fcntl(record, F_SETFL, O_NONBLOCK); /* never block on one client's pipe */
  ch->mem = m;
  ch->next_holding = holding;
  holding = ch;
  ch->pid = (pid_t)pid;
  ch->pidfd = pidfd;
  ch->record = record;
  ch->id = id;
  ch->kill_with_parent = (spec->req.flags & CLONEFD_REQ_KILL_WITH_PARENT) != 0;
  ch->client = c;
  ch->next = children;
  if (children) children->prev = ch;
  children = ch;
  nchildren++;
  c->children++;
  int theirs = fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
  if (theirs < 0 || watch(pidfd, EPOLLIN, ch, TAG_PIDFD, EPOLL_CTL_ADD) < 0) {
    int watch_err = errno ? errno : ENOMEM;
    /* We could never reap it: it must not run. Kill, reap, refuse. */
    clonefd_kill_and_reap(pidfd);
    if (theirs >= 0) close(theirs);
    release_mem(ch);
    close(pidfd);
    close(record);
    reply_spawned(c, id, 0, watch_err, CLONEFD_STAGE_WATCH, -1);
    remove_child(ch);
    return;
  }
  if (reply_spawned(c, id, ch->pid, 0, 0, theirs) < 0) {
    /* Nobody will ever know of this child (its environment gave up on us,
       e.g. after we were stopped past its deadline): it must not run. It
       is still reaped like any other. */
    SYS4(__NR_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
  }
  return;

bad:
  free_spawn_mem(m);
  close_fds(fds, nfds);
  reply_spawned(c, id, 0, err, CLONEFD_STAGE_NONE, -1);
}

static void remove_child(struct child *ch) {
  if (ch->prev) ch->prev->next = ch->next;
  else children = ch->next;
  if (ch->next) ch->next->prev = ch->prev;
  nchildren--;
  if (ch->client) ch->client->children--;
  free(ch);
}

/* The child left our memory (it exec'd, or exited): free its spawn data. */
static void release_mem(struct child *ch) {
  if (!ch->mem) return;
  for (struct child **pp = &holding; *pp; pp = &(*pp)->next_holding) {
    if (*pp == ch) {
      *pp = ch->next_holding;
      break;
    }
  }
  free_spawn_mem(ch->mem);
  ch->mem = NULL;
}

/* Frees the spawn memory of every child that has left it. The list is
   short (the spawns whose exec was still under way at the last sweep). */
static void sweep_holding(void) {
  for (struct child **pp = &holding; *pp;) {
    struct child *ch = *pp;
    if (__atomic_load_n(&ch->mem->in_use, __ATOMIC_ACQUIRE) == 0) {
      *pp = ch->next_holding;
      free_spawn_mem(ch->mem);
      ch->mem = NULL;
    } else {
      pp = &ch->next_holding;
    }
  }
}

/* Exited children whose zombie a ptracer holds (waitid would block until it
   lets go, and the pidfd stays readable meanwhile): out of the epoll set,
   retried after each SIGCHLD (the tracer's release sends us one) and every
   DEFER_RETRY_MS while any is left. */
#define DEFER_RETRY_MS 200
static size_t ndeferred;

static void on_exit_ready(struct child *ch) {
  struct clonefd_record rec;
  /* Never wait here: one held zombie would stop every environment. */
  int r = clonefd_reap(ch->pidfd, ch->pid, &rec, CLONEFD_REAP_NOHANG);
  if (r == -EAGAIN) {
    if (!ch->deferred) {
      epoll_ctl(epfd, EPOLL_CTL_DEL, ch->pidfd, NULL);
      ch->deferred = 1;
      ndeferred++;
    }
    return;
  }
  if (ch->deferred) ndeferred--;
  epoll_ctl(epfd, EPOLL_CTL_DEL, ch->pidfd, NULL);
  close(ch->pidfd);
  release_mem(ch); /* reaped: it certainly runs on nothing of ours */
  sweep_holding();
  struct clonefd_exit_msg msg;
  clonefd_exit_msg_init(&msg, ch->id, &rec);
  if (r == 0) {
    /* The record first, then the message: whoever learns of the exit from
       the message (`exited`) finds the record in the pipe already. */
    ssize_t w;
    do w = write(ch->record, &rec.info, sizeof rec.info);
    while (w < 0 && errno == EINTR);
    /* EPIPE: the reader closed its end; nobody wants the record. */
  }
  /* Closed either way: the contract's EOF (with no record when the status
     was lost, which cannot happen for our own child). */
  close(ch->record);
  ch->record = -1;
  if (ch->client) send_msg(ch->client, &ch->client->ev, &msg, sizeof msg, -1);
  pid_t pid = ch->pid;
  remove_child(ch);
  /* A scan stopped at this zombie can go on now. */
  if (sigchld_fd >= 0 && pid == scan_stopped_at) {
    scan_stopped_at = 0;
    orphans_pending = 1;
  }
}

/* ---- orphans (we are their subreaper) --------------------------------- */

/* A process a child of ours leaves behind (a daemon that double-forked, a
   backgrounded job whose shell exited) is reparented to us, not to PID 1:
   PR_SET_CHILD_SUBREAPER. Their exits reach us only as SIGCHLD (read from
   a signalfd, no handler), and they have no pidfd of ours, so they are
   found with waitid(P_ALL, WNOWAIT): that peeks at a zombie without
   reaping it, and only a pid that is none of our own children is reaped
   (by pid: a zombie's pid cannot be reused). Our own children are reaped
   only through their pidfds, with their times and status; when the zombie
   peeked at is one of them, the scan stops until its pidfd reap, which
   asks for another scan.

   That peek walks all our children in the kernel (~140 ns each: 0.5 ms
   with 4,000), so it is not made for every SIGCHLD: our own children's
   exit signal is SIGCHLD too (exec resets it). A SIGCHLD's sender
   (ssi_pid) is looked at alone instead, after the epoll batch (waitid
   P_PID looks the pid up without the walk since Linux 5.14, do_wait_pid;
   before, it walks too): a zombie that is none of our children is reaped
   there. The scan
   comes ORPHAN_SCAN_MS after a SIGCHLD, once for all that came meanwhile,
   because SIGCHLD does not queue: an orphan that exits while another
   SIGCHLD is pending has no siginfo of its own. */
#define ORPHAN_SCAN_MS 100

static int is_our_child(pid_t pid) {
  for (struct child *ch = children; ch; ch = ch->next)
    if (ch->pid == pid) return 1;
  return 0;
}

static void reap_orphans(void) {
  orphans_pending = 0;
  orphan_scan_due_ms = 0;
  for (;;) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT | __WALL) < 0) return; /* ECHILD: none */
    pid_t pid = si.si_pid;
    if (pid == 0) return;
    if (is_our_child(pid)) {
      scan_stopped_at = pid;
      return;
    }
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | __WALL) < 0) return;
  }
}

static void retry_deferred(void) {
  for (struct child *ch = children, *next; ch && ndeferred > 0; ch = next) {
    next = ch->next; /* on_exit_ready may free ch */
    if (ch->deferred) on_exit_ready(ch);
  }
}

/* The SIGCHLD's sender, if it is an orphan's zombie: reaped. ECHILD: no
   zombie of ours by that pid (one of our children already reaped through
   its pidfd, or an orphan already reaped); an own child's zombie waits for
   its pidfd. */
static void reap_sender(pid_t pid) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (pid <= 0 || waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT | __WALL) < 0) return;
  if (si.si_pid != pid || is_our_child(pid)) return;
  waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | __WALL);
}

/* The senders of this batch's SIGCHLDs, looked at after the batch: by then
   the batch's pidfd reaps are done, and an own child's pid finds no zombie
   (ECHILD) instead of a walk of the children list. */
static pid_t senders[64];
static size_t nsenders;

static void on_sigchld(void) {
  struct signalfd_siginfo info[16];
  ssize_t n;
  while ((n = read(sigchld_fd, info, sizeof info)) > 0) {
    for (size_t i = 0; i < (size_t)n / sizeof info[0]; i++) {
      if (nsenders < sizeof senders / sizeof senders[0]) senders[nsenders++] = (pid_t)info[i].ssi_pid;
      else orphans_pending = 1; /* more than we keep: a scan finds them */
    }
  }
  if (orphan_scan_due_ms == 0) orphan_scan_due_ms = now_ms() + ORPHAN_SCAN_MS;
}

static void reap_senders(void) {
  while (nsenders > 0) reap_sender(senders[--nsenders]);
}

/* epoll_wait's timeout: the soonest of what is waiting for time. */
static int loop_timeout_ms(void) {
  int t = ndeferred > 0 ? DEFER_RETRY_MS : ntrees > 0 ? TREE_SWEEP_MS : -1;
  if (orphan_scan_due_ms != 0) {
    uint64_t now = now_ms();
    int left = orphan_scan_due_ms > now ? (int)(orphan_scan_due_ms - now) : 0;
    if (t < 0 || left < t) t = left;
  }
  return t;
}

static void on_control(void) {
  struct clonefd_msg_header h;
  int fds[CLONEFD_MAX_FDS], nfds, trunc;
  ssize_t n = recv_msg(CLONEFD_HELPER_CONTROL_FD, &h, sizeof h, fds, &nfds, &trunc);
  if (n == -EAGAIN) return;
  if (n == 0 || n < 0) {
    /* Node closed the control channel (it exited, or replaced us after a
       credential change): no new clients; serve the ones we have. */
    control_open = 0;
    epoll_ctl(epfd, EPOLL_CTL_DEL, CLONEFD_HELPER_CONTROL_FD, NULL);
    close(CLONEFD_HELPER_CONTROL_FD);
    return;
  }
  if (!trunc && n == (ssize_t)sizeof h && clonefd_msg_header_read(&h, sizeof h, &h) == 0 &&
      h.type == CLONEFD_MSG_HELLO && nfds == 2) {
    add_client(fds[0], fds[1]);
    return;
  }
  close_fds(fds, nfds); /* malformed: ignored, never trusted */
}

static unsigned char inbuf[sizeof(struct clonefd_msg_header) + sizeof(struct clonefd_spawn_req) +
                           CLONEFD_INLINE_PAYLOAD_MAX + 16];

static void on_events(struct client *c, uint32_t events) {
  if (c->dead) return;
  if (events & (EPOLLHUP | EPOLLERR)) {
    client_gone(c);
    return;
  }
  if ((events & EPOLLOUT) && flush_queue(c, &c->ev) == 0) rewatch(c);
}

/* A SPAWN request whose environment went away before we got to it: its
   fds are closed, and the child's cgroup, which Node made for it (still
   empty: nothing was cloned into it), is removed here, since nobody else
   will (Node may have been SIGKILLed). */
static void drop_request(const unsigned char *msg, ssize_t n, int *fds, int nfds) {
  struct clonefd_msg_header h;
  if (n >= (ssize_t)sizeof h && clonefd_msg_header_read(msg, (size_t)n, &h) == 0 && h.type == CLONEFD_MSG_SPAWN) {
    struct clonefd_spawn spec;
    memset(&spec, 0, sizeof spec);
    if (clonefd_spawn_decode(msg + sizeof h, (size_t)n - sizeof h, fds, nfds, &spec) == 0 && spec.cgroup_fd >= 0)
      clonefd_group_remove(spec.cgroup_fd);
    clonefd_spawn_free(&spec);
  }
  close_fds(fds, nfds);
}

/* The client hung up: every request it left unread is dropped. */
static void drop_unread(struct client *c) {
  for (int budget = 0; budget < 4096; budget++) {
    int fds[CLONEFD_MAX_FDS], nfds, trunc;
    ssize_t n = recv_msg(c->req.fd, inbuf, sizeof inbuf, fds, &nfds, &trunc);
    if (n <= 0) return;
    drop_request(inbuf, n, fds, nfds);
  }
}

static void on_client(struct client *c, uint32_t events) {
  if (c->dead) return;
  if ((events & EPOLLOUT) && flush_queue(c, &c->req) == 0 && !c->dead) rewatch(c);
  if (c->dead || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  for (int budget = 0; budget < 64 && !c->dead; budget++) {
    int fds[CLONEFD_MAX_FDS], nfds, trunc;
    ssize_t n = recv_msg(c->req.fd, inbuf, sizeof inbuf, fds, &nfds, &trunc);
    if (n == -EAGAIN) return;
    if (n <= 0) {
      client_gone(c);
      return;
    }
    struct clonefd_msg_header h;
    if (n < (ssize_t)sizeof h) {
      close_fds(fds, nfds);
      continue; /* malformed, no id to answer: dropped */
    }
    int ours = clonefd_msg_header_read(inbuf, (size_t)n, &h) == 0;
    if (trunc && ours) {
      /* Too big, or too many fds for our table: say so, or Node waits. */
      reply_spawned(c, h.id, 0, trunc, CLONEFD_STAGE_NONE, -1);
      continue;
    }
    if (!ours || h.type != CLONEFD_MSG_SPAWN) {
      close_fds(fds, nfds);
      reply_spawned(c, h.id, 0, EPROTO, CLONEFD_STAGE_NONE, -1);
      continue;
    }
    struct pollfd hup = {c->req.fd, POLLRDHUP, 0};
    if (poll(&hup, 1, 0) == 1 && (hup.revents & (POLLHUP | POLLRDHUP))) {
      /* The environment gave up on this request (and on us) before we got
         to it: nobody would learn of the child. */
      drop_request(inbuf, n, fds, nfds);
      client_gone(c); /* drops the rest unread */
      return;
    }
    if (!control_open) {
      /* Replaced (Node's credentials changed): spawn nothing more. */
      close_fds(fds, nfds);
      reply_spawned(c, h.id, 0, ESTALE, CLONEFD_STAGE_NONE, -1);
      continue;
    }
    handle_spawn(c, h.id, inbuf + sizeof h, (size_t)n - sizeof h, fds, nfds);
  }
}

int main(void) {
  /* Show up as "clonefd-helper" even when exec'd from a memfd. */
  prctl(PR_SET_NAME, "clonefd-helper", 0, 0, 0);
  /* A terminal's Ctrl-C or hangup must not kill the reaper of the children
     it also signals; writes to closed pipes are reported, not fatal. */
  const int ignored[] = {SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGHUP, SIGPIPE};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) sigaction(ignored[i], &sa, NULL);

  struct stat st;
  if (fstat(CLONEFD_HELPER_CONTROL_FD, &st) < 0 || !S_ISSOCK(st.st_mode)) return 2;
  fcntl(CLONEFD_HELPER_CONTROL_FD, F_SETFD, FD_CLOEXEC);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return 1;
  if (watch(CLONEFD_HELPER_CONTROL_FD, EPOLLIN, NULL, TAG_CONTROL, EPOLL_CTL_ADD) < 0) return 1;
  /* Subreaper only with a way to hear of the orphans' exits: without the
     signalfd they would pile up as our zombies, worse than going to PID 1. */
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &chld, NULL) == 0) {
    sigchld_fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigchld_fd >= 0 && (watch(sigchld_fd, EPOLLIN, NULL, TAG_SIGCHLD, EPOLL_CTL_ADD) < 0 ||
                            prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)) {
      close(sigchld_fd);
      sigchld_fd = -1;
    }
  }

  struct epoll_event ev[64];
  while (control_open || nclients > 0 || nchildren > 0 || ntrees > 0) {
    int n = epoll_wait(epfd, ev, 64, loop_timeout_ms());
    if (n < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    for (int i = 0; i < n; i++) {
      uint64_t d = ev[i].data.u64;
      void *p = (void *)(uintptr_t)(d & ~(uint64_t)TAG_MASK);
      switch ((enum tag)(d & TAG_MASK)) {
        case TAG_CONTROL:
          if (control_open) on_control();
          break;
        case TAG_CLIENT:
          on_client(p, ev[i].events);
          break;
        case TAG_EVENTS:
          on_events(p, ev[i].events);
          break;
        case TAG_TREE:
          on_tree(p);
          break;
        case TAG_PIDFD:
          on_exit_ready(p);
          break;
        case TAG_SIGCHLD:
          on_sigchld();
          break;
      }
    }
    if (ndeferred > 0) retry_deferred();
    if (ntrees > 0) sweep_trees();
    reap_senders();
    if (orphan_scan_due_ms != 0 && now_ms() >= orphan_scan_due_ms) orphans_pending = 1;
    if (orphans_pending) reap_orphans();
    while (ngraveyard > 0) free(graveyard[--ngraveyard]);
    while (dead_trees) {
      struct tree *t = dead_trees;
      dead_trees = t->next;
      free(t);
    }
  }
  return 0;
}
