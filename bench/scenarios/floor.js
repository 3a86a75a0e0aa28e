// [floor] The C floor alone: clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD) +
// execve("/bin/true") + waitid(P_PIDFD), one after another (bench/floor.c,
// built by run.js with cc). Run in rounds like the other scenarios, so the
// spread between rounds shows how steady the machine is right now; the
// sequential scenario interleaves the floor with the contenders it is
// compared with.
'use strict';
const lib = require('../lib');

const counts = {
  full: { rounds: 8, perRound: 150 },
  quick: { rounds: 3, perRound: 100 },
  smoke: { rounds: 2, perRound: 10 },
};

async function run(ctx) {
  if (ctx.floor.unavailable) return { unavailable: `floor unavailable: ${ctx.floor.unavailable}`, medians: {} };
  const c = ctx.counts;
  const { 'C floor': m } = await lib.interleave({ 'C floor': { block: (n) => lib.runFloor(ctx.floor.bin, n) } }, c);
  const roundMedians = m.value.map(lib.median);
  const all = m.value.flat();
  const median = lib.roundMedian(m.value);
  return {
    spawns: all.length,
    rounds: c.rounds,
    medians: { 'C floor': lib.round(median) },
    p10Us: lib.round(lib.quantile(all, 0.1)),
    p90Us: lib.round(lib.quantile(all, 0.9)),
    // the slowest round's median against the fastest's: 1.00× on a quiet machine
    roundSpread: lib.round(Math.max(...roundMedians) / Math.min(...roundMedians), 2),
  };
}

function print(r) {
  if (r.unavailable) {
    console.log(r.unavailable);
    return;
  }
  console.log(`clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD) + execve(/bin/true) + waitid(P_PIDFD) × ${r.spawns}, in ${r.rounds} rounds`);
  console.log('');
  lib.printTable(['contender', 'median µs', 'p10 µs', 'p90 µs', 'slowest/fastest round'],
    [['C floor', lib.num(r.medians['C floor'], 1), lib.num(r.p10Us, 1), lib.num(r.p90Us, 1), lib.x(r.roundSpread)]]);
}

module.exports = { name: 'floor', usesFloor: true, title: 'C floor', counts, run, print };
