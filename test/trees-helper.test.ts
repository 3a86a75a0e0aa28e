// Process trees and the helper: what happens to a child's cgroup when the
// Node process that made it dies (SIGKILL: no JavaScript runs). The helper
// outlives it: a killWithParent tree (killMode 'tree') is killed whole,
// and every group is removed once its tree is empty.
import { spawn as cpSpawn, spawnSync as cpSpawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ownCgroupDir } from '../src/cgroup';
import { spawn } from '../src/index';
import { waitFor } from './helpers';

const lib = path.resolve(__dirname, '..', 'lib', 'index.js');

function cgroupSupport(): string | null {
  try {
    spawn('/bin/true', [], { cgroup: true, stdio: 'ignore' });
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}
const missing = cgroupSupport();

function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * A Node process that spawns `script` with the given options, prints
 * "<cgroup> <helper pid> <pids the tree printed...>" and waits to be killed.
 */
async function parentWithTree(options: object, script: string, count: number): Promise<{ parent: ReturnType<typeof cpSpawn>; cgroup: string; helper: number; pids: number[] }> {
  const code = `
    const { spawn } = require(${JSON.stringify(lib)});
    const { binding } = require(${JSON.stringify(path.resolve(__dirname, '..', 'lib', 'binding.js'))});
    const p = spawn('sh', ['-c', ${JSON.stringify(script)}], ${JSON.stringify(options)});
    let buf = '';
    p.stdout.on('data', (d) => {
      buf += d;
      const pids = buf.split('\\n').filter(Boolean);
      if (pids.length === ${count}) console.log([p.cgroup, binding.helperPid(), ...pids].join(' '));
    });
    setInterval(() => {}, 1000);`;
  const parent = cpSpawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    parent.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    parent.on('exit', (c) => reject(new Error(`parent exited (${c}) before printing`)));
  });
  const [cgroup, helper, ...pids] = line.split(' ');
  return { parent, cgroup, helper: Number(helper), pids: pids.map(Number) };
}

const DAEMON = 'setsid sh -c \'echo $$; exec sleep 60\' & sleep 60';

describe.skipIf(missing !== null)('a tree whose Node process dies', () => {
  it('killWithParent with killMode tree: the helper kills the whole tree (setsid daemon included) and removes the group', async () => {
    const { parent, cgroup, helper, pids } = await parentWithTree({ cgroup: true, killWithParent: true, killMode: 'tree' }, DAEMON, 1);
    expect(alive(pids[0])).toBe(true);
    expect(path.dirname(cgroup)).toBe(ownCgroupDir());
    parent.kill('SIGKILL');
    expect(await waitFor(() => !alive(pids[0]), 10_000), 'the daemon outlived its tree').toBe(true);
    expect(await waitFor(() => !existsSync(cgroup), 10_000), `group ${cgroup} left behind`).toBe(true);
    expect(await waitFor(() => !alive(helper), 10_000), 'the helper stays once its trees are gone').toBe(true);
  });

  it('without killWithParent the tree lives on; the helper removes its group once it is empty', async () => {
    const { parent, cgroup, helper, pids } = await parentWithTree({ cgroup: true }, 'sh -c \'echo $$; exec sleep 1.5\' & sleep 60', 1);
    parent.kill('SIGKILL');
    // The child (sleep 60) and the grandchild run on in their group.
    await new Promise((r) => setTimeout(r, 300));
    expect(alive(pids[0])).toBe(true);
    expect(existsSync(cgroup)).toBe(true);
    // Positive control for the removal: the tree ends by itself.
    for (const pid of readFileSync(path.join(cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number)) {
      if (pid !== pids[0]) process.kill(pid, 'SIGKILL');
    }
    expect(await waitFor(() => !alive(pids[0]), 10_000)).toBe(true);
    expect(await waitFor(() => !existsSync(cgroup), 10_000), `group ${cgroup} left behind`).toBe(true);
    expect(await waitFor(() => !alive(helper), 10_000)).toBe(true);
  });

  it('a tree with groups of its own inside: the helper removes them all once the tree is empty', async () => {
    const script = 'g="$PARENT/$(basename "$(sed -n "s/^0:://p" /proc/self/cgroup)")"; mkdir "$g/sub" "$g/sub/deeper" && sh -c \'echo $$ > "$0/sub/deeper/cgroup.procs"; echo $$; exec sleep 1\' "$g" & sleep 60';
    const { parent, cgroup, pids } = await parentWithTree({ cgroup: true, killWithParent: true, env: { ...process.env, PARENT: ownCgroupDir() } }, script, 1);
    expect(existsSync(path.join(cgroup, 'sub', 'deeper'))).toBe(true);
    parent.kill('SIGKILL');
    expect(await waitFor(() => !alive(pids[0]), 10_000)).toBe(true);
    // The child's own `sleep 60` (killWithParent killed only the shell).
    for (const pid of readFileSync(path.join(cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number)) process.kill(pid, 'SIGKILL');
    expect(await waitFor(() => !existsSync(cgroup), 10_000), `group ${cgroup} left behind`).toBe(true);
  });

  it('killWithParent without killMode tree: only the child is killed (the daemon stays, as documented)', async () => {
    const { parent, cgroup, pids } = await parentWithTree({ cgroup: true, killWithParent: true }, DAEMON, 1);
    parent.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    expect(alive(pids[0])).toBe(true);
    // Clean up by pid (the daemon and the child's own `sleep`): the group
    // empties, the helper removes it.
    for (const pid of readFileSync(path.join(cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number)) process.kill(pid, 'SIGKILL');
    expect(await waitFor(() => !existsSync(cgroup), 10_000), `group ${cgroup} left behind`).toBe(true);
  });

  it('Node SIGKILLed after its trees emptied but before it removed their groups: the helper removes them', async () => {
    const code = `
      const { spawn } = require(${JSON.stringify(lib)});
      for (let i = 0; i < 20; i++) spawn('/bin/true', [], { cgroup: true, stdio: 'ignore', engine: 'helper' });
      const t = Date.now(); while (Date.now() - t < 500) {} // they exit meanwhile; this Node never looks
      process.kill(process.pid, 'SIGKILL');`;
    const r = cpSpawnSync(process.execPath, ['-e', code], { timeout: 20_000 });
    expect(r.signal).toBe('SIGKILL');
    const dir = ownCgroupDir();
    const mine = () => readdirSync(dir).filter((n) => n.startsWith(`clonefd-${r.pid}-`));
    expect(await waitFor(() => mine().length === 0, 10_000), `left: ${mine().join(' ')}`).toBe(true);
  });

  it('a 40-deep chain of subgroups inside a tree is removed by the helper once the tree is gone', async () => {
    const script = 'g="$PARENT/$(basename "$(sed -n "s/^0:://p" /proc/self/cgroup)")"; p=$g; for i in $(seq 40); do p=$p/x; done; mkdir -p "$p" && sh -c \'echo $$; exec sleep 1\' & sleep 60';
    const { parent, cgroup, pids } = await parentWithTree({ cgroup: true, killWithParent: true, env: { ...process.env, PARENT: ownCgroupDir() } }, script, 1);
    expect(existsSync(path.join(cgroup, ...Array(40).fill('x')))).toBe(true);
    parent.kill('SIGKILL');
    for (const pid of readFileSync(path.join(cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number)) if (pid !== pids[0]) process.kill(pid, 'SIGKILL');
    expect(await waitFor(() => !alive(pids[0]), 10_000)).toBe(true);
    expect(await waitFor(() => !existsSync(cgroup), 10_000), `group ${cgroup} left behind`).toBe(true);
  });
});
