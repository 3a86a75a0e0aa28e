// [sync] The drop-in's spawnSync('/bin/true') and
// execFileSync('/bin/echo', ['hi']) against Node's, interleaved in rounds.
// Each call blocks the event loop, so one call is one sample.
'use strict';
const cp = require('node:child_process');
const lib = require('../lib');

const counts = {
  full: { rounds: 8, perRound: 60, warmup: 10 },
  quick: { rounds: 3, perRound: 20, warmup: 5 },
  smoke: { rounds: 2, perRound: 3, warmup: 1 },
};

function timed(fn) {
  return () => {
    const t0 = lib.nowUs();
    fn();
    return { us: lib.nowUs() - t0 };
  };
}

function spawnSyncOf(mod, what) {
  return timed(() => {
    const r = mod.spawnSync('/bin/true', [], { timeout: lib.CHILD_MS });
    if (r.error || r.status !== 0) throw new Error(`${what}: ${r.error || `status ${r.status ?? r.signal}`}`);
  });
}

function execFileSyncOf(mod, what) {
  return timed(() => {
    const out = mod.execFileSync('/bin/echo', ['hi'], { encoding: 'utf8', timeout: lib.CHILD_MS });
    if (out !== 'hi\n') throw new Error(`${what} gave ${JSON.stringify(out)}`);
  });
}

async function run(ctx) {
  const c = ctx.counts;
  const dropin = lib.dropin();
  const pairs = [
    ['spawnSync', { 'drop-in spawnSync': spawnSyncOf(dropin, 'drop-in spawnSync'), 'node spawnSync': spawnSyncOf(cp, 'node spawnSync') }],
    ['execFileSync', { 'drop-in execFileSync': execFileSyncOf(dropin, 'drop-in execFileSync'), 'node execFileSync': execFileSyncOf(cp, 'node execFileSync') }],
  ];
  const rows = {};
  const targets = [];
  for (const [fn, contenders] of pairs) {
    const s = await lib.interleave(contenders, c);
    const [ours, theirs] = Object.keys(contenders);
    rows[ours] = { medianUs: lib.round(lib.roundMedian(s[ours].us)), speedupVsNode: lib.round(lib.pairedRatio(s[theirs].us, s[ours].us), 2) };
    rows[theirs] = { medianUs: lib.round(lib.roundMedian(s[theirs].us)), speedupVsNode: null };
    targets.push(lib.target(`drop-in ${fn} vs node's`, rows[ours].speedupVsNode, '>=', 1)); // "no worse than node"
  }
  return {
    callsPerContender: c.rounds * c.perRound,
    rounds: c.rounds,
    contenders: rows,
    medians: Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, v.medianUs])),
    targets,
  };
}

function print(r) {
  console.log(`spawnSync('/bin/true') and execFileSync('/bin/echo', ['hi']) × ${r.callsPerContender} each, ${r.rounds} interleaved rounds`);
  console.log('');
  lib.printTable(['contender', 'median µs/call', 'speed-up vs node'],
    Object.entries(r.contenders).map(([n, v]) => [n, lib.num(v.medianUs), v.speedupVsNode === null ? '' : lib.x(v.speedupVsNode)]));
  lib.printTargets(r.targets);
}

module.exports = { name: 'sync', title: 'Sync', counts, run, print };
