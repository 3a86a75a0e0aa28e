// The workload of the native memory-safety runs (scripts/asan.sh,
// scripts/valgrind.sh): every native path a user can reach, exercised a few
// times, with functional checks so that a run that "passes" really went
// through those paths. Not a test suite: correctness is test/'s job; this
// one exists to put the addon and the helper under ASan/UBSan and valgrind.
//
// usage: node test/native/workload.js [--tiny] [--pids FILE]
//   --tiny      the valgrind subset: a few spawns per engine, 2 worker rounds
//   --pids FILE append every helper pid seen (the runner waits for them to
//               exit, so that their at-exit leak checks are in the log)
//
// The addon it loads is chosen by CLONEFD_PREBUILD (node-gyp-build), and
// checked against CLONEFD_EXPECT_ADDON when that is set.
//
// CLONEFD_UNDER_VALGRIND=1 (scripts/valgrind.sh) leaves out what valgrind
// 3.19 itself cannot do, not what clonefd does: it has no pidfd_send_signal
// (syscall 424 is "unhandled", ENOSYS), so kill(), timeout, AbortSignal and
// the drop-in's kills are skipped (children are killed by pid instead); and
// it runs a CLONE_VM|CLONE_VFORK child as a plain fork, so the direct
// engine's child cannot report exec errors through the shared plan (the
// child exits 127 and spawn() does not throw): those checks are skipped for
// the direct engine (also because such a forked child, exiting under
// valgrind without an exec, leak-checks its copy of Node's heap: minutes,
// and thousands of false "definitely lost"). It has no pidfd_open either (syscall 434), which the
// direct engine's clonefd() needs for its user fds: skipped too. And the
// helper-death recovery may report a status as lost (see helperKilled).
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { promisify } = require('node:util');
const { Worker } = require('node:worker_threads');

// Children must not inherit the sanitizer runtime (they are not ours).
delete process.env.LD_PRELOAD;

const LIB = path.join(__dirname, '..', '..', 'lib');
const { binding, bindingPath } = require(path.join(LIB, 'binding'));
const { spawn, clonefd, O_CLOEXEC, O_NONBLOCK, CLD_EXITED, CLD_KILLED } = require(LIB);
const cp = require(path.join(LIB, 'child_process'));

const argv = process.argv.slice(2);
const TINY = argv.includes('--tiny');
const VALGRIND = process.env.CLONEFD_UNDER_VALGRIND === '1';
/** p.kill(sig), or by pid where valgrind lacks pidfd_send_signal. */
function killChild(p, sig) {
  if (!VALGRIND) return p.kill(sig);
  process.kill(p.pid, sig);
  return true;
}
const pidsFile = argv.includes('--pids') ? argv[argv.indexOf('--pids') + 1] : null;
const ENGINES = ['helper', 'direct'];
// CLONEFD_NATIVE_SCALE=N: N times the worker and helper-kill rounds (a longer hunt; CI uses 1).
const SCALE = Math.max(1, Number(process.env.CLONEFD_NATIVE_SCALE) || 1);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
let steps = 0;

function step(name) {
  steps++;
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${name}`);
}

const helpersSeen = new Set();
function noteHelper() {
  const pid = binding.helperPid();
  if (pid > 0 && !helpersSeen.has(pid)) {
    helpersSeen.add(pid);
    if (pidsFile) fs.appendFileSync(pidsFile, `${pid}\n`);
  }
  return pid;
}

/** fn() must throw an error with a string code (optionally this one). */
function throwsCoded(fn, code, what) {
  let err = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: did not throw`);
  assert.equal(typeof err.code, 'string', `${what}: no code (${err && err.message})`);
  if (code) assert.equal(err.code, code, `${what}: ${err.message}`);
  return err;
}

async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return Buffer.concat(chunks);
}

// ---------------------------------------------------------------------------

async function basics(engine) {
  step(`${engine}: spawn, exit codes, signals`);
  const n = TINY ? 2 : 20;
  for (let i = 0; i < n; i++) {
    const info = await spawn('sh', ['-c', `exit ${i % 7}`], { engine, stdio: 'ignore' }).exited;
    assert.equal(info.code, CLD_EXITED);
    assert.equal(info.status, i % 7);
  }
  // Many at once.
  const many = await Promise.all(Array.from({ length: TINY ? 3 : 32 }, () => spawn('/bin/true', [], { engine, stdio: 'ignore' }).exited));
  assert.ok(many.every((i) => i.exitCode === 0));
  noteHelper();

  const k = spawn('sleep', ['30'], { engine, stdio: 'ignore' });
  assert.equal(killChild(k, 'SIGTERM'), true);
  const ki = await k.exited;
  assert.equal(ki.code, CLD_KILLED);
  assert.equal(ki.signal, 'SIGTERM');
  assert.equal(k.kill('SIGKILL'), false); // reaped: no syscall at all

  if (!VALGRIND) {
    // timeout and an AbortSignal.
    const t = await spawn('sleep', ['30'], { engine, stdio: 'ignore', timeout: 50, killSignal: 'SIGKILL' }).exited;
    assert.equal(t.signal, 'SIGKILL');
    const ac = new AbortController();
    const a = spawn('sleep', ['30'], { engine, stdio: 'ignore', signal: ac.signal });
    a.on('error', () => {});
    ac.abort();
    assert.equal((await a.exited).code, CLD_KILLED);
  }

  // Options the child acts on: cwd, env, argv0, detached, umask'd files, uid/gid, extra fds.
  const o = spawn('sh', ['-c', 'echo "$0 $(pwd) $FOO"; exit 0'], {
    engine,
    cwd: '/tmp',
    env: { FOO: 'bar', PATH: process.env.PATH },
    argv0: 'zero',
    detached: true,
  });
  assert.equal((await collect(o.stdout)).toString(), 'zero /tmp bar\n');
  await o.exited;
  if (process.getuid() === 0) {
    const u = spawn('id', ['-u'], { engine, uid: 65534, gid: 65534 });
    assert.equal((await collect(u.stdout)).toString().trim(), '65534');
    await u.exited;
  }
  const x = spawn('sh', ['-c', 'echo three >&3; echo four >&4'], { engine, stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
  const [s3, s4] = await Promise.all([collect(x.stdio[3]), collect(x.stdio[4])]);
  assert.equal(s3.toString() + s4.toString(), 'three\nfour\n');
  await x.exited;
  const kp = await spawn('/bin/true', [], { engine, stdio: 'ignore', killWithParent: true }).exited;
  assert.equal(kp.exitCode, 0);

  // A request larger than the inline payload (the helper's memfd path).
  const big = Array.from({ length: TINY ? 200 : 2000 }, (_, i) => `arg-${i}-${'x'.repeat(100)}`);
  const env = { PATH: process.env.PATH, BIG: 'y'.repeat(TINY ? 20000 : 120000) };
  const b = spawn('sh', ['-c', 'echo $# ${#BIG}', 'sh', ...big], { engine, env });
  assert.equal((await collect(b.stdout)).toString(), `${big.length} ${env.BIG.length}\n`);
  await b.exited;
}

async function pipes(engine) {
  step(`${engine}: stdio pipes`);
  const size = TINY ? 64 * 1024 : 4 * 1024 * 1024;
  const data = Buffer.alloc(size, 'abcdefgh');
  const c = spawn('cat', [], { engine });
  const out = collect(c.stdout);
  c.stdin.end(data);
  assert.ok((await out).equals(data));
  assert.equal((await c.exited).exitCode, 0);

  const e = spawn('sh', ['-c', 'echo out; echo err >&2; exit 4'], { engine });
  const [so, se] = await Promise.all([collect(e.stdout), collect(e.stderr)]);
  assert.equal(so.toString() + se.toString(), 'out\nerr\n');
  assert.equal((await e.exited).status, 4);

  // The reader goes away first: the child gets EPIPE/SIGPIPE, nothing in us breaks.
  const y = spawn('yes', [], { engine, stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise((r) => y.stdout.once('data', r));
  y.stdout.destroy();
  const yi = await y.exited;
  assert.ok(yi.code === CLD_KILLED || yi.status !== 0);
}

async function contract(engine) {
  if (VALGRIND && engine === 'direct') {
    step(`${engine}: clonefd() read contract: skipped (no pidfd_open under valgrind)`);
    return;
  }
  step(`${engine}: clonefd() read contract`);
  const h = clonefd('sleep', ['0.2'], { engine, flags: O_CLOEXEC | O_NONBLOCK, stdio: 'ignore' });
  throwsCoded(() => h.read(), 'EAGAIN', 'read before exit');
  const ex = await h.exited;
  const info = h.read();
  assert.equal(info, ex);
  assert.equal(info.code, CLD_EXITED);
  assert.equal(info.toBuffer().length, 24);
  assert.equal(h.read(), null);
  h.close();
  h.close();

  const b = clonefd('sh', ['-c', 'exit 9'], { engine, flags: O_CLOEXEC, stdio: 'ignore' });
  assert.equal(b.read().status, 9); // blocks the thread until the exit
  assert.equal(b.read(), null);
  b.close();

  const r = clonefd('sh', ['-c', 'exit 5'], { engine, flags: 0, stdio: 'ignore' });
  const [r1, r2] = await Promise.all([r.readAsync(), r.readAsync()]);
  assert.equal(r1.status, 5);
  assert.equal(r2, null);
  r.close();

  // A raw read(2) of the fd (helper engine: a pipe; direct: the pidfd, served by read()).
  const raw = clonefd('/bin/true', [], { engine, flags: O_CLOEXEC, stdio: 'ignore' });
  if (engine === 'helper') {
    const buf = Buffer.alloc(64);
    assert.equal(fs.readSync(raw.fd, buf, 0, 64, null), 24);
    assert.equal(fs.readSync(raw.fd, buf, 0, 64, null), 0);
    assert.equal(raw.read(), null);
  } else {
    assert.equal(raw.read().exitCode, 0);
  }
  await raw.exited;
  raw.close();

  // Handles dropped without close(): the environment's teardown owns them.
  clonefd('/bin/true', [], { engine, stdio: 'ignore' });
  const d = spawn('sleep', ['30'], { engine, stdio: 'ignore' });
  killChild(d, 'SIGKILL');
  await d.exited;
  await d[Symbol.asyncDispose](); // exited already: no kill
  const u = spawn('sleep', ['0.05'], { engine, stdio: 'ignore' });
  u.unref();
  u.ref();
  await u.exited;
}

async function badInput(engine) {
  step(`${engine}: bad inputs`);
  // Errors found by the child before its exec (see CLONEFD_UNDER_VALGRIND above).
  const childErrors = !(VALGRIND && engine === 'direct');
  if (childErrors) {
    throwsCoded(() => spawn('/nonexistent/prog', [], { engine }), 'ENOENT', 'missing program');
    throwsCoded(() => spawn('/etc/passwd', [], { engine }), 'EACCES', 'not executable');
    throwsCoded(() => spawn('/bin/true', [], { engine, cwd: '/nonexistent-dir' }), 'ENOENT', 'missing cwd');
  }
  if (childErrors) throwsCoded(() => spawn('definitely-not-in-path-xyz', [], { engine }), 'ENOENT', 'missing in PATH');
  throwsCoded(() => spawn('/bin/true', ['a\0b'], { engine }), null, 'NUL in an arg');
  throwsCoded(() => spawn('/bin/true', [], { engine, env: { A: 'x\0y' } }), null, 'NUL in env');
  throwsCoded(() => spawn('/bin/true', [], { engine, stdio: ['ignore', 'ignore', 'ignore', 987654] }), null, 'bad fd in stdio');
  throwsCoded(() => spawn('/bin/true', [], { engine, stdio: 'bogus' }), null, 'bad stdio');
  throwsCoded(() => spawn('/bin/true', [], { engine, uid: -5 }), null, 'bad uid');
  throwsCoded(() => spawn('/bin/true', [], { engine, killSignal: 'SIGNOPE' }), null, 'bad signal');
  throwsCoded(() => spawn(42, [], { engine }), null, 'file not a string');
  throwsCoded(() => spawn('/bin/true', 'notarray', { engine }), null, 'args not an array');
  for (const flags of [1, -1, 2 ** 40, 0o100]) throwsCoded(() => clonefd('/bin/true', [], { engine, flags }), 'EINVAL', `flags ${flags}`);
  if (process.getuid() !== 0) throwsCoded(() => spawn('/bin/true', [], { engine, uid: 0 }), 'EPERM', 'setuid');
  // Too large for execve (and, with the helper, for its payload limits).
  const huge = VALGRIND ? [] : Array.from({ length: 200000 }, () => 'z'.repeat(16));
  if (!VALGRIND) throwsCoded(() => spawn('/bin/true', huge, { engine, stdio: 'ignore' }), null, 'E2BIG'); // 20 s under valgrind
  const h = spawn('sleep', ['30'], { engine, stdio: 'ignore' });
  throwsCoded(() => h.kill('SIGBOGUS'), null, 'bad kill signal');
  throwsCoded(() => h.kill(1e9), null, 'out of range kill signal');
  killChild(h, 'SIGKILL');
  await h.exited;
}

async function dropin(engine) {
  step(`${engine}: drop-in exec/execFile/spawn/spawnSync`);
  const prev = process.env.CLONEFD_ENGINE;
  process.env.CLONEFD_ENGINE = engine;
  try {
    const { stdout } = await promisify(cp.execFile)('echo', ['a', 'b']);
    assert.equal(stdout, 'a b\n');
    const ex = await promisify(cp.exec)('echo $((6*7)); echo e >&2');
    assert.equal(ex.stdout + ex.stderr, '42\ne\n');
    await assert.rejects(promisify(cp.exec)('exit 3'), (e) => e.code === 3);
    if (!(VALGRIND && engine === 'direct')) await assert.rejects(promisify(cp.execFile)('/nonexistent'), (e) => e.code === 'ENOENT');
    if (!VALGRIND) {
      await assert.rejects(promisify(cp.exec)('yes', { maxBuffer: 10000 }), (e) => e.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER');
      await assert.rejects(promisify(cp.execFile)('sleep', ['30'], { timeout: 50 }), (e) => e.killed === true);
    }

    const c = cp.spawn('sh', ['-c', 'cat; exit 2']);
    const got = collect(c.stdout);
    c.stdin.end('via stdin');
    const [code] = await new Promise((r) => c.on('close', (...a) => r(a)));
    assert.equal(code, 2);
    assert.equal((await got).toString(), 'via stdin');
    if (!(VALGRIND && engine === 'direct')) {
      const missing = cp.spawn('/nonexistent');
      assert.equal((await new Promise((r) => missing.on('error', r))).code, 'ENOENT');
    }

    // The sync forms open the contract's fds (direct engine: pidfd_open, absent under valgrind).
    if (!(VALGRIND && engine === 'direct')) {
      const s = cp.spawnSync('sh', ['-c', 'cat; echo err >&2; exit 6'], { input: 'in' });
      assert.equal(s.status, 6);
      assert.equal(s.stdout.toString(), 'in');
      assert.equal(s.stderr.toString(), 'err\n');
      const big = cp.spawnSync('head', ['-c', String(TINY ? 100000 : 3000000), '/dev/zero'], { maxBuffer: 8e6 });
      assert.equal(big.stdout.length, TINY ? 100000 : 3000000);
      if (!VALGRIND) {
        const to = cp.spawnSync('sleep', ['30'], { timeout: 50 });
        assert.equal(to.signal, 'SIGTERM');
        assert.equal(to.error.code, 'ETIMEDOUT');
        const mb = cp.spawnSync('yes', [], { maxBuffer: 5000 });
        assert.equal(mb.error.code, 'ENOBUFS');
      }
      if (!(VALGRIND && engine === 'direct')) assert.equal(cp.spawnSync('/nonexistent').error.code, 'ENOENT');
      assert.equal(cp.execFileSync('echo', ['sync']).toString(), 'sync\n');
      assert.equal(cp.execSync('echo $((1+1))', { encoding: 'utf8' }), '2\n');
      assert.throws(() => cp.execSync('exit 7', { stdio: 'ignore' }), (e) => e.status === 7);
    }
    // Bad stdio in the sync forms: must throw (issue 8 §1.5: with a code).
    for (const stdio of [5, {}, true]) assert.throws(() => cp.spawnSync('true', [], { stdio }));
    assert.throws(() => cp.fork(), (e) => e.code === 'ERR_INVALID_ARG_TYPE');
    // IPC (native/addon/channel.cc): messages both ways, a big one that
    // queues, a handle (an fd over SCM_RIGHTS), the child's disconnect.
    const fs = require('node:fs');
    const dir = fs.mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'clonefd-workload-'));
    const script = require('node:path').join(dir, 'echo.js');
    fs.writeFileSync(script, "process.on('message', (m, h) => { if (h) h.close(); process.send(m); if (m === 'bye') process.disconnect(); });");
    const child = cp.fork(script, [], { execArgv: [], serialization: engine === 'direct' ? 'advanced' : 'json' });
    const replies = [];
    const disconnected = new Promise((resolve) => child.on('disconnect', resolve));
    const closed = new Promise((resolve) => child.on('close', resolve));
    child.on('message', (m) => replies.push(m));
    const server = require('node:net').createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    child.send('x'.repeat(TINY ? 1000 : 300000));
    child.send({ n: 1 }, server);
    child.send('bye');
    await disconnected;
    await closed;
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(replies.map((m) => (typeof m === 'string' ? m.length : m)), [TINY ? 1000 : 300000, { n: 1 }, 3]);
  } finally {
    if (prev === undefined) delete process.env.CLONEFD_ENGINE;
    else process.env.CLONEFD_ENGINE = prev;
  }
}

/** Workers that spawn in a loop, terminated at varying moments mid-flight. */
async function workers() {
  const rounds = TINY ? 2 : 12 * SCALE;
  const perRound = TINY ? 2 : 3;
  step(`workers: ${rounds} rounds of ${perRound} spawning workers terminated mid-flight`);
  const pendingBefore = binding.reaperPending(); // the live helper is one of them
  const src = `
    const { spawn, clonefd } = require(${JSON.stringify(LIB)});
    const { workerData, parentPort } = require('node:worker_threads');
    const engine = workerData.engine;
    // No pidfd_open under valgrind: the direct engine's clonefd() cannot open its fds there.
    const handles = !(workerData.valgrind && engine === 'direct');
    let n = 0;
    (async () => {
      for (;;) {
        const p = spawn('sh', ['-c', 'echo hi; sleep 0.01'], { engine, killWithParent: n % 2 === 0 });
        p.stdout.resume();
        spawn('sleep', ['0.5'], { engine, stdio: 'ignore', killWithParent: n % 3 === 0 });
        const h = handles ? clonefd('/bin/true', [], { engine, stdio: 'ignore' }) : null;
        await p.exited;
        if (h && n % 2) h.close();
        if (++n === 2) parentPort.postMessage('going');
      }
    })();`;
  for (let r = 0; r < rounds; r++) {
    const ws = Array.from({ length: perRound }, (_, i) => new Worker(src, { eval: true, workerData: { engine: ENGINES[(r + i) % 2], valgrind: VALGRIND } }));
    await Promise.all(ws.map((w) => new Promise((res, rej) => w.once('message', res).once('error', rej))));
    await sleep((r * 7) % 40);
    await Promise.all(ws.map((w) => w.terminate()));
  }
  // A worker whose only children outlive it (direct engine: the reaper thread adopts them).
  const w = new Worker(
    `const { spawn } = require(${JSON.stringify(LIB)});
     for (let i = 0; i < 4; i++) spawn('sleep', ['0.2'], { engine: 'direct', stdio: 'ignore' });
     require('node:worker_threads').parentPort.postMessage('spawned');`,
    { eval: true },
  );
  await new Promise((r) => w.once('message', r));
  await w.terminate();
  const deadline = Date.now() + 8000;
  while (binding.reaperPending() > pendingBefore && Date.now() < deadline) await sleep(20);
  assert.equal(binding.reaperPending(), pendingBefore, 'the reaper reaped the orphans');
}

// A child whose zombie its grandchild holds as ptracer for `holdS` seconds
// (the pidfd readable, no reap possible): exits 3.
const TRACED = (holdS) => [
  'import os, ctypes, time',
  'libc = ctypes.CDLL(None, use_errno=True)',
  'r, w = os.pipe()',
  'me = os.getpid()',
  'libc.prctl(0x59616d61, ctypes.c_ulong(2**64 - 1), 0, 0, 0)',
  'g = os.fork()',
  'if g == 0:',
  '    os.close(r)',
  '    if libc.ptrace(0x4206, me, None, None) != 0: os._exit(1)',
  '    os.write(w, b"x"); os.close(w)',
  `    time.sleep(${holdS})`,
  '    os._exit(0)',
  'os.close(w)',
  'os.read(r, 1)',
  'os._exit(3)',
].join('\n');

/** Held zombies (the deferred reap, its retry timer, a teardown with it armed) and cgroup trees (freeze, killTree, the thaw when the owner goes). */
async function heldAndTrees() {
  step('held zombies and cgroup trees');
  const pendingBefore = binding.reaperPending();
  for (const engine of ENGINES) {
    const info = await spawn('python3', ['-c', TRACED(0.5)], { engine, stdio: 'ignore' }).exited;
    assert.equal(info.status, 3, `${engine}: the held child's status`);
  }
  // A worker torn down while its direct child's reap waits on the retry timer.
  const w = new Worker(
    `const { spawn } = require(${JSON.stringify(LIB)});
     spawn('python3', ['-c', ${JSON.stringify(TRACED(1))}], { engine: 'direct', stdio: 'ignore' });
     setTimeout(() => require('node:worker_threads').parentPort.postMessage('held'), 400);`,
    { eval: true },
  );
  await new Promise((r) => w.once('message', r));
  await w.terminate();
  let deadline = Date.now() + 8000;
  while (binding.reaperPending() > pendingBefore && Date.now() < deadline) await sleep(20);
  assert.equal(binding.reaperPending(), pendingBefore, 'the reaper reaped the held child');
  for (const engine of ENGINES) {
    let c;
    try {
      c = spawn('sh', ['-c', 'trap "" TERM; sleep 5 & sleep 5 & wait'], { engine, cgroup: true, stdio: 'ignore' });
    } catch (e) {
      if (e.code === 'ERR_CLONEFD_CGROUP_UNAVAILABLE') return;
      throw e;
    }
    await sleep(100);
    await c.freeze();
    await c.killTree('SIGTERM');
    await c.thaw();
    await c.killTree();
    await c.treeExited;
  }
  // A worker terminated with its tree frozen: the tree is thawed and removed once killed.
  const tw = new Worker(
    `const { spawn } = require(${JSON.stringify(LIB)});
     const c = spawn('sh', ['-c', 'sleep 5 & wait'], { engine: 'direct', cgroup: true, stdio: 'ignore' });
     setTimeout(() => c.freeze().then(() => require('node:worker_threads').parentPort.postMessage(c.cgroup)), 100);`,
    { eval: true },
  );
  const group = await new Promise((r) => tw.once('message', r));
  await tw.terminate();
  deadline = Date.now() + 5000;
  while (!fs.readFileSync(path.join(group, 'cgroup.events'), 'utf8').includes('frozen 0') && Date.now() < deadline) await sleep(20);
  assert.match(fs.readFileSync(path.join(group, 'cgroup.events'), 'utf8'), /frozen 0/, 'the orphaned tree is thawed');
  fs.writeFileSync(path.join(group, 'cgroup.kill'), '1');
  deadline = Date.now() + 5000;
  while (fs.existsSync(group) && Date.now() < deadline) await sleep(20);
  assert.ok(!fs.existsSync(group), 'the reaper thread removed the orphaned group');
}

/** The helper SIGKILLed with children outstanding; a new generation afterwards. */
async function helperKilled() {
  const rounds = TINY ? 1 : 3 * SCALE;
  step(`helper SIGKILLed mid-flight, ${rounds} rounds`);
  for (let r = 0; r < rounds; r++) {
    await spawn('/bin/true', [], { stdio: 'ignore' }).exited;
    const hp = noteHelper();
    assert.ok(hp > 0);
    const kids = [
      spawn('sleep', ['0.3'], { stdio: 'ignore' }),
      spawn('sh', ['-c', 'exit 3'], { stdio: 'ignore' }),
      spawn('sleep', ['30'], { stdio: 'ignore', killWithParent: true }),
    ];
    const h = clonefd('sleep', ['0.2'], { flags: O_CLOEXEC | O_NONBLOCK, stdio: 'ignore' });
    await sleep(50);
    process.kill(hp, 'SIGKILL');
    // Spawns racing the death: each works or throws a coded error.
    for (let i = 0; i < 3; i++) {
      try {
        await spawn('/bin/true', [], { stdio: 'ignore' }).exited;
      } catch (e) {
        assert.equal(typeof e.code, 'string', e.message);
      }
    }
    killChild(kids[2], 'SIGKILL');
    // Under valgrind the recovery's liveness probe, pidfd_send_signal(pidfd, 0),
    // is ENOSYS: a recovered zombie's status is then "lost" (ECHILD), which is
    // the contract's documented failure mode, not a crash; accepted there only.
    const settle = (p) => (VALGRIND ? p.exited.catch((e) => (assert.equal(e.code, 'ECHILD'), null)) : p.exited);
    const infos = await Promise.all(kids.map(settle));
    if (infos[0]) assert.equal(infos[0].exitCode, 0);
    if (infos[1]) assert.equal(infos[1].status, 3);
    if (infos[2]) assert.equal(infos[2].code, CLD_KILLED);
    const hi = await settle(h);
    if (hi) assert.equal(hi.exitCode, 0);
    try {
      h.read(); // the contract's one failure mode: EOF without a record is allowed
    } catch (e) {
      assert.equal(typeof e.code, 'string');
    }
    h.close();
    const again = await spawn('sh', ['-c', 'exit 1'], { stdio: 'ignore' }).exited;
    assert.equal(again.status, 1);
    assert.notEqual(noteHelper(), hp, 'a new helper generation');
  }
}

async function main() {
  if (process.env.CLONEFD_EXPECT_ADDON) {
    assert.equal(path.resolve(bindingPath), path.resolve(process.env.CLONEFD_EXPECT_ADDON), 'the addon under test is loaded');
  }
  console.log(`workload${TINY ? ' (tiny)' : ''}: addon ${bindingPath}`);
  for (const engine of ENGINES) {
    await basics(engine);
    await pipes(engine);
    await contract(engine);
    await badInput(engine);
    await dropin(engine);
  }
  await workers();
  if (!VALGRIND) await heldAndTrees(); // python and cgroups; valgrind lacks pidfd_send_signal for killTree
  await helperKilled();
  // The helper that serves the rest of the run must be the one built beside the addon.
  await spawn('/bin/true', [], { stdio: 'ignore' }).exited;
  const hp = noteHelper();
  if (process.env.CLONEFD_EXPECT_HELPER_LIB) {
    const maps = fs.readFileSync(`/proc/${hp}/maps`, 'utf8');
    assert.ok(maps.includes(process.env.CLONEFD_EXPECT_HELPER_LIB), `helper ${hp} does not map ${process.env.CLONEFD_EXPECT_HELPER_LIB}`);
  }
  console.log(`workload: ${steps} steps done in ${((Date.now() - t0) / 1000).toFixed(1)} s; helpers seen: ${[...helpersSeen].join(' ')}`);
}

main().catch((e) => {
  console.error('workload FAILED:', e && e.stack ? `${e.stack}${e.code ? ` (code ${e.code})` : ''}` : e);
  process.exit(1);
});
