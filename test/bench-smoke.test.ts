// The benchmark suite (bench/run.js) in its --smoke mode: tiny counts,
// every scenario, JSON on stdout. Checks the structure of the results only
// (every scenario there, a positive median for each contender, no error,
// no child left behind, exit code 0), never a timing: the numbers depend on
// the machine and its load.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = path.resolve(__dirname, '..', 'bench', 'run.js');
const resultsDir = mkdtempSync(path.join(tmpdir(), 'clonefd-bench-smoke-'));
afterAll(() => rmSync(resultsDir, { recursive: true, force: true }));

// Every scenario of the suite and the medians its smoke run must report,
// by the names bench/scenarios/*.js give them.
const engines = ['helper', 'direct', 'node'];
const expected: Record<string, string[]> = {
  floor: ['C floor'],
  sequential: ['clonefd spawn (helper)', 'clonefd spawn (direct)', 'drop-in spawn', 'drop-in execFile', 'node spawn', 'node execFile', 'C floor'],
  bigparent: [
    ...['buffers 0', 'buffers 16', 'objects 0', 'objects 16'].flatMap((size) => engines.map((n) => `${n} @ ${size} MiB`)),
    'C floor @ buffers run', 'C floor @ objects run',
  ],
  livechildren: [0, 20].flatMap((idle) => engines.map((n) => `${n} @ ${idle} idle`)),
  concurrency: [...engines, 'C floor'],
  burst: engines,
  pipes: [
    ...['clonefd spawn (helper)', 'clonefd spawn (direct)', 'drop-in spawn', 'node spawn'].map((n) => `${n} MB/s`),
    ...['drop-in execFile', 'node execFile', 'clonefd spawn (helper), stdout collected', 'clonefd spawn (direct), stdout collected'].map((n) => `${n} µs/call`),
  ],
  memory: engines,
  sync: ['drop-in spawnSync', 'node spawnSync', 'drop-in execFileSync', 'node execFileSync'],
  trees: ['helper', 'direct'].flatMap((e) => [e, `${e} cgroup (exited)`, `${e} cgroup (treeExited)`]),
  fork: ['clonefd/child_process.fork to first reply', 'child_process.fork to first reply', 'clonefd/child_process.fork IPC round trip', 'child_process.fork IPC round trip'],
};

// Without a C compiler the floor is reported unavailable, by design.
const haveCc = !spawnSync('cc', ['--version'], { stdio: 'ignore' }).error;

interface Scenario {
  error?: string;
  unavailable?: string;
  medians?: Record<string, unknown>;
  targets?: { what: string; ok: boolean; ceiling?: number; reachable?: boolean }[];
}
interface Result {
  mode: string;
  machine: { cpu: string; cores: number; node: string; kernel: string };
  scenarios: Record<string, Scenario>;
  failed: string[];
  leftoverChildren: unknown[];
}

describe('npm run bench -- --smoke', () => {
  let r: SpawnSyncReturns<string>;
  let result: Result | undefined;
  // The smoke run takes ~10 s alone; the bound leaves room for a loaded machine.
  beforeAll(() => {
    r = spawnSync(process.execPath, [run, '--smoke', '--json', '--results', resultsDir], { encoding: 'utf8', timeout: 120_000 });
    try {
      result = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as Result;
    } catch { /* asserted below, with the output */ }
  }, 130_000);

  it('exits 0 with one JSON object, and writes it to the results directory', () => {
    expect(r.error, String(r.error)).toBeUndefined();
    expect(r.status, `${r.stderr}\n${r.stdout}`).toBe(0);
    expect(result).toMatchObject({ mode: 'smoke', failed: [], leftoverChildren: [] });
    expect(result!.machine).toMatchObject({ node: process.version });
    expect(typeof result!.machine.cpu).toBe('string');
    expect(readdirSync(resultsDir).filter((f) => f.endsWith('.json'))).toHaveLength(1);
  });

  it.each(Object.keys(expected))('scenario %s: present, no error, a positive median for each contender', (name) => {
    const s = result?.scenarios[name];
    expect(s, `scenario ${name} missing from ${Object.keys(result?.scenarios ?? {}).join(', ')}`).toBeDefined();
    expect(s!.error).toBeUndefined();
    if (name === 'floor' && !haveCc) {
      expect(s!.unavailable).toMatch(/floor unavailable/);
      return;
    }
    if (name === 'trees' && s!.unavailable) {
      // Only where this process has no writable cgroup v2 group, said so.
      expect(s!.unavailable).toMatch(/cgroup: true cannot be used here/);
      return;
    }
    // Without cc the scenarios that measure the floor beside their contenders leave it out.
    const want = haveCc ? expected[name] : expected[name].filter((n) => !n.startsWith('C floor'));
    expect(Object.keys(s!.medians ?? {}).sort()).toEqual([...want].sort());
    for (const [contender, v] of Object.entries(s!.medians!)) {
      expect(typeof v, `${name}: ${contender}`).toBe('number');
      expect(v as number, `${name}: ${contender}`).toBeGreaterThan(0);
    }
    // Targets are computed (met or not), each with a verdict.
    for (const t of s!.targets ?? []) expect(typeof t.ok).toBe('boolean');
    // A target with the floor's figure beside it says whether the floor itself meets it.
    for (const t of s!.targets ?? []) if (t.ceiling !== undefined) expect(typeof t.reachable).toBe('boolean');
  });

  it('no scenario beyond the expected ones (a new one gets its line above)', () => {
    expect(Object.keys(result?.scenarios ?? {}).sort()).toEqual(Object.keys(expected).sort());
  });
});
