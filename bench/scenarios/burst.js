// [burst] Many sleeping children killed at once (SIGKILL each, in one
// tick): the time from the first kill until every exit has been observed.
// One trial per contender, interleaved (A B C); each trial starts its
// children first (not timed) and waits until all have started. One round:
// starting 3 × 4,000 children takes a minute and a half on the 2-core
// machine (node's spawn ~14 ms there), and a second round would push the
// full run past 10 minutes.
'use strict';
const lib = require('../lib');

const counts = {
  full: { rounds: 1, children: 4000 },
  quick: { rounds: 1, children: 150 },
  smoke: { rounds: 1, children: 20 },
};

const CONTENDERS = ['helper', 'direct', 'node'];

async function trial(name, n) {
  const kids = await lib.startIdle(name, n);
  try {
    const t0 = lib.nowUs();
    for (const k of kids) lib.killChild(k.child);
    await lib.bounded(Promise.all(kids.map((k) => k.exit)), 60_000, `${name}: ${n} exits after SIGKILL`);
    return { ms: (lib.nowUs() - t0) / 1000 };
  } finally {
    await lib.killAll(kids); // a no-op when all were reaped; reaps them if the wait above failed
  }
}

async function run(ctx) {
  const c = ctx.counts;
  const contenders = Object.fromEntries(CONTENDERS.map((n) => [n, () => trial(n, c.children)]));
  const samples = await lib.interleave(contenders, { rounds: c.rounds, perRound: 1 });
  const rows = {};
  for (const n of CONTENDERS) {
    rows[n] = {
      ms: lib.round(lib.roundMedian(samples[n].ms), 1),
      usPerExit: lib.round(lib.roundMedian(samples[n].ms) * 1000 / c.children, 1),
      speedupVsNode: n === 'node' ? null : lib.round(lib.pairedRatio(samples.node.ms, samples[n].ms), 2),
    };
  }
  return {
    children: c.children,
    rounds: c.rounds,
    contenders: rows,
    medians: Object.fromEntries(CONTENDERS.map((n) => [n, rows[n].ms])),
    // "no worse than node:child_process"
    targets: ['helper', 'direct'].map((n) => lib.target(`${n} burst vs node`, rows[n].speedupVsNode, '>=', 1)),
  };
}

function print(r) {
  console.log(`${r.children} sleeping children SIGKILLed in one tick, until every exit is observed; ${r.rounds === 1 ? 'one trial per contender, interleaved' : `${r.rounds} interleaved rounds`}`);
  console.log('');
  lib.printTable(['contender', 'ms', 'µs per exit', 'speed-up vs node'],
    Object.entries(r.contenders).map(([n, v]) => [n, lib.num(v.ms, 1), lib.num(v.usPerExit, 1), v.speedupVsNode === null ? '' : lib.x(v.speedupVsNode)]));
  lib.printTargets(r.targets);
}

module.exports = { name: 'burst', title: 'Exit burst', counts, run, print };
