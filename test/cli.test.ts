// The clonefd command: run (status passthrough, the record on stderr,
// --json, --timeout/--kill-signal), demo (zero SIGCHLD), usage errors.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDuration, parseRunArgs } from '../src/cli';

const cli = path.resolve(__dirname, '..', 'lib', 'cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 30_000 });

describe('clonefd run', () => {
  it('passes the exit status through and prints the record to stderr', () => {
    const r = run('run', '--', 'sh', '-c', 'echo out; exit 3');
    expect(r.status).toBe(3);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toMatch(/exited with 3/);
    expect(r.stderr).toMatch(/clonefd_info: code 1, status 3, utime \d+, stime \d+/);
    expect(r.stderr).toMatch(/rusage: user \d+\.\d{3}s/);
  });

  it('--json: one JSON object with the seed fields, rusage and the 24 bytes', () => {
    const r = run('run', '--json', '--', 'sh', '-c', 'exit 7');
    expect(r.status).toBe(7);
    const obj = JSON.parse(r.stderr.trim());
    expect(obj).toMatchObject({ code: 1, status: 7, exitCode: 7, signal: null });
    expect(typeof obj.utime).toBe('number');
    expect(obj.rusage.maxRSS).toBeGreaterThan(0);
    expect(obj.clonefdInfo).toHaveLength(48);
    expect(obj.clonefdInfo.slice(0, 16)).toBe('0100000007000000');
  });

  it('--timeout with --kill-signal: killed, exit status 128 + signal', () => {
    const r = run('run', '--json', '--timeout', '200ms', '--kill-signal', 'KILL', '--', 'sleep', '10');
    expect(r.status).toBe(128 + 9);
    expect(JSON.parse(r.stderr.trim())).toMatchObject({ code: 2, status: 9, signal: 'SIGKILL' });
  });

  it('--timeout defaults to SIGTERM; works with the direct engine too', () => {
    const r = run('run', '--timeout', '0.2', '--engine', 'direct', '--', 'sleep', '10');
    expect(r.status).toBe(128 + 15);
    expect(r.stderr).toMatch(/killed by SIGTERM/);
  });

  it('a program that cannot be found: 127 and the error', () => {
    const r = run('run', '--', 'clonefd-no-such-program');
    expect(r.status).toBe(127);
    expect(r.stderr).toMatch(/ENOENT/);
  });

  it.each([
    [['run', '--bogus', '--', 'true'], /unknown option: --bogus/],
    [['run'], /missing command/],
    [['run', '--'], /missing command/],
    [['run', '--timeout'], /needs a value/],
    [['run', '--timeout', 'soon', '--', 'true'], /invalid duration/],
    [['run', '--kill-signal', 'SIGNOPE', '--', 'true'], /unknown signal/],
    [['frobnicate'], /unknown command/],
    [[], /missing command/],
  ])('usage error %j: usage, exit 2', (args, message) => {
    const r = run(...(args as string[]));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/usage: clonefd run/);
  });
});

describe('parsing', () => {
  it('durations', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('2s')).toBe(2000);
    expect(parseDuration('1.5m')).toBe(90_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('3')).toBe(3000);
    for (const bad of ['', 'x', '-1s', '1d', '0']) expect(() => parseDuration(bad)).toThrow();
  });

  it('run arguments', () => {
    expect(parseRunArgs(['--json', '--', 'ls', '-l'])).toMatchObject({ json: true, command: ['ls', '-l'] });
    expect(parseRunArgs(['ls', '--json'])).toMatchObject({ json: false, command: ['ls', '--json'] });
    expect(parseRunArgs(['--kill-signal', '9', 'x']).killSignal).toBe(9);
    expect(parseRunArgs(['--kill-signal', 'SIGINT', 'x']).killSignal).toBe(2);
  });
});

describe('clonefd demo', () => {
  it('shows every child, and zero SIGCHLD next to child_process', () => {
    const r = run('demo');
    expect(r.status).toBe(0);
    for (const label of ['exits 0', 'fails (exit 3)', 'burns 0.3 s of CPU', 'killed (SIGKILL)', 'times out (SIGTERM)', 'sleeps 0.7 s', 'fails to exec']) {
      expect(r.stdout).toContain(label);
    }
    const m = /SIGCHLD received by this process: (\d+) with clonefd \(helper engine\), (\d+) with node:child_process/.exec(r.stdout);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBe(0);
    expect(Number(m![2])).toBeGreaterThanOrEqual(1);
  });
});

describe('clonefd run: --kill-signal 0', () => {
  it('is a usage error (it would not stop the command)', () => {
    const r = run('run', '--timeout', '100ms', '--kill-signal', '0', '--', 'sleep', '5');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--kill-signal 0/);
  });
});

describe('clonefd run: process trees', () => {
  // Skipped where this machine has no writable cgroup v2 (the error says what is missing).
  const probe = run('run', '--cgroup', '--', 'true');
  const noCgroup = probe.status !== 0 ? probe.stderr : null;

  it.skipIf(noCgroup !== null)('--tree waits for a grandchild that outlives CMD and prints the tree\'s CPU', () => {
    const burn = 'import time\nwhile time.process_time() < 0.2: pass\n';
    const r = run('run', '--json', '--tree', '--', 'sh', '-c', '(sleep 0.5; python3 -c "$0") & exit 4', burn);
    expect(r.status).toBe(4);
    const obj = JSON.parse(r.stderr.trim());
    expect(obj.exitCode).toBe(4);
    // CMD itself exited at once; the tree lived on until the burn was done.
    expect(obj.tree.wallMs).toBeGreaterThan(obj.wallMs + 400);
    expect(obj.tree.userCPUTime + obj.tree.systemCPUTime).toBeGreaterThanOrEqual(200_000);
    expect(obj.tree.cgroup).toMatch(/clonefd-\d+-\d+-\d+$/);
  });

  it.skipIf(noCgroup !== null)('--kill-tree-on-timeout: the timeout leaves nothing of a setsid daemon', () => {
    const tag = `clonefd-cli-tree-${process.pid}`;
    const r = run('run', '--tree', '--timeout', '300ms', '--kill-tree-on-timeout', '--kill-signal', 'KILL', '--',
      'sh', '-c', `setsid sh -c 'exec -a ${tag} sleep 30' & sleep 30`);
    expect(r.status).toBe(128 + 9);
    expect(r.stderr).toMatch(/tree: gone after/);
    const left = spawnSync('pgrep', ['-f', tag], { encoding: 'utf8' });
    expect(left.stdout.trim()).toBe('');
  });

  it('usage errors: --kill-tree-on-timeout without --timeout', () => {
    expect(() => parseRunArgs(['--kill-tree-on-timeout', '--', 'true'])).toThrow(/needs --timeout/);
    expect(parseRunArgs(['--tree', '--', 'true'])).toMatchObject({ cgroup: true, tree: true });
    expect(parseRunArgs(['--cgroup-parent', '/x', '--', 'true'])).toMatchObject({ cgroup: '/x' });
  });

  it('a cgroup that cannot be had: a clear error, status 126', () => {
    const r = run('run', '--cgroup-parent', '/tmp', '--', 'true');
    expect(r.status).toBe(126);
    expect(r.stderr).toMatch(/not a directory of a cgroup2 filesystem/);
  });
});

describe('clonefd run --notify: readiness', () => {
  it('sd_notify: systemd-notify --ready; the time to ready is printed while CMD runs on', () => {
    const r = run('run', '--notify', 'sd_notify', '--', 'sh', '-c', 'sleep 0.2; systemd-notify --ready --status=serving; sleep 0.3; echo after >&2');
    expect(r.status, r.stderr).toBe(0);
    const m = /clonefd: ready after (\d+\.\d+)s \(status: serving\)\n/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(0.19);
    // Printed when it came, before CMD's own later output.
    expect(r.stderr.indexOf('\nafter\n'), r.stderr).toBeGreaterThan(r.stderr.indexOf('ready after'));
  });

  it('an fd (s6): a newline on fd 5; --json has the ready object', () => {
    const r = run('run', '--json', '--notify', '5', '--', 'sh', '-c', 'sleep 0.1; echo >&5; exit 3');
    expect(r.status).toBe(3);
    const obj = JSON.parse(r.stderr.trim());
    expect(obj.exitCode).toBe(3);
    expect(obj.ready.readyMs).toBeGreaterThanOrEqual(90);
  });

  it('a CMD that exits before it is ready: said so, its own status kept', () => {
    const r = run('run', '--notify', 'sd_notify', '--', 'sh', '-c', 'exit 2');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/clonefd: never ready: .*exited/);
    const j = run('run', '--json', '--notify', '4', '--', 'true');
    const obj = JSON.parse(j.stderr.trim());
    expect(obj.ready).toBeNull();
    expect(obj.notReady).toMatch(/exited/);
  });

  it('usage errors: --notify needs sd_notify or an fd of 3 or more', () => {
    for (const bad of ['2', 'x', '-1', 'sd']) expect(() => parseRunArgs(['--notify', bad, '--', 'true']), bad).toThrow(/--notify takes/);
    expect(parseRunArgs(['--notify', '7', '--', 'true'])).toMatchObject({ notify: { fd: 7 } });
    expect(parseRunArgs(['--notify', 'sd_notify', '--', 'true'])).toMatchObject({ notify: 'sd_notify' });
  });
});
