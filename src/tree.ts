// Process trees without a cgroup (best-effort), and the trees this process
// still has at its exit. The exact kind, a cgroup per child, is
// src/cgroup.ts.
import { readdirSync, readFileSync } from 'node:fs';
import { signalIfOurs, type ChildCgroup } from './cgroup';
import { SIGKILL } from './signals';

/** pid → ppid of every process now (one /proc scan). */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    const ppid = parentOf(Number(name));
    if (ppid !== null) out.set(Number(name), ppid);
  }
  return out;
}

function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null; // gone
  }
}

/** Field 5 of /proc/<pid>/stat: its process group, or null when gone. */
function groupOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return null;
  }
}

/**
 * The child's tree without a cgroup, each process signalled once: its
 * process group (pgid > 0: the child leads one), then every descendant of
 * `root` that /proc shows now outside that group, each through a pidfd
 * opened before its parent is checked again (so a recycled pid is never
 * signalled), then the child itself through its own pidfd (killChild)
 * unless the group had it. root 0: the child is reaped, it has no
 * descendants to find (its orphans belong to a subreaper now: the group is
 * what remains).
 */
export function killTreeByProcess(root: number, pgid: number, signal: number, killChild: () => number): void {
  if (pgid > 0) {
    try {
      process.kill(-pgid, signal);
    } catch {
      // ESRCH: nobody is left in the group
    }
  }
  if (root > 0) {
    const byParent = new Map<number, number[]>();
    for (const [pid, ppid] of parents()) {
      const list = byParent.get(ppid);
      if (list) list.push(pid);
      else byParent.set(ppid, [pid]);
    }
    const tree = new Set<number>([root]);
    const queue = [root];
    while (queue.length > 0) {
      for (const kid of byParent.get(queue.pop()!) ?? []) {
        if (tree.has(kid)) continue;
        tree.add(kid);
        queue.push(kid);
        signalIfOurs(kid, signal, (p) => {
          const ppid = parentOf(p);
          return ppid !== null && tree.has(ppid) && (pgid <= 0 || groupOf(p) !== pgid);
        });
      }
    }
  }
  if (pgid <= 0 || (root > 0 && groupOf(root) !== pgid)) killChild();
}

/** Trees whose group must not outlive this process (killWithParent with killMode 'tree'), and every live tree. */
const live = new Map<ChildCgroup, boolean>();
let hooked = false;

function atExit(): void {
  for (const [tree, kill] of live) {
    try {
      if (kill) tree.kill(SIGKILL);
    } catch {
      // gone meanwhile
    }
    // An empty group goes now; one with members left stays until they are
    // gone (nobody is left to remove it then: see the README).
    tree.abandon(kill ? 500 : 0);
  }
  live.clear();
}

export function trackTree(tree: ChildCgroup, killAtExit: boolean): void {
  live.set(tree, killAtExit);
  if (!hooked) {
    hooked = true;
    process.on('exit', atExit);
  }
}

export function untrackTree(tree: ChildCgroup): void {
  live.delete(tree);
}
