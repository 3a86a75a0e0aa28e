// The helper runs with the credentials Node had when it started it. When
// Node's change (process.setuid() and friends), the next spawn must get a
// new helper: children never run with stale or higher privileges.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const lib = JSON.stringify(path.resolve(__dirname, '..'));

describe.runIf(process.getuid?.() === 0)('credentials', () => {
  it('a credential change in Node restarts the helper; children get the new ids', () => {
    // Runs in its own process: it drops root for good.
    const script = `
      const { spawn } = require(${lib});
      const { binding } = require(${JSON.stringify(path.resolve(__dirname, '..', 'lib', 'binding.js'))});
      const ids = (p) => new Promise((resolve) => {
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.on('exit', () => setImmediate(() => resolve(out.trim())));
      });
      (async () => {
        const before = await ids(spawn('sh', ['-c', 'id -u; id -g']));
        const helperBefore = binding.helperPid();
        process.setgroups([]);
        process.setgid(65534);
        process.setuid(65534);
        const after = await ids(spawn('sh', ['-c', 'id -u; id -g']));
        const helperAfter = binding.helperPid();
        const status = require('fs').readFileSync('/proc/' + helperAfter + '/status', 'utf8');
        const helperUid = status.split('\\n').find((l) => l.startsWith('Uid:')).split(/\\s+/)[1];
        console.log(JSON.stringify({ before, after, changed: helperBefore !== helperAfter, helperUid }));
      })();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out.before).toBe('0\n0');
    expect(out.after).toBe('65534\n65534');
    expect(out.changed).toBe(true);
    expect(out.helperUid).toBe('65534');
  });
});
