// [fork] clonefd/child_process's fork() (default engine) against
// node:child_process's, interleaved: (1) fork(child.js) until the reply to
// a first message arrives (the disconnect and 'exit' after it are outside
// that span, shown apart); forks alternate one by one; (2) the round trip
// of a message over an established channel, in alternating blocks of 100,
// with the parent's CPU time per round trip. Reported as "unsupported"
// where the drop-in's fork() throws ERR_CLONEFD_IPC_UNSUPPORTED.
'use strict';
const cp = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const lib = require('../lib');

const counts = {
  full: { forks: 40, pings: 2000 },
  quick: { forks: 4, pings: 300 },
  smoke: { forks: 2, pings: 100 },
};

// The forked child: answers every message, exits when the channel closes.
const CHILD_JS = "'use strict';\nprocess.on('message', (m) => { process.send({ pong: m.ping }); });\n";

const forkers = {
  'clonefd/child_process.fork': (script) => lib.dropin().fork(script, []),
  'child_process.fork': (script) => cp.fork(script, []),
};
const PEER = 'child_process.fork';
const ANSWER_MS = 15_000; // a bound on any one wait: a hang fails the scenario
const PING_BLOCK = 100;

class Unsupported extends Error {}

const bounded = (promise, what) => lib.bounded(promise, ANSWER_MS, what);

/**
 * A forked child with its listeners attached once, before anything can
 * arrive: roundTrip() sends a message and resolves with the next one.
 */
class Forked {
  constructor(forkFn, script) {
    try {
      this.child = forkFn(script);
    } catch (err) {
      if (err && err.code === 'ERR_CLONEFD_IPC_UNSUPPORTED') throw new Unsupported(err.message);
      throw err;
    }
    this.pending = null;
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.status = { code, signal };
        if (this.pending) this.pending.reject(new Error(`the child exited (${code ?? signal}) before replying`));
        resolve(this.status);
      });
    });
    this.child.on('error', (err) => {
      if (this.pending) this.pending.reject(err);
    });
    this.child.on('message', (m) => {
      const p = this.pending;
      this.pending = null;
      if (p) p.resolve(m);
    });
  }

  roundTrip(msg) {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.child.send(msg);
    });
  }

  /** Disconnects and waits for 'exit'; a child that does not go is killed. */
  async close() {
    try {
      if (this.child.connected) this.child.disconnect();
      const status = await bounded(this.exited, "'exit' after disconnect()");
      if (status.code !== 0) throw new Error(`the child exited with ${status.code ?? status.signal} after disconnect()`);
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  /** SIGKILL unless it has exited, then (bounded) wait for its 'exit'. */
  async kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await bounded(this.exited, "'exit' after SIGKILL").catch(() => {});
  }
}

/** { firstUs: until the reply to the first message, callUs: the fork() call, teardownUs: disconnect() to 'exit' } */
async function timeFork(forkFn, script) {
  const t0 = lib.nowUs();
  const f = new Forked(forkFn, script);
  const t1 = lib.nowUs();
  try {
    const reply = await bounded(f.roundTrip({ ping: 1 }), 'the reply to the first message');
    const t2 = lib.nowUs();
    if (!reply || reply.pong !== 1) throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
    await f.close();
    return { firstUs: t2 - t0, callUs: t1 - t0, teardownUs: lib.nowUs() - t2 };
  } catch (err) {
    await f.kill();
    throw err;
  }
}

async function forkPart(c, script) {
  const contenders = Object.fromEntries(Object.entries(forkers).map(([n, fn]) => [n, () => timeFork(fn, script)]));
  // A fork is long (a Node starting up): one per block, alternating.
  const s = await lib.interleave(contenders, { rounds: c.forks, perRound: 1, warmup: 2 });
  const med = (metric) => Object.fromEntries(Object.keys(s).map((n) => [n, lib.round(lib.median(s[n][metric].flat()))]));
  return {
    forks: c.forks,
    medianFirstReplyUs: med('firstUs'),
    p90FirstReplyUs: Object.fromEntries(Object.keys(s).map((n) => [n, lib.round(lib.quantile(s[n].firstUs.flat(), 0.9))])),
    medianForkCallUs: med('callUs'),
    medianTeardownUs: med('teardownUs'),
    // one fork per round: the ratio of the medians (a per-round ratio of single forks is noise)
    speedupVsNode: lib.round(lib.median(s[PEER].firstUs.flat()) / lib.median(s['clonefd/child_process.fork'].firstUs.flat()), 2),
  };
}

async function ipcPart(c, script) {
  const names = Object.keys(forkers);
  const kids = {};
  const first = {};
  try {
    // ping 0 waits for the child to start; ping 1, right after it, is the
    // first round trip on a ready channel (one sample, reported apart);
    // then a warm-up.
    for (const name of names) {
      kids[name] = new Forked(forkers[name], script);
      await bounded(kids[name].roundTrip({ ping: 0 }), `${name}: the first reply`);
      const t0 = lib.nowUs();
      await bounded(kids[name].roundTrip({ ping: 1 }), `${name}: the second reply`);
      first[name] = lib.round(lib.nowUs() - t0);
      for (let i = 0; i < 100; i++) await bounded(kids[name].roundTrip({ ping: i }), `${name}: a warm-up reply`);
    }
    // Blocks of PING_BLOCK round trips, alternating between the children;
    // the parent's CPU (user + system) per round trip, per block.
    const contenders = Object.fromEntries(names.map((name) => [name, {
      block: async (n) => {
        const out = [];
        const u0 = process.cpuUsage();
        for (let i = 0; i < n; i++) {
          const t0 = lib.nowUs();
          const reply = await bounded(kids[name].roundTrip({ ping: i }), `${name}: reply ${i}`);
          out.push({ us: lib.nowUs() - t0 });
          if (reply.pong !== i) throw new Error(`${name}: reply ${JSON.stringify(reply)} to ping ${i}`);
        }
        const u = process.cpuUsage(u0);
        for (const o of out) o.cpuUs = (u.user + u.system) / n;
        return out;
      },
    }]));
    const s = await lib.interleave(contenders, { rounds: Math.ceil(c.pings / PING_BLOCK), perRound: PING_BLOCK });
    for (const name of names) await kids[name].close();
    const fix = (f) => Object.fromEntries(names.map((n) => [n, lib.round(f(s[n]))]));
    return {
      roundTrips: s[names[0]].us.flat().length,
      medianUs: fix((m) => lib.roundMedian(m.us)),
      p99Us: fix((m) => lib.quantile(m.us.flat(), 0.99)),
      maxUs: fix((m) => Math.max(...m.us.flat())),
      parentCpuUsPerRoundTrip: fix((m) => lib.roundMedian(m.cpuUs)),
      firstOnReadyChannelUs: first,
      speedupVsNode: lib.round(lib.pairedRatio(s[PEER].us, s['clonefd/child_process.fork'].us), 2),
    };
  } finally {
    for (const k of Object.values(kids)) await k.kill();
  }
}

async function run(ctx) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clonefd-bench-fork-'));
  const script = path.join(dir, 'child.js');
  fs.writeFileSync(script, CHILD_JS);
  try {
    const fork = await forkPart(ctx.counts, script);
    const ipc = await ipcPart(ctx.counts, script);
    const medians = {};
    for (const [n, v] of Object.entries(fork.medianFirstReplyUs)) medians[`${n} to first reply`] = v;
    for (const [n, v] of Object.entries(ipc.medianUs)) medians[`${n} IPC round trip`] = v;
    return { fork, ipc, medians };
  } catch (err) {
    if (err instanceof Unsupported) return { unsupported: err.message, medians: {} };
    throw err;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function print(r) {
  if (r.unsupported) {
    console.log(`fork: unsupported (${r.unsupported})`);
    return;
  }
  const ms = (us) => (us / 1000).toFixed(1);
  const f = r.fork;
  console.log(`(1) fork(child.js), send {ping:1}, until its reply arrives (exit not in the span), × ${f.forks} each, alternating`);
  console.log('');
  lib.printTable(['contender', 'median ms', 'p90 ms', 'fork() call ms', 'disconnect → exit ms'],
    Object.keys(f.medianFirstReplyUs).map((n) => [n, ms(f.medianFirstReplyUs[n]), ms(f.p90FirstReplyUs[n]), ms(f.medianForkCallUs[n]), ms(f.medianTeardownUs[n])]));
  console.log(`  clonefd/child_process.fork is ${lib.x(f.speedupVsNode)} as fast as ${PEER} (fork to first reply)`);
  const p = r.ipc;
  console.log('');
  console.log(`(2) IPC round trip over an established channel, × ${p.roundTrips} each, alternating blocks of ${PING_BLOCK}`);
  console.log('');
  lib.printTable(['contender', 'median µs', 'p99 µs', 'max µs', 'parent CPU µs*', '1st once ready µs'],
    Object.keys(p.medianUs).map((n) => [n, lib.num(p.medianUs[n]), lib.num(p.p99Us[n]), lib.num(p.maxUs[n]), lib.num(p.parentCpuUsPerRoundTrip[n], 1), lib.num(p.firstOnReadyChannelUs[n])]));
  console.log('  * the whole parent process\'s CPU time (user + system) per round trip, mean of a block, median of the blocks');
  console.log(`  clonefd/child_process.fork's channel is ${lib.x(p.speedupVsNode)} as fast as ${PEER}'s (per round trip)`);
}

module.exports = { name: 'fork', title: 'fork() and IPC', counts, run, print };
