// [trees] What a cgroup per child costs: /bin/true spawned one after
// another with cgroup: true (awaiting `exited`, and awaiting `treeExited`,
// which waits for the group's removal too) against the same engine without
// it, interleaved in rounds. Reported unavailable where this process has
// no writable cgroup v2 group.
'use strict';
const lib = require('../lib');

const counts = {
  full: { rounds: 7, perRound: 100, warmup: 20 },
  quick: { rounds: 3, perRound: 30, warmup: 5 },
  smoke: { rounds: 2, perRound: 3, warmup: 1 },
};

const clonefd = () => require('../..');

function timeSpawn(engine, options, waitFor) {
  return async () => {
    const t0 = lib.nowUs();
    const p = clonefd().spawn('/bin/true', [], { stdio: 'ignore', engine, ...options });
    const info = await lib.bounded(p[waitFor], lib.CHILD_MS, `${engine} /bin/true (${waitFor})`);
    if (waitFor === 'exited' && info.exitCode !== 0) throw new Error(`/bin/true exited ${info.exitCode}`);
    // With a cgroup and `exited` awaited, the group goes on its own a moment later.
    return { us: lib.nowUs() - t0 };
  };
}

async function run(ctx) {
  try {
    await clonefd().spawn('/bin/true', [], { stdio: 'ignore', cgroup: true }).treeExited;
  } catch (err) {
    return { unavailable: `cgroup: true cannot be used here: ${err.message}` };
  }
  const contenders = {};
  for (const engine of ['helper', 'direct']) {
    contenders[`${engine}`] = timeSpawn(engine, {}, 'exited');
    contenders[`${engine} cgroup (exited)`] = timeSpawn(engine, { cgroup: true }, 'exited');
    contenders[`${engine} cgroup (treeExited)`] = timeSpawn(engine, { cgroup: true }, 'treeExited');
  }
  const s = await lib.interleave(contenders, ctx.counts);
  const rows = {};
  for (const name of Object.keys(contenders)) {
    const plain = name.split(' ')[0];
    rows[name] = {
      medianUs: lib.round(lib.roundMedian(s[name].us)),
      vsPlain: name === plain ? null : lib.round(lib.pairedRatio(s[name].us, s[plain].us), 2),
    };
  }
  return {
    spawnsPerContender: ctx.counts.rounds * ctx.counts.perRound,
    rounds: ctx.counts.rounds,
    contenders: rows,
    medians: Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, v.medianUs])),
    targets: [],
  };
}

function print(r) {
  if (r.unavailable) return console.log(r.unavailable);
  console.log(`/bin/true × ${r.spawnsPerContender} per contender, ${r.rounds} interleaved rounds; cost against the same engine without a cgroup`);
  console.log('');
  lib.printTable(['contender', 'median µs/spawn', 'vs without cgroup'],
    Object.entries(r.contenders).map(([n, v]) => [n, lib.num(v.medianUs), v.vsPlain === null ? '' : lib.x(v.vsPlain)]));
}

module.exports = { name: 'trees', title: 'Process trees (cgroup: true)', counts, run, print };
