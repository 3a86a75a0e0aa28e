// [bigparent] Sequential /bin/true spawns while the parent holds 0 to
// 4 GiB, as Buffers (memory outside V8's heap) and as a JS object heap
// (arrays of small objects). A fork() copies the parent's page tables, so
// node:child_process slows down with the parent's size; a vfork-style
// clone (direct) or a small helper process does not.
//
// Each size runs in a fresh `node` subprocess (this file with --child), so
// that the bench's own process stays small and one size's memory does not
// linger into the next. Within a subprocess the contenders are
// interleaved; node gets fewer spawns per round at big sizes (each one
// costs tens of milliseconds there).
'use strict';
const v8 = require('node:v8');
const lib = require('../lib');

const counts = {
  full: { rounds: 6, perRound: 40, warmup: 3, sizes: [256, 1024, 4096], kinds: ['buffers', 'objects'] },
  quick: { rounds: 4, perRound: 20, warmup: 3, sizes: [256], kinds: ['buffers'] },
  smoke: { rounds: 2, perRound: 3, warmup: 1, sizes: [16], kinds: ['buffers', 'objects'] },
};

const ENGINES = ['helper', 'direct'];
const CONTENDERS = [...ENGINES, 'node'];

/** node's spawns per round at `mib`: about constant time per round, at least 2. */
function nodePerRound(perRound, mib) {
  return Math.max(2, Math.round(perRound / (1 + mib / 64)));
}

// ---- the subprocess: hold the memory, measure ------------------------------

/** Keeps `mib` MiB alive as 1 MiB Buffers, every page written (resident). */
function holdBuffers(mib) {
  const held = [];
  for (let i = 0; i < mib; i++) held.push(Buffer.alloc(1 << 20, i & 0xff));
  return held;
}

/** Keeps about `mib` MiB of V8 heap alive as arrays of small objects. */
function holdObjects(mib) {
  const held = [];
  const chunk = (base) => {
    const a = new Array(4096);
    for (let j = 0; j < 4096; j++) a[j] = { i: base + j, n: j };
    return a;
  };
  for (let c = 0; v8.getHeapStatistics().used_heap_size < mib * 2 ** 20; c++) {
    for (let k = 0; k < 64; k++) held.push(chunk((c * 64 + k) * 4096));
  }
  return held;
}

async function child({ kind, mib, rounds, perRound, warmup }) {
  const held = mib === 0 ? [] : kind === 'buffers' ? holdBuffers(mib) : holdObjects(mib);
  const contenders = Object.fromEntries(CONTENDERS.map((name) => [name, () => lib.timeSpawn(name, '/bin/true', [])]));
  const samples = await lib.interleave(contenders, {
    rounds,
    warmup,
    perRound: { helper: perRound, direct: perRound, node: nodePerRound(perRound, mib) },
  });
  const mem = process.memoryUsage();
  const out = {
    rssMiB: Math.round(mem.rss / 2 ** 20),
    heapUsedMiB: Math.round(mem.heapUsed / 2 ** 20),
    spawns: Object.fromEntries(CONTENDERS.map((n) => [n, samples[n].us.flat().length])),
    medianUs: Object.fromEntries(CONTENDERS.map((n) => [n, lib.round(lib.roundMedian(samples[n].us))])),
    speedupVsNode: Object.fromEntries(ENGINES.map((n) => [n, lib.round(lib.pairedRatio(samples.node.us, samples[n].us), 2)])),
  };
  void held; // held until here, through every measurement
  return out;
}

// ---- the bench side ---------------------------------------------------------

async function run(ctx) {
  const c = ctx.counts;
  // One run at 0 serves both kinds; then each kind at each size.
  const configs = [{ kind: 'none', mib: 0 }];
  for (const kind of c.kinds) for (const mib of c.sizes) configs.push({ kind, mib });
  const sizes = [];
  for (const { kind, mib } of configs) {
    // Room for the object heap (V8 refuses to grow past its limit), with margin.
    const execArgv = kind === 'objects' ? [`--max-old-space-size=${Math.ceil(mib * 1.5) + 512}`] : [];
    const r = await lib.runChild(__filename, { kind, mib, rounds: c.rounds, perRound: c.perRound, warmup: c.warmup }, {
      execArgv,
      timeoutMs: 120_000 + mib * 60, // allocating 4 GiB takes tens of seconds on a slow VM
    });
    sizes.push({ kind, mib, ...r });
  }
  const zero = sizes[0];
  for (const s of sizes) {
    // Across subprocesses (same run, minutes apart at most): not interleaved.
    s.ratioToZero = Object.fromEntries(ENGINES.map((n) => [n, lib.round(s.medianUs[n] / zero.medianUs[n], 2)]));
  }
  const targets = [];
  for (const s of sizes) {
    for (const n of ENGINES) {
      if (s.mib === 1024) targets.push(lib.target(`${n} at 1 GiB of ${s.kind} vs node`, s.speedupVsNode[n], '>=', 30));
      if (s.mib === 4096) targets.push(lib.target(`${n} at 4 GiB of ${s.kind} to ${n} at 0`, s.ratioToZero[n], '<=', 1.15));
    }
  }
  const leftoverChildren = sizes.flatMap((s) => s.leftoverChildren);
  const medians = {};
  for (const s of sizes) for (const n of CONTENDERS) medians[`${n} @ ${s.kind} ${s.mib} MiB`] = s.medianUs[n];
  return { rounds: c.rounds, sizes, medians, targets, leftoverChildren };
}

function print(r) {
  console.log(`/bin/true one after another while the parent holds memory (each size in a fresh node), ${r.rounds} interleaved rounds`);
  console.log('');
  lib.printTable(
    ['parent holds', 'RSS MiB', 'helper µs', 'direct µs', 'node µs (n)', 'helper vs node', 'direct vs node', 'helper to 0', 'direct to 0'],
    r.sizes.map((s) => [
      s.mib === 0 ? 'nothing' : `${s.mib} MiB ${s.kind}`, s.rssMiB,
      lib.num(s.medianUs.helper), lib.num(s.medianUs.direct), `${lib.num(s.medianUs.node)} (${s.spawns.node})`,
      lib.x(s.speedupVsNode.helper, 1), lib.x(s.speedupVsNode.direct, 1),
      lib.x(s.ratioToZero.helper), lib.x(s.ratioToZero.direct),
    ]),
  );
  console.log('  (n: node\'s spawns, fewer at big sizes; "to 0": this engine\'s median over its median at nothing, across subprocesses)');
  lib.printTargets(r.targets);
}

if (require.main === module) lib.childMain(child);

module.exports = { name: 'bigparent', title: 'Big parent', counts, run, print };
