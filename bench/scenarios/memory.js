// [memory] What one live child costs its parent: JS heap (heapUsed after
// global.gc()), native memory (RSS, and V8's external/arrayBuffers), and
// fds (/proc/self/fd), from the difference between before and after
// starting N idle children (`sleep 1000`, stdio ignored), divided by N.
// With the helper engine the helper's own RSS growth is shown too (it is
// memory the children cost, in another process).
//
// Runs in a `node --expose-gc` subprocess (this file with --child) so that
// global.gc() exists and the bench's earlier scenarios are not in the
// heap. Contenders alternate trial by trial (A B C A B C ...); each trial
// kills and reaps its children before the next.
'use strict';
const lib = require('../lib');

const counts = {
  full: { rounds: 2, children: 1000 },
  quick: { rounds: 1, children: 100 },
  smoke: { rounds: 1, children: 50 },
};

const CONTENDERS = ['helper', 'direct', 'node'];

// What the README says about the fds a child holds (read by hand from its
// "Who owns which fd" paragraph; printed next to the measured figure).
const README_FD_CLAIM = 'no number: "clonefd watches, reaps and kills through private fds of its own"; spawn() opens `fd` and `pidfd` only on first access';

function settle() {
  // Twice: a first full GC can leave garbage that only the second collects (weak callbacks, finalizers).
  global.gc();
  global.gc();
}

function snapshot() {
  settle();
  const m = process.memoryUsage();
  const hp = lib.helperPid();
  return {
    heapUsed: m.heapUsed,
    rss: m.rss,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    fds: lib.fdCount(),
    helperRss: hp ? lib.rssOf(hp) : 0,
  };
}

async function trial(name, n) {
  const before = snapshot();
  const kids = await lib.startIdle(name, n);
  try {
    const after = snapshot();
    const per = (k) => (after[k] - before[k]) / n;
    return {
      heapBytes: per('heapUsed'),
      rssBytes: per('rss'),
      externalBytes: per('external'),
      arrayBuffersBytes: per('arrayBuffers'),
      fds: per('fds'),
      helperRssBytes: per('helperRss'),
    };
  } finally {
    await lib.killAll(kids);
  }
}

async function child({ rounds, children }) {
  if (typeof global.gc !== 'function') throw new Error('memory: run with --expose-gc');
  // Warm-up: the helper started, code compiled, pools allocated, before anything is measured.
  for (const name of CONTENDERS) await lib.killAll(await lib.startIdle(name, 5));
  const contenders = Object.fromEntries(CONTENDERS.map((n) => [n, () => trial(n, children)]));
  const samples = await lib.interleave(contenders, { rounds, perRound: 1 });
  const out = {};
  for (const n of CONTENDERS) {
    out[n] = Object.fromEntries(Object.entries(samples[n]).map(([metric, rs]) => [metric, lib.round(lib.roundMedian(rs), metric === 'fds' ? 2 : 0)]));
  }
  return { perChild: out };
}

async function run(ctx) {
  const c = ctx.counts;
  const r = await lib.runChild(__filename, c, { execArgv: ['--expose-gc'], timeoutMs: 120_000 + c.children * c.rounds * 60 });
  const p = r.perChild;
  // Native memory a child costs, wherever it is: this process's RSS, plus the helper's.
  const nativeOf = (n) => p[n].rssBytes + p[n].helperRssBytes;
  const targets = [];
  for (const n of ['helper', 'direct']) {
    targets.push(lib.target(`${n} JS heap per child to node's`, p[n].heapBytes / p.node.heapBytes, '<=', 1));
    targets.push(lib.target(`${n} RSS per child (helper's included) to node's`, nativeOf(n) / p.node.rssBytes, '<=', 1));
  }
  return {
    children: c.children,
    rounds: c.rounds,
    perChild: p,
    readmeFdClaim: README_FD_CLAIM,
    medians: Object.fromEntries(CONTENDERS.map((n) => [n, p[n].heapBytes])),
    targets,
    leftoverChildren: r.leftoverChildren,
  };
}

function print(r) {
  console.log(`per live child, from ${r.children} idle children (sleep 1000, stdio ignored), after global.gc(); ${r.rounds} interleaved round(s)`);
  console.log('');
  lib.printTable(['contender', 'JS heap B', 'RSS B', 'helper RSS B', 'external B', 'arrayBuffers B', 'fds'],
    Object.entries(r.perChild).map(([n, v]) => [n, lib.num(v.heapBytes), lib.num(v.rssBytes), n === 'helper' ? lib.num(v.helperRssBytes) : '',
      lib.num(v.externalBytes), lib.num(v.arrayBuffersBytes), lib.num(v.fds, 2)]));
  console.log('');
  console.log(`  fds per child, README: ${r.readmeFdClaim}`);
  console.log(`  fds per child, measured: ${Object.entries(r.perChild).map(([n, v]) => `${n} ${lib.num(v.fds, 2)}`).join(', ')}`);
  lib.printTargets(r.targets);
}

if (require.main === module) lib.childMain(child);

module.exports = { name: 'memory', title: 'Memory per live child', counts, run, print };
