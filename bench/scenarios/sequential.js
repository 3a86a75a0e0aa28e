// [sequential] /bin/true spawned and awaited one after another, stdio
// ignored: clonefd's spawn with each engine, the drop-in's spawn and
// execFile (default engine), node:child_process's spawn and execFile, and
// the C floor, interleaved in rounds.
'use strict';
const cp = require('node:child_process');
const lib = require('../lib');

const counts = {
  full: { rounds: 6, perRound: 120, warmup: 20 },
  quick: { rounds: 3, perRound: 30, warmup: 5 },
  smoke: { rounds: 2, perRound: 5, warmup: 2 },
};

/** One /bin/true through an execFile-style function, until its callback. */
function timeExecFile(execFile, what) {
  return async () => {
    const t0 = lib.nowUs();
    let t1;
    const done = new Promise((resolve, reject) => {
      execFile('/bin/true', [], (err) => (err ? reject(err) : resolve()));
      t1 = lib.nowUs();
    });
    await lib.bounded(done, lib.CHILD_MS, `${what}: /bin/true`);
    return { us: lib.nowUs() - t0, callUs: t1 - t0 };
  };
}

// Every contender but the floor, and the Node function it is compared with.
const PEER = {
  'clonefd spawn (helper)': 'node spawn',
  'clonefd spawn (direct)': 'node spawn',
  'drop-in spawn': 'node spawn',
  'drop-in execFile': 'node execFile',
  'node spawn': null,
  'node execFile': null,
};

// The issue's targets: [contender, at least this many times node's speed, at most this × the floor]
const TARGETS = [
  ['clonefd spawn (helper)', 2, 1.25],
  ['clonefd spawn (direct)', 2.5, 1.1],
  ['drop-in spawn', 2, null],
  ['drop-in execFile', 2, null],
];

async function run(ctx) {
  const c = ctx.counts;
  const contenders = {
    'clonefd spawn (helper)': () => lib.timeSpawn('helper', '/bin/true', []),
    'clonefd spawn (direct)': () => lib.timeSpawn('direct', '/bin/true', []),
    'drop-in spawn': () => lib.timeSpawn('drop-in', '/bin/true', []),
    'drop-in execFile': timeExecFile(lib.dropin().execFile, 'drop-in execFile'),
    'node spawn': () => lib.timeSpawn('node', '/bin/true', []),
    'node execFile': timeExecFile(cp.execFile, 'node execFile'),
  };
  if (ctx.floor.bin) contenders['C floor'] = { block: (n) => lib.runFloor(ctx.floor.bin, n).map((us) => ({ us })) };
  const samples = await lib.interleave(contenders, c);

  const rows = {};
  for (const [name, m] of Object.entries(samples)) {
    const peer = PEER[name];
    rows[name] = {
      medianUs: lib.round(lib.roundMedian(m.us)),
      p90Us: lib.round(lib.quantile(m.us.flat(), 0.9)),
      spawnCallUs: m.callUs ? lib.round(lib.roundMedian(m.callUs)) : null,
      // speed-up: node's time / this one's, round by round
      speedupVsNode: peer ? lib.round(lib.pairedRatio(samples[peer].us, m.us), 2) : null,
      vsNode: peer,
      ratioToFloor: samples['C floor'] && name !== 'C floor' ? lib.round(lib.pairedRatio(m.us, samples['C floor'].us), 2) : null,
    };
  }
  const targets = [];
  for (const [name, faster, floorLimit] of TARGETS) {
    targets.push(lib.target(`${name} vs ${PEER[name]}`, rows[name].speedupVsNode, '>=', faster));
    if (floorLimit !== null) targets.push(lib.target(`${name} to the C floor`, rows[name].ratioToFloor ?? NaN, '<=', floorLimit));
  }
  return {
    spawnsPerContender: c.rounds * c.perRound,
    rounds: c.rounds,
    floor: ctx.floor.unavailable ? `floor unavailable: ${ctx.floor.unavailable}` : 'measured',
    contenders: rows,
    medians: Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, v.medianUs])),
    targets,
  };
}

function print(r) {
  console.log(`/bin/true × ${r.spawnsPerContender} per contender, one after another, stdio ignored, ${r.rounds} interleaved rounds${r.floor === 'measured' ? '' : `; ${r.floor}`}`);
  console.log('');
  lib.printTable(
    ['contender', 'median µs', 'p90 µs', 'spawn call µs', 'speed-up vs node', 'vs C floor'],
    Object.entries(r.contenders).map(([name, v]) => [
      name, lib.num(v.medianUs), lib.num(v.p90Us), v.spawnCallUs === null ? '' : lib.num(v.spawnCallUs),
      v.vsNode ? `${lib.x(v.speedupVsNode)} (${v.vsNode})` : '', v.ratioToFloor === null ? '' : lib.x(v.ratioToFloor),
    ]),
  );
  lib.printTargets(r.targets);
}

module.exports = { name: 'sequential', usesFloor: true, title: 'Sequential spawns', counts, run, print };
