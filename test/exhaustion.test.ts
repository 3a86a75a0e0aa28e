// Exhaustion (issue 8 §2): a full fd table at every stage of a spawn
// (RLIMIT_NOFILE in Node, and in the helper), RLIMIT_NPROC as nobody, and
// E2BIG. Each failure must be a typed error with a `code`, and leave the fd
// and process tables exactly as they were; then a spawn works.
//
// Every case runs in a fresh Node (the limits are the child's own), whose
// last stdout line is a JSON report.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const LIB = JSON.stringify(path.resolve(__dirname, '..', 'lib', 'index.js'));
const ENGINES = ['helper', 'direct'] as const;

function run(argv: string[], script: string, extra: string[] = []): any {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('CLONEFD_')) delete env[k];
  const full = [...argv, process.execPath, '--expose-gc', '-e', script, ...extra];
  const r = spawnSync(full[0], full.slice(1), {
    encoding: 'utf8',
    timeout: 40_000,
    env,
  });
  expect(r.stderr, r.stdout).toBe('');
  expect(r.status).toBe(0);
  const lines = r.stdout.trim().split('\n');
  const out = JSON.parse(lines[lines.length - 1]);
  expect(out.fatal).toBeUndefined();
  return out;
}

// /proc scans of the script's own process and its helper's children.
const tools = `
  const { spawn } = require(${LIB});
  const fs = require('fs');
  const cp = require('child_process');
  const fdmap = () => { const m = {}; for (const f of fs.readdirSync('/proc/self/fd')) { try { m[f] = fs.readlinkSync('/proc/self/fd/' + f); } catch {} } return m; };
  const stat = (pid) => { const s = fs.readFileSync('/proc/' + pid + '/stat', 'utf8'); const rest = s.slice(s.lastIndexOf(')') + 2).split(' '); return { comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), state: rest[0], ppid: Number(rest[1]) }; };
  const childrenOf = (ppid) => { const out = []; for (const n of fs.readdirSync('/proc')) { if (!/^\\d+$/.test(n)) continue; try { const s = stat(n); if (s.ppid === ppid) out.push({ pid: Number(n), ...s }); } catch {} } return out; };
  const helperPid = () => (childrenOf(process.pid).find((c) => c.comm === 'clonefd-helper') || { pid: 0 }).pid;
  const descendants = () => { const h = helperPid(); return [...childrenOf(process.pid).filter((c) => c.pid !== h), ...(h ? childrenOf(h) : [])].map((c) => c.pid + c.state); };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const typed = (e) => ({ code: e.code, syscall: e.syscall, message: e.message, hasCode: typeof e.code === 'string' });
  /** Polls until the fd table is 'before' again and no child is left (gc between tries). */
  const settle = async (before, childrenOnly = false) => {
    const end = Date.now() + 10000;
    for (;;) {
      const now = JSON.stringify(fdmap());
      if (((childrenOnly || now === before) && descendants().length === 0) || Date.now() > end) return { fdsSame: now === before, left: descendants(), ...(now === before ? {} : { before, now }) };
      globalThis.gc && gc();
      await new Promise((r) => setImmediate(r));
      await sleep(10);
    }
  };
  /** One spawn with pipes, killed and its streams destroyed: what libuv opens once for that (its spare /dev/null) is in the baseline. */
  const warmup = async (engine) => {
    await spawn('true', [], { engine, stdio: 'ignore' }).exited;
    const k = spawn('sleep', ['30'], { engine, stdio: 'pipe' });
    k.kill('SIGKILL');
    await k.exited;
    for (const s of [k.stdin, k.stdout, k.stderr]) s.destroy();
    await sleep(20);
  };
  const main = (f) => f().then((out) => console.log(JSON.stringify(out)), (e) => console.log(JSON.stringify({ fatal: String(e && e.stack) })));
`;

// One spawn with `headroom` free fds below the limit, for h in [from, to].
const emfileScript = `
  ${tools}
  const [engine, warm, stdio, from, to] = process.argv.slice(1);
  main(async () => {
    const results = [];
    if (warm === 'warm') await warmup(engine);
    for (let h = Number(from); h <= Number(to); h++) {
      const before = JSON.stringify(fdmap());
      const fillers = [];
      for (;;) {
        try { fillers.push(fs.openSync('/dev/null', 'r')); }
        catch (e) { if (e.code !== 'EMFILE') throw e; break; }
      }
      for (let i = 0; i < h && fillers.length; i++) fs.closeSync(fillers.pop());
      let r;
      try {
        const p = spawn('sh', ['-c', 'echo hi; exit 3'], { engine, stdio });
        for (const f of fillers.splice(0)) fs.closeSync(f);
        let text = '';
        if (p.stdout) { p.stdout.setEncoding('utf8'); p.stdout.on('data', (d) => (text += d)); await new Promise((res) => p.stdout.on('close', res)); }
        r = { h, spawned: true, status: (await p.exited).status, text };
      } catch (e) {
        r = { h, ...typed(e) };
      }
      for (const f of fillers) fs.closeSync(f);
      if (warm === 'warm') {
        Object.assign(r, await settle(before));
        r.then = (await spawn('sh', ['-c', 'exit 4'], { engine, stdio: 'ignore' }).exited).status;
      } else {
        // Cold: the helper may have been started (or half-joined) by the
        // failed spawn. Then a working spawn must bring the table to what a
        // first good spawn leaves (the process-wide helper state), and a
        // second one must add nothing.
        const settled = await settle(before, true);
        r.left = settled.left;
        r.then = (await spawn('sh', ['-c', 'exit 4'], { engine, stdio: 'ignore' }).exited).status;
        await sleep(20);
        const afterFirst = JSON.stringify(fdmap());
        await spawn('true', [], { engine, stdio: 'ignore' }).exited;
        const s2 = await settle(afterFirst);
        r.fdsSame = s2.fdsSame;
        const cur = fdmap(); const b = JSON.parse(before);
        r.extra = Object.entries(cur).filter(([k, v]) => b[k] !== v).map(([, v]) => v.replace(/^socket:\\[\\d+\\]$/, 'socket').replace(/^\\/proc\\/\\d+\\//, '/proc/self/')).sort();
        r.missing = Object.keys(b).filter((k) => !(k in cur));
      }
      results.push(r);
    }
    return results;
  });
`;

const LIMIT = 64; // just above what a fresh Node holds (about 20-25 fds)
const ulimitN = (n: number) => ['sh', '-c', `ulimit -n ${n} && exec "$@"`, 'sh'];

function checkEmfile(results: any[], stdio: string): Set<string> {
  const stages = new Set<string>();
  for (const r of results) {
    const label = `headroom ${r.h}: ${JSON.stringify(r)}`;
    if (r.spawned) {
      expect(r.status, label).toBe(3);
      if (stdio === 'pipe') expect(r.text, label).toBe('hi\n');
    } else {
      expect(r.hasCode, label).toBe(true);
      expect(['EMFILE', 'ENFILE'], label).toContain(r.code);
      stages.add(`${r.syscall}: ${r.message}`);
    }
    expect(r.fdsSame, label).toBe(true);
    expect(r.left, label).toEqual([]);
    expect(r.then, label).toBe(4);
  }
  // The sweep crossed from failing to working.
  expect(results[0].spawned, JSON.stringify(results[0])).toBeUndefined();
  expect(results.some((r) => r.spawned)).toBe(true);
  return stages;
}

describe('EMFILE at every stage of a spawn (ulimit -n just above the fd count)', () => {
  for (const engine of ENGINES) {
    for (const stdio of ['pipe', 'ignore']) {
      it(`${engine} engine, stdio '${stdio}': headroom 0..12 → typed EMFILE, fd table as before, no child, then a spawn works`, () => {
        const results = run(ulimitN(LIMIT), emfileScript, [engine, 'warm', stdio, '0', '12']);
        const stages = checkEmfile(results, stdio);
        // pipe stdio: several stages fail before the first success (socketpair, pipe2, clone...).
        if (stdio === 'pipe') expect(stages.size, [...stages].join('\n')).toBeGreaterThanOrEqual(2);
      });
    }
  }

  // Cold: a fresh Node per headroom, so the helper's start (and the first
  // helper spawn's one-time setup) meets the full table.
  let cold: any[] | undefined;
  const coldResults = () => {
    if (!cold) {
      cold = [];
      for (let h = 0; h <= 14; h++) cold.push(...run(ulimitN(LIMIT), emfileScript, ['helper', 'cold', 'ignore', String(h), String(h)]));
    }
    return cold;
  };

  it('helper engine, cold: the helper itself starts with the table full: typed, nothing left but the helper state', () => {
    const results = coldResults();
    for (const r of results) {
      const label = JSON.stringify(r);
      if (r.spawned) expect(r.status, label).toBe(3);
      else expect(r.hasCode, label).toBe(true);
      expect(r.left, label).toEqual([]);
      expect(r.then, label).toBe(4);
      expect(r.fdsSame, label).toBe(true);
      // What stays is exactly the process-wide helper state: the control
      // socket, this environment's request and event sockets, the helper's
      // pidfd and the reaper's epoll. (The addon's cached /proc/self/status,
      // for the umask, is opened when it loads: before the baseline.)
      expect(r.extra, label).toEqual(['anon_inode:[eventpoll]', 'anon_inode:[pidfd]', 'socket', 'socket', 'socket']);
      expect(r.missing, label).toEqual([]);
    }
    expect(results[0].spawned).toBeUndefined();
    expect(results.some((r) => r.spawned)).toBe(true);
  });

  // Once ENOSYS at one headroom: the umask source (/proc/self/status)
  // could not be opened; it is opened at load now.
  it('helper engine, cold: every failure is EMFILE/ENFILE', () => {
    for (const r of coldResults()) if (!r.spawned) expect(['EMFILE', 'ENFILE'], JSON.stringify(r)).toContain(r.code);
  });

  it("the helper's own fd table full (prlimit on the helper): typed EMFILE, the helper's fds back to their count, no child", () => {
    const script = `
      ${tools}
      const [headroom] = process.argv.slice(1);
      main(async () => {
        await warmup('helper');
        const h = helperPid();
        const base = fs.readdirSync('/proc/' + h + '/fd').length;
        const before = JSON.stringify(fdmap());
        cp.execFileSync('prlimit', ['--pid', String(h), '--nofile=' + (base + Number(headroom)) + ':4096']);
        const kids = []; const errors = [];
        for (let i = 0; i < 20; i++) {
          try { kids.push(spawn('sleep', ['30'], { stdio: i % 2 ? 'pipe' : 'ignore' })); } catch (e) { errors.push(typed(e)); }
        }
        for (const k of kids) k.kill('SIGKILL');
        const statuses = await Promise.all(kids.map((k) => k.exited.then((i) => i.signal, (e) => 'rejected ' + e.code)));
        for (const k of kids) for (const s of [k.stdin, k.stdout, k.stderr]) if (s) s.destroy();
        cp.execFileSync('prlimit', ['--pid', String(h), '--nofile=4096:4096']);
        const settled = await settle(before);
        const helperFds = fs.readdirSync('/proc/' + h + '/fd').length;
        const then = (await spawn('sh', ['-c', 'exit 4'], { stdio: 'ignore' }).exited).status;
        return { base, helperFds, spawned: kids.length, errors, statuses: [...new Set(statuses)], sameHelper: helperPid() === h, then, ...settled };
      });
    `;
    for (const headroom of [0, 1, 2, 3, 5, 8]) {
      const out = run([], script, [String(headroom)]);
      const label = `headroom ${headroom}: ${JSON.stringify(out)}`;
      expect(out.errors.length, label).toBeGreaterThan(0);
      for (const e of out.errors) {
        expect(e.hasCode, label).toBe(true);
        expect(['EMFILE', 'ENFILE'], label).toContain(e.code);
      }
      if (out.spawned) expect(out.statuses, label).toEqual(['SIGKILL']);
      expect(out.helperFds, label).toBe(out.base);
      expect(out.fdsSame, label).toBe(true);
      expect(out.left, label).toEqual([]);
      expect(out.sameHelper, label).toBe(true);
      expect(out.then, label).toBe(4);
    }
  });
});

function nobodyCanRead(): boolean {
  if (process.getuid?.() !== 0) return false;
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'test', '-r', path.resolve(__dirname, '..', 'lib', 'index.js')]);
  return r.status === 0;
}

describe.runIf(nobodyCanRead())('RLIMIT_NPROC as nobody (ulimit -u)', () => {
  // As nobody (nobody else's processes count), with room for Node's own
  // threads and a few children. cold: node:child_process fills the table
  // first, so the clonefd spawn (and with it the helper's start) fails.
  const script = `
    ${tools}
    const [engine, mode] = process.argv.slice(1);
    main(async () => {
      const fillers = [];
      let fill;
      if (mode === 'cold') {
        for (;;) {
          const c = cp.spawn('sleep', ['30'], { stdio: 'ignore' });
          const e = await new Promise((r) => { c.on('spawn', () => r(null)); c.on('error', r); });
          if (e) { fill = e.code; break; }
          fillers.push(c);
        }
      } else {
        await warmup(engine);
      }
      const before = JSON.stringify(fdmap());
      const kids = []; let error;
      for (let i = 0; i < 200 && !error; i++) {
        try { kids.push(spawn('sleep', ['30'], { engine, stdio: i % 2 ? 'pipe' : 'ignore' })); } catch (e) { error = typed(e); }
      }
      for (const k of kids) k.kill('SIGKILL');
      const statuses = await Promise.all(kids.map((k) => k.exited.then((i) => i.signal, (e) => 'rejected ' + e.code)));
      for (const k of kids) for (const s of [k.stdin, k.stdout, k.stderr]) if (s) s.destroy();
      for (const f of fillers) f.kill('SIGKILL');
      await Promise.all(fillers.map((f) => f.exitCode !== null || f.signalCode !== null ? null : new Promise((r) => f.on('exit', r))));
      const settled = await settle(before);
      const then = (await spawn('sh', ['-c', 'exit 4'], { engine, stdio: 'ignore' }).exited).status;
      return { uid: process.getuid(), fill, spawned: kids.length, error, statuses: [...new Set(statuses)], then, ...settled };
    });
  `;
  const asNobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'prlimit', '--nproc=40:40'];
  for (const engine of ENGINES) {
    for (const mode of ['warm', 'cold']) {
      it(`${engine} engine, ${mode}: typed EAGAIN, nothing left, then a spawn works`, () => {
        const out = run(asNobody, script, [engine, mode]);
        const label = JSON.stringify(out);
        expect(out.uid).toBe(65534);
        if (mode === 'cold') {
          expect(out.fill, label).toBe('EAGAIN');
          // A process of nobody's may end meanwhile (e.g. a filler's exec'd
          // sleep is still a Node fork when counted): a slot or two may free up.
          expect(out.spawned, label).toBeLessThanOrEqual(3);
          if (out.spawned) expect(out.statuses, label).toEqual(['SIGKILL']);
        } else {
          expect(out.spawned, label).toBeGreaterThan(5);
          expect(out.statuses, label).toEqual(['SIGKILL']);
        }
        expect(out.error, label).toMatchObject({ hasCode: true, code: 'EAGAIN' });
        expect(out.fdsSame, label).toBe(true);
        expect(out.left, label).toEqual([]);
        expect(out.then, label).toBe(4);
      });
    }
  }
});

describe('E2BIG', () => {
  const script = `
    ${tools}
    const [engine] = process.argv.slice(1);
    main(async () => {
      await warmup(engine);
      const before = JSON.stringify(fdmap());
      const cases = {
        'one arg over MAX_ARG_STRLEN (128 KiB)': () => spawn('true', ['x'.repeat(200 * 1024)], { engine, stdio: 'ignore' }),
        'args over ARG_MAX in total': () => spawn('true', Array.from({ length: 40 }, () => 'y'.repeat(100 * 1024)), { engine, stdio: 'ignore' }),
        'env over ARG_MAX in total': () => spawn('true', [], { engine, stdio: 'ignore', env: Object.fromEntries(Array.from({ length: 40 }, (_, i) => ['V' + i, 'z'.repeat(100 * 1024)])) }),
        'one env var over MAX_ARG_STRLEN': () => spawn('true', [], { engine, stdio: 'pipe', env: { BIG: 'w'.repeat(200 * 1024) } }),
        '1,100,000 empty args': () => spawn('true', new Array(1100000).fill(''), { engine, stdio: 'ignore' }),
      };
      const results = {};
      for (const [name, f] of Object.entries(cases)) {
        try { const p = f(); results[name] = { spawned: true, status: (await p.exited).status }; }
        catch (e) { results[name] = typed(e); }
      }
      const settled = await settle(before);
      const then = (await spawn('sh', ['-c', 'exit 4'], { engine, stdio: 'ignore' }).exited).status;
      return { results, then, ...settled };
    });
  `;
  const outs: Record<string, any> = {};
  for (const engine of ENGINES) {
    it(`${engine} engine: typed E2BIG for huge args and env, nothing left, then a spawn works`, () => {
      const out = (outs[engine] = run([], script, [engine]));
      for (const [name, r] of Object.entries<any>(out.results)) {
        expect(r, name).toMatchObject({ hasCode: true, code: 'E2BIG' });
      }
      expect(out.fdsSame).toBe(true);
      expect(out.left).toEqual([]);
      expect(out.then).toBe(4);
    });
  }
  // Once EPROTO from the helper engine: the same request must give the same
  // error with either engine.
  it('both engines give the same error for 1,100,000 empty args', () => {
    const name = '1,100,000 empty args';
    expect(outs.helper?.results[name]?.code).toBe('E2BIG');
    expect(outs.helper?.results[name]?.code).toBe(outs.direct?.results[name]?.code);
  });
});

// Sanity: the shell used for `ulimit -n` is there.
accessSync('/bin/sh', constants.X_OK);
