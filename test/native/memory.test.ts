// Native memory safety, in the test run: the addon and the helper built
// with ASan+UBSan (scripts/asan.sh: every report attributed to native/,
// clonefd.node or clonefd-helper fails it; a planted overflow proves the
// reports are caught) and under valgrind (scripts/valgrind.sh: Node with
// the addon, and the helper driven over its protocol). The scripts are
// also `npm run test:asan` / `npm run test:valgrind`; their headers say
// what each covers and what valgrind 3.19 cannot run.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');

function run(script: string) {
  const r = spawnSync('bash', [path.join(root, 'scripts', script)], { cwd: root, encoding: 'utf8', timeout: 600_000 });
  return { status: r.status, signal: r.signal, tail: `${r.stdout}\n${r.stderr}`.slice(-4000) };
}

describe('native memory safety', () => {
  it('ASan+UBSan: a workload of both engines, the drop-in, workers and helper deaths: no report in our code', () => {
    const r = run('asan.sh');
    expect({ status: r.status, signal: r.signal }, r.tail).toEqual({ status: 0, signal: null });
  }, 600_000);

  it('valgrind: Node with the addon, and the helper over its protocol: no error in our code', () => {
    const r = run('valgrind.sh');
    expect({ status: r.status, signal: r.signal }, r.tail).toEqual({ status: 0, signal: null });
  }, 600_000);
});
