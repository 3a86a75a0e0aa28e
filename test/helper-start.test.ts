// The helper runs with the credentials Node had when it started it. When
// Node's change (process.setuid() and friends), the next spawn must get a
// new helper: children never run with stale or higher privileges.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

// vm.memfd_noexec is per pid namespace: a private one lets the test forbid
// executable memfds without touching the machine.
function canUnshare(): boolean {
  if (process.getuid?.() !== 0) return false;
  const r = spawnSync('unshare', ['-p', '-f', '--mount-proc', 'sh', '-c', 'sysctl -w vm.memfd_noexec=2 >/dev/null'], { encoding: 'utf8' });
  return r.status === 0;
}

describe.runIf(canUnshare())('where memfds may not be executed', () => {
  const root = path.resolve(__dirname, '..');

  it('the helper runs from the file next to the addon', () => {
    const script = `
      const { spawn } = require(${lib});
      const { binding } = require(${JSON.stringify(path.join(root, 'lib', 'binding.js'))});
      spawn('sh', ['-c', 'exit 4'], { stdio: 'ignore' }).exited.then((i) => {
        console.log(i.status, require('fs').readlinkSync('/proc/' + binding.helperPid() + '/exe'));
      });`;
    const r = spawnSync('unshare', ['-p', '-f', '--mount-proc', 'sh', '-c', 'sysctl -w vm.memfd_noexec=2 >/dev/null && exec "$0" -e "$1"', process.execPath, script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.stderr).toBe('');
    const [status, exe] = r.stdout.trim().split(' ');
    expect(status).toBe('4');
    expect(exe).toBe(path.join(root, 'build', 'Release', 'clonefd-helper'));
  });

  it('with no runnable helper at all, spawns fail with a coded error that suggests the direct engine', () => {
    // A copy of the package without the helper file.
    const dir = mkdtempSync(path.join(tmpdir(), 'clonefd-nohelper-'));
    try {
      cpSync(path.join(root, 'lib'), path.join(dir, 'lib'), { recursive: true });
      cpSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
      cpSync(path.join(root, 'node_modules', 'node-gyp-build'), path.join(dir, 'node_modules', 'node-gyp-build'), { recursive: true });
      mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
      cpSync(path.join(root, 'build', 'Release', 'clonefd.node'), path.join(dir, 'build', 'Release', 'clonefd.node'));
      const script = `
        const { spawn } = require(${JSON.stringify(dir)});
        try { spawn('true', [], { stdio: 'ignore' }); console.log('spawned'); }
        catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }
        spawn('true', [], { stdio: 'ignore', engine: 'direct' }).exited.then((i) => console.log('direct', i.status));`;
      const r = spawnSync('unshare', ['-p', '-f', '--mount-proc', 'sh', '-c', 'sysctl -w vm.memfd_noexec=2 >/dev/null && exec "$0" -e "$1"', process.execPath, script], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(r.stderr).toBe('');
      const [first, second] = r.stdout.trim().split('\n');
      const err = JSON.parse(first);
      // Its own code: ENOENT would read as "the program was not found".
      expect(err.code).toBe('ERR_CLONEFD_HELPER_UNAVAILABLE');
      expect(err.message).toContain("engine: 'direct'");
      expect(second).toBe('direct 0');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
