// Process trees: a cgroup v2 group per child (cgroup: true), killTree,
// treeExited, freeze/thaw, killMode 'tree'. Shared: runs for every engine
// and clone path (the legacy clone() path joins the group from the child
// instead of CLONE_INTO_CGROUP). Real processes and real groups; skipped
// only where this machine has no writable cgroup v2 hierarchy.
import { spawn as cpSpawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type Subprocess } from '../../src/index';
import { ownCgroupDir } from '../../src/cgroup';
import { collect, procStat, procStatus, useLeakCheck, waitFor } from '../helpers';

function cgroupSupport(): string | null {
  try {
    const dir = ownCgroupDir();
    const p = spawn('/bin/true', [], { cgroup: true, stdio: 'ignore' });
    p.kill('SIGKILL');
    return existsSync(dir) ? null : `no cgroup directory ${dir}`;
  } catch (err) {
    return (err as Error).message;
  }
}
const missing = cgroupSupport();
if (missing) console.warn(`skipping process-tree tests: ${missing}`);

/** Our groups in the parent directory (named clonefd-<our pid>-...). */
function ourGroups(): string[] {
  const dir = ownCgroupDir();
  return readdirSync(dir).filter((n) => n.startsWith(`clonefd-${process.pid}-`));
}

function alive(pid: number): boolean {
  try {
    const state = procStatus(pid, 'State');
    return state !== undefined && !state.startsWith('Z');
  } catch {
    return false; // gone
  }
}

/** Pids printed by the child, one per line, once `count` are there. */
async function pidsFrom(p: Subprocess, count: number): Promise<number[]> {
  const pids: number[] = [];
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n').filter(Boolean);
      if (lines.length >= count) {
        pids.push(...lines.slice(0, count).map(Number));
        resolve();
      }
    });
    p.stdout!.on('end', () => reject(new Error(`child printed only ${JSON.stringify(buf)}`)));
  });
  return pids;
}

// A setsid daemon and a double-forked grandchild, each printing its pid;
// the child itself stays until killed.
const ESCAPEES = 'setsid sh -c \'echo $$; exec sleep 60\' & (sh -c \'echo $$; exec sleep 60\' &) ; exec sleep 60';

const procCpu = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').slice(readFileSync(`/proc/${pid}/stat`, 'utf8').lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, ticks
};

describe.skipIf(missing !== null)('process trees with a cgroup per child', () => {
  useLeakCheck();
  afterAll(async () => {
    expect(await waitFor(() => ourGroups().length === 0, 10_000), `groups left: ${ourGroups().join(', ')}`).toBe(true);
  });

  it('starts the child in a fresh group of its own, under this process\'s group', async () => {
    const p = spawn('sh', ['-c', 'cat /proc/self/cgroup'], { cgroup: true });
    const [out] = await Promise.all([collect(p.stdout), p.exited]);
    expect(p.cgroup).toMatch(new RegExp(`/clonefd-${process.pid}-\\d+-\\d+$`));
    expect(path.dirname(p.cgroup!)).toBe(ownCgroupDir());
    const line = out.split('\n').find((l) => l.startsWith('0::'))!;
    expect(line.endsWith(`/${path.basename(p.cgroup!)}`)).toBe(true);
    await p.treeExited;
    expect(existsSync(p.cgroup!)).toBe(false);
  });

  it('killTree() leaves nothing of a setsid daemon and a double-forked grandchild; kill() leaves them (control)', async () => {
    const control = spawn('sh', ['-c', ESCAPEES], { cgroup: true });
    const [cd, cg] = await pidsFrom(control, 2);
    control.kill('SIGKILL');
    await control.exited;
    expect(alive(cd) && alive(cg), 'kill() reaches the child only').toBe(true);
    await control.killTree();
    await control.treeExited;
    expect(alive(cd) || alive(cg)).toBe(false);

    const p = spawn('sh', ['-c', ESCAPEES], { cgroup: true });
    const [daemon, grandchild] = await pidsFrom(p, 2);
    // One of them really has a session of its own.
    expect([daemon, grandchild].some((pid) => procStatus(pid, 'NSsid') === String(pid))).toBe(true);
    await p.killTree();
    const [info, tree] = await Promise.all([p.exited, p.treeExited]);
    expect(info.signal).toBe('SIGKILL');
    expect(alive(daemon) || alive(grandchild) || alive(p.pid)).toBe(false);
    expect(existsSync(tree.cgroup)).toBe(false);
  });

  it('killTree(SIGTERM) signals every member, one by one', async () => {
    const p = spawn('sh', ['-c', ESCAPEES], { cgroup: true });
    const [daemon, grandchild] = await pidsFrom(p, 2);
    await p.killTree('SIGTERM');
    const [info] = await Promise.all([p.exited, p.treeExited]);
    expect(info.signal).toBe('SIGTERM');
    expect(alive(daemon) || alive(grandchild)).toBe(false);
  });

  it('tree CPU time counts every process that ran in it; the record\'s utime only the child\'s own', async () => {
    const burn = 'import time\nwhile time.process_time() < 0.3: pass\n';
    const p = spawn('sh', ['-c', 'python3 -c "$0" & python3 -c "$0" & wait', burn], { cgroup: true, stdio: 'ignore' });
    const [info, tree] = await Promise.all([p.exited, p.treeExited]);
    expect(info.exitCode).toBe(0);
    expect(info.utime).toBeLessThan(5);
    // Each burn ran until its own clock said 300 ms; the tree holds both.
    expect(tree.userCPUTime + tree.systemCPUTime).toBeGreaterThanOrEqual(600_000);
    expect(tree.peakProcesses === null || tree.peakProcesses >= 3).toBe(true);
  });

  it('treeExited waits for a grandchild that outlives the child by a second, then the group is gone', async () => {
    const p = spawn('sh', ['-c', 'sleep 1 & echo $!'], { cgroup: true });
    const [grandchild] = await pidsFrom(p, 1);
    await p.exited;
    expect(alive(grandchild)).toBe(true);
    expect(existsSync(p.cgroup!)).toBe(true);
    await p.treeExited;
    expect(alive(grandchild)).toBe(false);
    expect(existsSync(p.cgroup!)).toBe(false);
  });

  it('freeze() stops every member (no CPU time while frozen, cgroup.events frozen 1); thaw() resumes', async () => {
    const p = spawn('sh', ['-c', 'while :; do :; done & exec sh -c "while :; do :; done"'], { cgroup: true, stdio: 'ignore' });
    await waitFor(() => readFileSync(path.join(p.cgroup!, 'cgroup.procs'), 'utf8').trim().split('\n').length === 2);
    const members = readFileSync(path.join(p.cgroup!, 'cgroup.procs'), 'utf8').trim().split('\n').map(Number);
    await p.freeze();
    expect(readFileSync(path.join(p.cgroup!, 'cgroup.events'), 'utf8')).toMatch(/frozen 1/);
    const before = members.map(procCpu);
    await new Promise((r) => setTimeout(r, 300));
    expect(members.map(procCpu)).toEqual(before);
    for (const pid of members) expect(procStatus(pid, 'State')).not.toMatch(/^R/);
    await p.thaw();
    expect(readFileSync(path.join(p.cgroup!, 'cgroup.events'), 'utf8')).toMatch(/frozen 0/);
    expect(await waitFor(() => members.every((pid, i) => procCpu(pid) > before[i]), 10_000)).toBe(true);
    // A frozen tree can still be killed whole.
    await p.freeze();
    await p.killTree();
    await p.treeExited;
  });

  it('killMode: tree makes the timeout kill the whole tree', async () => {
    const p = spawn('sh', ['-c', ESCAPEES], { cgroup: true, timeout: 300, killMode: 'tree', killSignal: 'SIGKILL' });
    const [daemon, grandchild] = await pidsFrom(p, 2);
    const [info] = await Promise.all([p.exited, p.treeExited]);
    expect(info.signal).toBe('SIGKILL');
    expect(alive(daemon) || alive(grandchild)).toBe(false);
  });

  it('killMode: tree makes an AbortSignal kill the whole tree', async () => {
    const ac = new AbortController();
    const p = spawn('sh', ['-c', ESCAPEES], { cgroup: true, signal: ac.signal, killMode: 'tree' });
    const [daemon] = await pidsFrom(p, 2);
    ac.abort();
    const [info] = await Promise.all([p.exited, p.treeExited]);
    expect(info.signal).toBe('SIGTERM');
    expect(alive(daemon)).toBe(false);
  });

  it('many spawns with cgroup: true leave no group behind', async () => {
    const n = Number(process.env.CLONEFD_TREE_SPAWNS ?? 1000);
    for (let i = 0; i < n; i += 50) {
      const batch = Array.from({ length: Math.min(50, n - i) }, () => spawn('/bin/true', [], { cgroup: true, stdio: 'ignore' }));
      await Promise.all(batch.map((p) => p.treeExited));
    }
    expect(ourGroups()).toEqual([]);
  });

  it('a tree that makes groups of its own inside its group: treeExited still settles, every group is removed', async () => {
    const script = 'g="$PARENT/$(basename "$(sed -n "s/^0:://p" /proc/self/cgroup)")"; mkdir "$g/sub" "$g/sub/deeper" && sh -c \'echo $$ > "$0/sub/deeper/cgroup.procs"; sleep 0.3\' "$g"';
    const p = spawn('sh', ['-c', script], { cgroup: true, env: { ...process.env, PARENT: ownCgroupDir() }, stdio: ['ignore', 'ignore', 'pipe'] });
    const [err, info] = await Promise.all([collect(p.stderr), p.exited]);
    expect(err).toBe('');
    expect(info.exitCode).toBe(0);
    await p.treeExited;
    expect(existsSync(p.cgroup!)).toBe(false);
  });

  it('a failed spawn leaves no group', async () => {
    expect(() => spawn('/nonexistent/program', [], { cgroup: true })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(ourGroups()).toEqual([]);
  });
});

// What a red team found, kept as tests: each failed before its fix.
const COUNT_SIGINT = '$|=1; my $n=0; $SIG{INT}=sub{$n++}; $SIG{USR2}=sub{print "$n\\n"}; print "ready\\n"; while(1){ select(undef,undef,undef,0.01) }';

/** How many SIGINTs a perl child counted after one killTree('SIGINT') (perl counts each delivery). */
async function sigintsPerKillTree(options: object): Promise<number> {
  const c = spawn('perl', ['-e', COUNT_SIGINT], { ...options, stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  c.stdout!.on('data', (d: Buffer) => (buf += d));
  expect(await waitFor(() => buf.includes('ready'), 10_000)).toBe(true);
  await c.killTree('SIGINT');
  await new Promise((r) => setTimeout(r, 100));
  c.kill('SIGUSR2');
  expect(await waitFor(() => /ready\n\d+\n/.test(buf), 10_000)).toBe(true);
  c.kill('SIGKILL');
  await c.exited;
  if ((options as { cgroup?: boolean }).cgroup) await c.treeExited;
  return Number(buf.split('\n')[1]);
}

describe.skipIf(missing !== null)('process trees: what a red team found', () => {
  useLeakCheck();
  afterAll(() => expect(ourGroups()).toEqual([]));

  it('killTree(SIGINT) reaches each member once (a second SIGINT means "force quit" to many programs)', async () => {
    for (const options of [{ cgroup: true }, { killMode: 'tree' as const }]) {
      const counts: number[] = [];
      for (let i = 0; i < 8; i++) counts.push(await sigintsPerKillTree(options));
      expect(counts, JSON.stringify(options)).toEqual(counts.map(() => 1));
    }
  });

  it('killTree(SIGTERM) on a tree that is forking leaves nothing (frozen while signalled; forks in flight are waited out)', async () => {
    // A binary fork tree (at most 511 processes), each then sleeping. Perl
    // blocks every signal around fork(): a member signalled there takes
    // SIGTERM only after the fork, and its new child never had it (CI saw
    // such survivors before killTree waited for each signal to be taken).
    const forker = 'for (1..8) { my $p = fork(); last unless defined $p; next if $p == 0; my $q = fork(); next if defined $q && $q == 0; last } sleep 20;';
    for (let i = 0; i < 3; i++) {
      const c = spawn('perl', ['-e', forker], { cgroup: true, stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 15 + i * 15));
      await c.killTree('SIGTERM');
      const r = await Promise.race([c.treeExited.then(() => 'gone'), new Promise((res) => setTimeout(() => res('alive'), 5000))]);
      if (r === 'alive') {
        const left = readFileSync(path.join(c.cgroup!, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).length;
        await c.killTree();
        await c.treeExited;
        expect.fail(`${left} members outlived killTree('SIGTERM')`);
      }
    }
  });

  it('killTree(SIGTERM): a member that forks with SIGTERM blocked and pending has its child signalled too', async () => {
    // Blocks SIGTERM, says so, waits until it is pending (killTree sent it),
    // forks a child (which inherits the mask, not the pending signal),
    // then unblocks and dies; the child unblocks and would sleep on.
    const script = [
      'use POSIX; $|=1;',
      'my $term = POSIX::SigSet->new(SIGTERM); sigprocmask(SIG_BLOCK, $term);',
      'print "blocked\\n";',
      'my $p = POSIX::SigSet->new; do { select(undef,undef,undef,0.005); sigpending($p) } until $p->ismember(SIGTERM);',
      'my $kid = fork(); die "fork: $!" unless defined $kid;',
      'if ($kid == 0) { print "$$\\n"; sigprocmask(SIG_UNBLOCK, $term); sleep 20; exit 0 }',
      'sigprocmask(SIG_UNBLOCK, $term); sleep 20;',
    ].join(' ');
    const c = spawn('perl', ['-e', script], { cgroup: true, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d));
    expect(await waitFor(() => out.includes('blocked'), 10_000)).toBe(true);
    await c.killTree('SIGTERM');
    const r = await Promise.race([c.treeExited.then(() => 'gone'), new Promise((res) => setTimeout(() => res('alive'), 5000))]);
    if (r === 'alive') {
      await c.killTree();
      await c.treeExited;
    }
    // The premise: the child was forked (it printed its pid).
    expect(await waitFor(() => out.split('\n').length >= 3, 5_000), `output: ${JSON.stringify(out)}`).toBe(true);
    const kid = Number(out.split('\n')[1]);
    expect(kid).toBeGreaterThan(0);
    expect((await c.exited).signal).toBe('SIGTERM');
    expect(r, `the child ${kid}, forked with the signal pending in its parent, outlived killTree('SIGTERM')`).toBe('gone');
  });

  it('Node SIGKILLed while the helper has not yet read its cgroup spawn: the helper removes the group Node made', async () => {
    const libDir = path.resolve(__dirname, '..', '..', 'lib');
    // Starts the helper, says its pid, and on a line from stdin asks for a cgroup spawn.
    const script = `
      const { spawn } = require(${JSON.stringify(path.join(libDir, 'index.js'))});
      const { binding } = require(${JSON.stringify(path.join(libDir, 'binding.js'))});
      spawn('/bin/true', [], { stdio: 'ignore' }).exited.then(() => {
        process.stdout.write(binding.helperPid() + '\\n');
        process.stdin.once('data', () => spawn('/bin/true', [], { cgroup: true, stdio: 'ignore' }));
      });`;
    const node = cpSpawn(process.execPath, ['-e', script], { env: { ...process.env, CLONEFD_ENGINE: 'helper' }, stdio: ['pipe', 'pipe', 'inherit'] });
    const gone = new Promise((r) => node.once('exit', r));
    let out = '';
    node.stdout!.on('data', (d: Buffer) => (out += d));
    const groupsOf = () => readdirSync(ownCgroupDir()).filter((n) => n.startsWith(`clonefd-${node.pid}-`));
    let helper = 0;
    try {
      expect(await waitFor(() => out.includes('\n'), 10_000)).toBe(true);
      helper = Number(out.trim());
      expect(helper).toBeGreaterThan(0);
      process.kill(helper, 'SIGSTOP');
      node.stdin!.write('go\n');
      // The group is made before the request is sent; the spawn then sleeps
      // for the stopped helper's answer (main thread in S, twice in a row:
      // past the send, which does not sleep).
      const sleeping = () => procStat(`${node.pid}/task/${node.pid}`)?.state === 'S';
      expect(await waitFor(() => groupsOf().length === 1 && sleeping(), 10_000)).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      expect(await waitFor(() => sleeping(), 10_000)).toBe(true);
      node.kill('SIGKILL');
      await gone;
    } finally {
      if (helper > 0) process.kill(helper, 'SIGCONT');
      node.kill('SIGKILL');
    }
    const removed = await waitFor(() => groupsOf().length === 0, 5_000);
    for (const g of groupsOf()) rmdirSync(path.join(ownCgroupDir(), g));
    expect(removed, 'the group of the spawn nobody answered').toBe(true);
    expect(await waitFor(() => !alive(helper), 5_000), 'the helper leaves').toBe(true);
  });

  it('a process that exits (or a worker that is terminated) in the middle of killTree(SIGTERM) does not leave its tree frozen', async () => {
    const lib = path.resolve(__dirname, '..', '..', 'lib', 'index.js');
    // The tree ignores SIGTERM: all there is to see is the freezer state.
    const body = `
      const { spawn } = require(${JSON.stringify(lib)});
      const c = spawn('sh', ['-c', 'trap "" TERM; sleep 30 & sleep 30 & wait'], { cgroup: true, stdio: 'ignore' });
      setTimeout(() => { report(c.cgroup); c.killTree('SIGTERM'); end(); }, 300);`;
    const scripts = {
      exit: `const report = (g) => require('fs').writeSync(1, g + '\\n'); const end = () => process.exit(0); ${body}`,
      terminate: `
        const { Worker } = require('node:worker_threads');
        const w = new Worker(${JSON.stringify(`const { parentPort } = require('node:worker_threads'); const report = (g) => parentPort.postMessage(g); const end = () => {}; ${body}`)}, { eval: true });
        w.once('message', (g) => { require('fs').writeSync(1, g + '\\n'); w.terminate(); });`,
    };
    for (const [how, script] of Object.entries(scripts)) {
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status, `${how}: ${r.stderr}`).toBe(0);
      const group = r.stdout.trim();
      expect(group, how).toMatch(/clonefd-/);
      try {
        expect(await waitFor(() => readFileSync(path.join(group, 'cgroup.events'), 'utf8').includes('frozen 0'), 5_000), `${how}: the tree stayed frozen`).toBe(true);
        // Not frozen for a moment only: the members run.
        await new Promise((res) => setTimeout(res, 200));
        expect(readFileSync(path.join(group, 'cgroup.events'), 'utf8'), how).toMatch(/frozen 0/);
      } finally {
        writeFileSync(path.join(group, 'cgroup.freeze'), '0');
        writeFileSync(path.join(group, 'cgroup.kill'), '1');
      }
      // Its owner gone, the group is removed by the helper. With the direct
      // engine the process has exited too (after its worker): nobody holds
      // a group with members left (README: it stays).
      const held = process.env.CLONEFD_ENGINE !== 'direct';
      const removed = await waitFor(() => !existsSync(group), held ? 5_000 : 500);
      if (!removed) {
        expect(await waitFor(() => readFileSync(path.join(group, 'cgroup.events'), 'utf8').includes('populated 0'), 5_000)).toBe(true);
        rmdirSync(group);
      }
      expect(removed || !held, `${how}: ${group} left`).toBe(true);
    }
  });

  it('two freeze() calls at once both settle (the second one\'s read of cgroup.events does not strand the first)', async () => {
    const c = spawn('sh', ['-c', 'sleep 30 & sleep 30 & wait'], { cgroup: true, stdio: 'ignore' });
    expect(await waitFor(() => c.cgroup !== null && readFileSync(path.join(c.cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).length === 3, 10_000)).toBe(true);
    const events = path.join(c.cgroup!, 'cgroup.events');
    /** Blocks the loop until cgroup.events says `state`: the first call's notification is then still unread when the second call reads. */
    const spinUntil = (state: string) => {
      const until = Date.now() + 5000;
      while (!readFileSync(events, 'utf8').includes(state) && Date.now() < until);
    };
    for (let i = 0; i < 5; i++) {
      const first = c.freeze();
      spinUntil('frozen 1');
      const both = Promise.all([first, c.freeze()]).then(() => 'settled');
      expect(await Promise.race([both, new Promise((r) => setTimeout(() => r('pending'), 2000))])).toBe('settled');
      const firstThaw = c.thaw();
      spinUntil('frozen 0');
      const thawed = Promise.all([firstThaw, c.thaw()]).then(() => 'settled');
      expect(await Promise.race([thawed, new Promise((r) => setTimeout(() => r('pending'), 2000))])).toBe('settled');
    }
    await c.killTree();
    await c.treeExited;
  });

  it('a freeze() made just before or while killTree(SIGTERM) runs is kept (killTree does not thaw over it)', async () => {
    // SIGTERM ignored throughout: nothing dies, the freezer state is all there is to see.
    const c = spawn('sh', ['-c', 'trap "" TERM; sleep 30 & sleep 30 & wait'], { cgroup: true, stdio: 'ignore' });
    expect(await waitFor(() => c.cgroup !== null && readFileSync(path.join(c.cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).length === 3, 10_000)).toBe(true);
    // Both orders: freeze() first (still on its way when killTree looks), and killTree first.
    for (const freezeFirst of [true, false, true, false]) {
      const frozen = freezeFirst ? c.freeze() : null;
      const killing = c.killTree('SIGTERM');
      const later = frozen ?? c.freeze();
      await killing;
      await expect(later).resolves.toBeUndefined();
      // Whatever killTree did after the freeze() began, the tree is still frozen.
      await new Promise((r) => setTimeout(r, 50));
      expect(readFileSync(path.join(c.cgroup!, 'cgroup.events'), 'utf8'), `freeze() ${freezeFirst ? 'before' : 'after'} killTree`).toMatch(/frozen 1/);
      await c.thaw();
      expect(readFileSync(path.join(c.cgroup!, 'cgroup.events'), 'utf8')).toMatch(/frozen 0/);
    }
    await c.killTree();
    await c.treeExited;
  });

  it('a freeze() superseded by a thaw() settles (ERR_CLONEFD_FREEZE_SUPERSEDED unless it had completed); a freeze() of a tree that ends rejects', async () => {
    const c = spawn('sh', ['-c', 'for i in $(seq 30); do (while :; do :; done) & done; wait'], { cgroup: true, stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 200));
    const freeze = c.freeze().then(() => 'done', (e: { code?: string }) => e.code);
    await c.thaw();
    const outcome = await Promise.race([freeze, new Promise((r) => setTimeout(() => r('pending'), 3000))]);
    expect(['done', 'ERR_CLONEFD_FREEZE_SUPERSEDED']).toContain(outcome);
    expect(readFileSync(path.join(c.cgroup!, 'cgroup.events'), 'utf8')).toMatch(/frozen 0/);
    await c.killTree();
    await c.treeExited;
  });

  it("killMode 'tree': timeout and AbortSignal still kill the tree after the child itself has exited", async () => {
    const ac = new AbortController();
    const viaTimeout = spawn('sh', ['-c', 'sleep 20 & exit 0'], { cgroup: true, killMode: 'tree', timeout: 300, stdio: 'ignore' });
    const viaSignal = spawn('sh', ['-c', 'sleep 20 & exit 0'], { cgroup: true, killMode: 'tree', signal: ac.signal, stdio: 'ignore' });
    await Promise.all([viaTimeout.exited, viaSignal.exited]);
    ac.abort();
    const t0 = Date.now();
    await Promise.all([viaTimeout.treeExited, viaSignal.treeExited]);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('freeze() of a tree whose child has exited keeps the event loop alive until it settles', () => {
    const lib = path.resolve(__dirname, '..', '..', 'lib', 'index.js');
    const code = `
      const { spawn } = require(${JSON.stringify(lib)});
      (async () => {
        const c = spawn('sh', ['-c', 'sleep 5 & exit 0'], { cgroup: true, stdio: 'ignore' });
        await c.exited;
        await c.freeze();
        console.log('frozen');
        await c.killTree();
        await c.treeExited;
        console.log('end');
      })();`;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 20_000, env: { ...process.env } });
    expect(r.stdout).toBe('frozen\nend\n');
    expect(r.status).toBe(0);
  });

});

const LIB = path.resolve(__dirname, '..', '..', 'lib', 'index.js');
// A worker that keeps 8 trees going (each ends within 50 ms), until terminated.
const CHURN = `
  const { spawn } = require(${JSON.stringify(LIB)});
  const { parentPort } = require('worker_threads');
  function one() {
    const c = spawn('sh', ['-c', 'sleep 0.05 & sleep 0.03'], { cgroup: true, stdio: 'ignore' });
    c.treeExited.then(one, () => {});
  }
  for (let i = 0; i < 8; i++) one();
  parentPort.postMessage('started');`;

async function terminateChurn(afterMs: number): Promise<void> {
  const w = new Worker(CHURN, { eval: true });
  await new Promise((r) => w.once('message', r));
  await new Promise((r) => setTimeout(r, afterMs));
  await w.terminate();
}

describe.skipIf(missing !== null)('process trees in workers', () => {
  // The warm-up terminates one such worker: the process-wide reaper thread
  // (and its epoll fd, kept for the process's life) exists from then on.
  useLeakCheck(async () => {
    await terminateChurn(100);
    await waitFor(() => ourGroups().length === 0, 10_000);
  });
  afterAll(() => expect(ourGroups()).toEqual([]));

  it('worker.terminate() mid-flight leaves no group; a worker\'s exit closes no fd of another thread', async () => {
    for (let k = 0; k < 6; k++) await terminateChurn(50 + k * 30);
    // Every tree (sleep 0.05) ends; the reaper thread removes its group.
    expect(await waitFor(() => ourGroups().length === 0, 10_000), `left: ${ourGroups().join(' ')}`).toBe(true);

    const twice = `
      const { spawn } = require(${JSON.stringify(LIB)});
      const { parentPort } = require('worker_threads');
      (async () => {
        for (let i = 0; i < 2; i++) await spawn('/bin/true', [], { cgroup: true, stdio: 'ignore' }).treeExited;
        parentPort.postMessage('done');
        parentPort.once('message', () => process.exit(0));
      })();`;
    const w = new Worker(twice, { eval: true });
    await new Promise((r) => w.once('message', r));
    // The lowest free numbers: those the worker's cgroup.events fds had.
    const mine = Array.from({ length: 8 }, () => openSync('/etc/hostname', 'r'));
    w.postMessage('exit');
    await new Promise((r) => w.once('exit', r));
    const closed = mine.filter((fd) => {
      try {
        fstatSync(fd);
        return false;
      } catch {
        return true;
      }
    });
    for (const fd of mine) if (!closed.includes(fd)) closeSync(fd);
    expect(closed, 'fds of this thread closed by the worker\'s exit').toEqual([]);
  });
});

describe('process-tree options: errors', () => {
  it('rejects a cgroup that is not a cgroup v2 directory with a coded error', () => {
    expect(() => spawn('/bin/true', [], { cgroup: '/tmp' })).toThrow(expect.objectContaining({ code: 'ERR_CLONEFD_CGROUP_UNAVAILABLE' }));
    expect(() => spawn('/bin/true', [], { cgroup: 'relative/path' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => spawn('/bin/true', [], { cgroup: 1 as unknown as boolean })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it('rejects limits without a cgroup, unknown limits and bad values', () => {
    expect(() => spawn('/bin/true', [], { limits: { pidsMax: 10 } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(/needs options.cgroup/) }));
    expect(() => spawn('/bin/true', [], { cgroup: true, limits: { pidMax: 1 } as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => spawn('/bin/true', [], { cgroup: true, limits: { memoryMax: -1 } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => spawn('/bin/true', [], { cgroup: true, limits: { cpuMax: 'half' } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    // Out of the kernel's bounds (period 1 ms to 1 s, quota at least 1 ms): said here, not as EINVAL from a write.
    for (const cpuMax of ['max 0', '10 100000', '50000 999', '50000 2000000']) {
      expect(() => spawn('/bin/true', [], { cgroup: true, limits: { cpuMax } }), cpuMax).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    }
    expect(() => spawn('/bin/true', [], { cgroup: true, limits: [] as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => spawn('/bin/true', [], { killMode: 'group' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  });

  it.skipIf(missing !== null)('a limit whose controller is not delegated is a coded error naming it, and leaves no group', () => {
    const enabled = readFileSync(path.join(ownCgroupDir(), 'cgroup.subtree_control'), 'utf8');
    for (const [key, controller] of [['pidsMax', 'pids'], ['memoryMax', 'memory'], ['cpuMax', 'cpu']] as const) {
      if (enabled.split(' ').includes(controller)) continue; // delegated here: nothing to refuse
      const limits = key === 'cpuMax' ? { cpuMax: '50000 100000' } : { [key]: 1 << 20 };
      expect(() => spawn('/bin/true', [], { cgroup: true, limits })).toThrow(expect.objectContaining({
        code: 'ERR_CLONEFD_CGROUP_CONTROLLER',
        message: expect.stringContaining(`${controller} controller`),
      }));
    }
    expect(ourGroups()).toEqual([]);
  });

  it('treeExited, freeze() and thaw() need a cgroup', async () => {
    const p = spawn('/bin/true', [], { stdio: 'ignore' });
    await expect(p.treeExited).rejects.toMatchObject({ code: 'ERR_CLONEFD_CGROUP_REQUIRED' });
    await expect(p.freeze()).rejects.toMatchObject({ code: 'ERR_CLONEFD_CGROUP_REQUIRED' });
    await expect(p.thaw()).rejects.toMatchObject({ code: 'ERR_CLONEFD_CGROUP_REQUIRED' });
    await p.exited;
  });
});

describe('process trees without a cgroup (best-effort)', () => {
  useLeakCheck();

  it('killMode: tree gives the child a process group, and killTree() reaches it', async () => {
    const p = spawn('sh', ['-c', 'sh -c \'echo $$; exec sleep 60\' & wait'], { killMode: 'tree' });
    const [grandchild] = await pidsFrom(p, 1);
    expect(procStatus(grandchild, 'NSpgid')).toBe(String(p.pid));
    await p.killTree();
    const info = await p.exited;
    expect(info.signal).toBe('SIGKILL');
    expect(await waitFor(() => !alive(grandchild))).toBe(true);
  });

  it('killTree() finds descendants that left the process group (setsid) while they are still below the child', async () => {
    const p = spawn('sh', ['-c', 'setsid sh -c \'echo $$; exec sleep 60\' & wait']);
    const [daemon] = await pidsFrom(p, 1);
    await p.killTree();
    await p.exited;
    expect(await waitFor(() => !alive(daemon))).toBe(true);
  });
});
