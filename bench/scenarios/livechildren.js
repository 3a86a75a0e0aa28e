// [livechildren] The per-spawn cost of a /bin/true churn while many idle
// children (`sleep 1000`) stay alive. libuv answers every SIGCHLD by
// trying waitpid() on each child it still has, so node's cost grows with
// the number alive; clonefd watches one pidfd per child and has no such
// scan. Each contender has its own idle children (the ones its own
// machinery would look at), all alive together while the churns are
// interleaved; they are killed and reaped through the handles held.
'use strict';
const lib = require('../lib');

const counts = {
  full: { rounds: 5, perRound: 60, warmup: 5, levels: [0, 1000, 4000] },
  quick: { rounds: 3, perRound: 30, warmup: 3, levels: [0, 500] },
  smoke: { rounds: 2, perRound: 3, warmup: 1, levels: [0, 20] },
};

const CONTENDERS = ['helper', 'direct', 'node'];

async function run(ctx) {
  const c = ctx.counts;
  const levels = [];
  for (const idle of c.levels) {
    const held = {};
    try {
      const t0 = Date.now();
      for (const name of CONTENDERS) held[name] = await lib.startIdle(name, idle);
      const startSeconds = lib.round((Date.now() - t0) / 1000, 1);
      const contenders = Object.fromEntries(CONTENDERS.map((name) => [name, () => lib.timeSpawn(name, '/bin/true', [])]));
      const samples = await lib.interleave(contenders, c);
      levels.push({
        idle,
        startSeconds,
        medianUs: Object.fromEntries(CONTENDERS.map((n) => [n, lib.round(lib.roundMedian(samples[n].us))])),
        speedupVsNode: Object.fromEntries(CONTENDERS.filter((n) => n !== 'node').map((n) => [n, lib.round(lib.pairedRatio(samples.node.us, samples[n].us), 2)])),
      });
    } finally {
      // Reaped whatever happened above, before the next level starts.
      for (const kids of Object.values(held)) await lib.killAll(kids);
    }
  }
  // Levels run one after another (not interleaved): the ratio to 0 is
  // between medians measured seconds to a minute apart.
  for (const l of levels) l.ratioToNone = Object.fromEntries(CONTENDERS.map((n) => [n, lib.round(l.medianUs[n] / levels[0].medianUs[n], 2)]));
  const top = levels[levels.length - 1];
  const targets = ['helper', 'direct'].map((n) => lib.target(`${n} with ${top.idle} idle children to ${n} with none`, top.ratioToNone[n], '<=', 1.3));
  const medians = {};
  for (const l of levels) for (const n of CONTENDERS) medians[`${n} @ ${l.idle} idle`] = l.medianUs[n];
  return { rounds: c.rounds, churnPerContender: c.rounds * c.perRound, levels, medians, targets };
}

function print(r) {
  console.log(`/bin/true × ${r.churnPerContender} per contender while its own idle children live, ${r.rounds} interleaved rounds`);
  console.log('');
  lib.printTable(
    ['idle children', 'helper µs', 'direct µs', 'node µs', 'helper to none', 'direct to none', 'node to none', 'helper vs node', 'direct vs node'],
    r.levels.map((l) => [
      `${l.idle} each`, lib.num(l.medianUs.helper), lib.num(l.medianUs.direct), lib.num(l.medianUs.node),
      lib.x(l.ratioToNone.helper), lib.x(l.ratioToNone.direct), lib.x(l.ratioToNone.node),
      lib.x(l.speedupVsNode.helper), lib.x(l.speedupVsNode.direct),
    ]),
  );
  console.log('  ("to none": the median over the same contender\'s with no idle children, levels measured one after another)');
  lib.printTargets(r.targets);
}

module.exports = { name: 'livechildren', title: 'Many live children', counts, run, print };
