#!/usr/bin/env node
// The `clonefd` command.
//   clonefd run [--json] [--timeout DUR] [--kill-signal SIG] [--engine E] [--tree] [--cgroup]
//               [--cgroup-parent DIR] [--kill-tree-on-timeout] [--notify sd_notify|FD] -- CMD [ARGS...]
//   clonefd demo
import { spawn as cpSpawn } from 'node:child_process';
import { clonefd, spawn, CLK_TCK, O_CLOEXEC, O_NONBLOCK, type ClonefdInfo, type Engine, type ReadyInfo } from './index';
import { toSignalNumber } from './signals';

const USAGE = `usage: clonefd run [--json] [--timeout DUR] [--kill-signal SIG] [--engine helper|direct]
                   [--tree] [--cgroup] [--cgroup-parent DIR] [--kill-tree-on-timeout]
                   [--notify sd_notify|FD] -- CMD [ARGS...]
       clonefd demo

  run    runs CMD with inherited stdio, then prints its clonefd_info and rusage
         (human-readable to stderr, or with --json one JSON object to stderr)
         and exits with its status (128 + signal number when it was killed)
         --timeout DUR      kill it after DUR (e.g. 500ms, 2s, 1.5m, 1h; a bare number is seconds)
         --kill-signal SIG  the signal for --timeout (default SIGTERM)
         --engine E         'helper' (default) or 'direct'
         --cgroup           run CMD in a cgroup v2 group of its own (under this process's group)
         --cgroup-parent DIR  the same, under the cgroup directory DIR
         --tree             (implies --cgroup) wait until every process CMD started is gone,
                            then print the tree's CPU time and peaks as well
         --kill-tree-on-timeout  --timeout kills CMD's whole tree, not just CMD
         --notify sd_notify  CMD says it is ready through systemd's NOTIFY_SOCKET (READY=1)
         --notify FD        CMD says it is ready by writing a newline to fd FD (s6); either way
                            the time to ready is printed when it comes (CMD runs on)
  demo   a few seconds that show what clonefd does`;

class UsageError extends Error {}

/** "500ms", "2s", "1.5m", "1h", "3" (seconds) → milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!m) throw new UsageError(`invalid duration: ${JSON.stringify(text)}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  const ms = Math.round(Number(m[1]) * unit);
  if (ms < 1 || ms > 2 ** 31 - 1) throw new UsageError(`duration out of range: ${JSON.stringify(text)}`);
  return ms;
}

interface RunArgs {
  json: boolean;
  timeout: number;
  killSignal: number;
  engine: Engine;
  /** null: no cgroup; true: under our own group; else the parent directory. */
  cgroup: true | string | null;
  tree: boolean;
  killTree: boolean;
  notify: 'sd_notify' | { fd: number } | null;
  command: string[];
}

export function parseRunArgs(argv: string[]): RunArgs {
  const out: RunArgs = { json: false, timeout: 0, killSignal: 15, engine: 'helper', cgroup: null, tree: false, killTree: false, notify: null, command: [] };
  let i = 0;
  const value = (flag: string) => {
    if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`);
    return argv[++i];
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.command = argv.slice(i + 1);
      break;
    }
    if (a === '--json') out.json = true;
    else if (a === '--timeout') out.timeout = parseDuration(value(a));
    else if (a === '--kill-signal') {
      const sig = value(a);
      try {
        out.killSignal = toSignalNumber(/^\d+$/.test(sig) ? Number(sig) : sig.startsWith('SIG') ? sig : `SIG${sig}`);
      } catch {
        throw new UsageError(`unknown signal: ${sig}`);
      }
      // Signal 0 only tests for existence: --timeout would kill nothing.
      if (out.killSignal === 0) throw new UsageError('--kill-signal 0 would not stop the command');
    } else if (a === '--engine') {
      const e = value(a);
      if (e !== 'helper' && e !== 'direct') throw new UsageError(`unknown engine: ${e}`);
      out.engine = e;
    } else if (a === '--cgroup') out.cgroup ??= true;
    else if (a === '--cgroup-parent') out.cgroup = value(a);
    else if (a === '--tree') out.tree = true;
    else if (a === '--kill-tree-on-timeout') out.killTree = true;
    else if (a === '--notify') {
      const v = value(a);
      if (v === 'sd_notify') out.notify = v;
      else if (/^\d+$/.test(v) && Number(v) >= 3) out.notify = { fd: Number(v) };
      else throw new UsageError(`--notify takes sd_notify or an fd number of 3 or more, not ${JSON.stringify(v)}`);
    }
    else if (a.startsWith('-')) throw new UsageError(`unknown option: ${a}`);
    else {
      // No "--": the command starts at the first non-option word.
      out.command = argv.slice(i);
      break;
    }
  }
  if (out.command.length === 0) throw new UsageError('missing command');
  if (out.tree) out.cgroup ??= true;
  if (out.killTree && out.timeout === 0) throw new UsageError('--kill-tree-on-timeout needs --timeout');
  return out;
}

function describeRusage(info: ClonefdInfo): string {
  const r = info.rusage;
  if (!r) return 'rusage: unknown';
  return (
    `rusage: user ${(r.userCPUTime / 1e6).toFixed(3)}s, system ${(r.systemCPUTime / 1e6).toFixed(3)}s, ` +
    `max RSS ${r.maxRSS} KiB, faults ${r.minorPageFault} minor / ${r.majorPageFault} major, ` +
    `context switches ${r.voluntaryContextSwitches} voluntary / ${r.involuntaryContextSwitches} involuntary, ` +
    `blocks ${r.fsRead} in / ${r.fsWrite} out`
  );
}

async function run(argv: string[]): Promise<number> {
  const args = parseRunArgs(argv);
  const t0 = process.hrtime.bigint();
  let child;
  try {
    child = spawn(args.command[0], args.command.slice(1), {
      stdio: 'inherit',
      timeout: args.timeout,
      killSignal: args.killSignal,
      engine: args.engine,
      cgroup: args.cgroup ?? undefined,
      killMode: args.killTree ? 'tree' : 'process',
      readiness: args.notify ?? undefined,
    });
  } catch (err) {
    const e = err as Error & { code?: string };
    if (args.json) process.stderr.write(`${JSON.stringify({ error: { code: e.code, message: e.message } })}\n`);
    else process.stderr.write(`clonefd: ${e.message}\n`);
    // As a shell: 127 when the program was not found, 126 when it could not run.
    return e.code === 'ENOENT' ? 127 : 126;
  }
  // Like system(3): a terminal's Ctrl-C and Ctrl-\ reach the child (same
  // process group) and this process waits for its record instead of dying
  // first; SIGTERM and SIGHUP sent to this process are passed on.
  const ignore = () => {};
  process.on('SIGINT', ignore);
  process.on('SIGQUIT', ignore);
  for (const sig of ['SIGTERM', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig));
  const treeExited = args.tree ? child.treeExited : null;
  // Printed as it comes (the command runs on); in the JSON object at the end.
  let ready: ReadyInfo | null = null;
  let notReady: string | null = null;
  const readySettled = child.ready?.then(
    (r) => {
      ready = r;
      if (!args.json) process.stderr.write(`clonefd: ready after ${(r.readyMs / 1000).toFixed(3)}s${r.status ? ` (status: ${r.status})` : ''}${r.mainPid ? ` (main pid ${r.mainPid})` : ''}\n`);
    },
    (err: Error) => {
      notReady = err.message;
      if (!args.json) process.stderr.write(`clonefd: never ready: ${err.message}\n`);
    },
  );
  const info = await child.exited;
  await readySettled;
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const tree = treeExited ? await treeExited : null;
  const treeMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const status = info.exitCode !== null ? info.exitCode : 128 + info.status;
  if (args.json) {
    const treeJson = tree ? { tree: { ...tree, wallMs: Number(treeMs.toFixed(3)) } } : {};
    const readyJson = args.notify ? { ready, ...(notReady ? { notReady } : {}) } : {};
    process.stderr.write(`${JSON.stringify({ ...(info.toJSON() as object), wallMs: Number(wallMs.toFixed(3)), clkTck: CLK_TCK, clonefdInfo: info.toBuffer().toString('hex'), ...treeJson, ...readyJson })}\n`);
  } else {
    const what = info.signal ? `killed by ${info.signal}${info.coreDumped ? ' (core dumped)' : ''}` : `exited with ${info.exitCode}`;
    process.stderr.write(
      `clonefd: pid ${info.pid} ${what} after ${(wallMs / 1000).toFixed(3)}s\n` +
        `clonefd_info: code ${info.code}, status ${info.status}, utime ${info.utime ?? 'unknown'}, stime ${info.stime ?? 'unknown'} (ticks of 1/${CLK_TCK}s)\n` +
        `${describeRusage(info)}\n`,
    );
    if (tree) {
      const peaks = [
        tree.peakProcesses === null ? 'peak processes unknown (no pids controller)' : `peak processes ${tree.peakProcesses}`,
        tree.peakMemory === null ? 'peak memory unknown (no memory controller)' : `peak memory ${tree.peakMemory} bytes`,
      ];
      process.stderr.write(
        `tree: gone after ${(treeMs / 1000).toFixed(3)}s; CPU user ${(tree.userCPUTime / 1e6).toFixed(3)}s, system ${(tree.systemCPUTime / 1e6).toFixed(3)}s; ${peaks.join(', ')}\n`,
      );
    }
  }
  return status;
}

interface DemoJob {
  label: string;
  file: string;
  args: string[];
  timeout?: number;
  kill?: number;
}

const burn = "let x=0;const t=process.cpuUsage();for(;;){for(let i=0;i<1e6;i++)x+=i;const u=process.cpuUsage(t);if(u.user+u.system>=300000)break}";
const jobs: DemoJob[] = [
  { label: 'exits 0', file: 'true', args: [] },
  { label: 'fails (exit 3)', file: 'sh', args: ['-c', 'sleep 0.1; exit 3'] },
  { label: 'burns 0.3 s of CPU', file: process.execPath, args: ['-e', burn] },
  { label: 'killed (SIGKILL)', file: 'sleep', args: ['10'], kill: 250 },
  { label: 'times out (SIGTERM)', file: 'sleep', args: ['10'], timeout: 500 },
  { label: 'sleeps 0.7 s', file: 'sleep', args: ['0.7'] },
  { label: 'fails to exec', file: 'clonefd-demo-no-such-program', args: [] },
];

async function demo(): Promise<number> {
  let sigchld = 0;
  const onSigchld = () => sigchld++;
  process.on('SIGCHLD', onSigchld);
  const out = process.stdout;
  out.write(`clonefd demo: ${jobs.length} children at once, each line printed as its clonefd becomes readable.\n`);
  out.write(`utime/stime: the child's own CPU time in ticks of 1/${CLK_TCK} s; struct clonefd_info: its 24 bytes.\n\n`);
  out.write('  wall ms  pid      child                 code status   utime stime  struct clonefd_info\n');
  const t0 = Date.now();
  const line = (pid: string, label: string, rest: string) => out.write(`  ${String(Date.now() - t0).padStart(7)}  ${pid.padEnd(8)} ${label.padEnd(21)} ${rest}\n`);
  const waits = jobs.map(async (job) => {
    let h;
    try {
      h = clonefd(job.file, job.args, { flags: O_CLOEXEC | O_NONBLOCK, stdio: 'ignore', timeout: job.timeout });
    } catch (err) {
      line('-', job.label, `exec error: ${(err as Error & { code?: string }).code} (thrown by spawn, exactly)`);
      return;
    }
    if (job.kill) setTimeout(() => h.kill('SIGKILL'), job.kill);
    const info = await h.readAsync();
    h.close();
    if (!info) return;
    const status = info.signal ?? String(info.status);
    line(
      String(h.pid),
      job.label,
      `${String(info.code).padStart(4)} ${status.padStart(7)} ${String(info.utime).padStart(7)} ${String(info.stime).padStart(5)}  ${info.toBuffer().toString('hex')}`,
    );
  });
  await Promise.all(waits);
  // Signals arrive asynchronously: give any a moment before counting.
  await new Promise((r) => setTimeout(r, 100));
  const ours = sigchld;

  sigchld = 0;
  await Promise.all(
    jobs.map(
      (job) =>
        new Promise<void>((resolve) => {
          const c = cpSpawn(job.file, job.args, { stdio: 'ignore', timeout: job.timeout });
          if (job.kill) setTimeout(() => c.kill('SIGKILL'), job.kill);
          c.on('error', () => resolve());
          c.on('close', () => resolve());
        }),
    ),
  );
  await new Promise((r) => setTimeout(r, 100));
  const theirs = sigchld;
  process.off('SIGCHLD', onSigchld);
  out.write(`\nSIGCHLD received by this process: ${ours} with clonefd (helper engine), ${theirs} with node:child_process for the same children.\n`);
  out.write('No signal handler, no waitpid(-1): each child was watched through its fd.\n');
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === 'run') return await run(rest);
    if (command === 'demo' && rest.length === 0) return await demo();
    if (command === '--help' || command === '-h' || command === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    throw new UsageError(command === undefined ? 'missing command' : `unknown command: ${command}`);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`clonefd: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`clonefd: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
