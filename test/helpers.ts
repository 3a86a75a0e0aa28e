// Shared test utilities: process and fd scans, polling with deadlines.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { binding } from '../src/binding';
import { spawn } from '../src/index';

/** `/proc/PID/stat`'s name, state and parent, or null once the process is gone (reaped). */
export function procStat(pid: number | string): { comm: string; state: string; ppid: number } | null {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The name may hold spaces and parentheses: the fields start after the last ')'.
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), state: rest[0], ppid: Number(rest[1]) };
}

/** Pids of this process's children that are zombies (state Z), the clonefd helper's included. */
export function zombieChildren(parent = process.pid): number[] {
  const out: number[] = [];
  const helper = binding.helperPid();
  if (helper > 0 && parent === process.pid) out.push(...zombieChildren(helper));
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(name); // null: exited meanwhile
    if (st?.state === 'Z' && st.ppid === parent) out.push(Number(name));
  }
  return out;
}

/** Pids of this process's live (non-zombie) children, the clonefd helper's children included, the helper itself not. */
export function liveChildren(parent = process.pid): number[] {
  const helper = binding.helperPid();
  const out: number[] = [];
  if (helper > 0 && parent === process.pid) out.push(...liveChildren(helper));
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(name);
    if (st && st.state !== 'Z' && st.ppid === parent && Number(name) !== helper) out.push(Number(name));
  }
  return out;
}

/** Open fds of this process, by number → what they point to. */
export function openFds(): Map<number, string> {
  const fds = new Map<number, string>();
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      fds.set(Number(name), readlinkSync(`/proc/self/fd/${name}`));
    } catch {
      // the directory's own fd, closed by now
    }
  }
  return fds;
}

export function fdCount(): number {
  return openFds().size;
}

/** Open pidfds of this process. */
export function pidfdCount(): number {
  let n = 0;
  for (const target of openFds().values()) if (target.includes('pidfd')) n++;
  return n;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tick = () => new Promise((r) => setImmediate(r));

/**
 * Polls `check` (with gc() and a macrotask in between) until it returns
 * true or the deadline passes; returns the last result.
 */
export async function waitFor(check: () => boolean, deadlineMs = 10_000): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() > end) return false;
    globalThis.gc?.();
    await tick();
    await sleep(10);
  }
}

/** Flags of an fd (F_GETFD, F_GETFL). */
export function fdFlags(fd: number): { cloexec: boolean; nonblock: boolean } {
  const r = binding.fdFlags(fd);
  if (typeof r === 'number') throw new Error(`fcntl(${fd}) failed: ${r}`);
  return { cloexec: (r[0] & 1) !== 0, nonblock: (r[1] & 0o4000) !== 0 };
}

/** Field of /proc/<pid>/status, e.g. 'SigIgn'. */
export function procStatus(pid: number, field: string): string | undefined {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = text.split('\n').find((l) => l.startsWith(`${field}:`));
  return line?.slice(field.length + 1).trim();
}


let probePath: string | undefined;
/** Compiles test/fixtures/probe.c once per test process; returns the binary's path. */
export function probe(): string {
  if (probePath) return probePath;
  const out = path.join(mkdtempSync(path.join(tmpdir(), 'clonefd-probe-')), 'probe');
  execFileSync('cc', ['-O2', '-o', out, path.join(__dirname, 'fixtures', 'probe.c')]);
  probePath = out;
  return out;
}

/** Collects a readable stream into a string. */
export async function collect(stream: NodeJS.ReadableStream | null): Promise<string> {
  if (!stream) return '';
  let text = '';
  stream.setEncoding('utf8');
  for await (const chunk of stream) text += chunk;
  return text;
}

/** The engine a spawn without `engine` uses in this test project. */
export const defaultEngine: 'helper' | 'direct' = process.env.CLONEFD_ENGINE === 'direct' ? 'direct' : 'helper';

/** What changed in /proc/self/fd since `before` (for assertion messages). */
export function fdDiff(before: Map<number, string>): string {
  const now = openFds();
  const extra = [...now].filter(([fd, t]) => before.get(fd) !== t).map(([fd, t]) => `${fd} -> ${t}`);
  return `fdCount ${now.size} vs baseline ${before.size}; new: ${extra.join(', ') || 'none'}`;
}

/** Resolves after one macrotask. */
export const macrotask = () => new Promise((r) => setImmediate(r));

export interface LeakCheck {
  /** The fd count after the warm-up. */
  readonly baseline: number;
  /** What each fd pointed to after the warm-up. */
  readonly baselineFds: Map<number, string>;
  /** What changed since the baseline (for assertion messages). */
  report(): string;
}

/**
 * The leak check of a test file: after `warmUp` (by default one spawn,
 * which loads the addon and, with the helper engine, starts the helper and
 * opens this environment's socket to it, kept for its life) the fd table
 * is the baseline; after the file, every fd must be back to it and no
 * zombie child (of this process or of the helper) left, within a deadline.
 */
export function useLeakCheck(warmUp: () => Promise<void> = async () => void (await spawn('/bin/true', [], { stdio: 'ignore' }).exited)): LeakCheck {
  const state = {
    baseline: 0,
    baselineFds: new Map<number, string>(),
    report: () => fdDiff(state.baselineFds),
  };
  beforeAll(async () => {
    await warmUp();
    await sleep(50);
    globalThis.gc?.();
    state.baseline = fdCount();
    state.baselineFds = openFds();
  });
  afterAll(async () => {
    const clean = await waitFor(() => zombieChildren().length === 0 && fdCount() === state.baseline, 10_000);
    expect(zombieChildren(), 'zombie children of this process (or of the helper) at the end of the file').toEqual([]);
    expect(clean, state.report()).toBe(true);
  });
  return state;
}

/** mulberry32: a seed-fixed stream of numbers in [0, 1), so a test's random choices are the same every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** p, or '<deadline>' if it has not settled within ms (a hang shows as a value, not a test timeout). */
export function withDeadline<T>(p: Promise<T>, ms: number): Promise<T | '<deadline>'> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<'<deadline>'>((r) => {
      timer = setTimeout(() => r('<deadline>'), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
