// [bigparent] Sequential /bin/true spawns while the parent holds 0 to
// 4 GiB, as Buffers (memory outside V8's heap) and as a JS object heap
// (arrays of small objects). A fork() copies the parent's page tables, so
// node:child_process slows down with the parent's size; a vfork-style
// clone (direct) or a small helper process does not.
//
// Each size is a worker subprocess (this file with --worker) holding that
// much, so that the bench's own process stays small; for each kind the
// workers of every size (0 included) are alive together and the bench
// interleaves spawn blocks between all of them, so that both "vs node" and
// "to the same engine at 0" are ratios of blocks measured side by side.
// node gets fewer spawns per block at big sizes (each one costs tens of
// milliseconds there).
'use strict';
const v8 = require('node:v8');
const lib = require('../lib');

const counts = {
  full: { rounds: 4, perRound: 30, warmup: 3, sizes: [256, 1024, 4096], kinds: ['buffers', 'objects'] },
  quick: { rounds: 3, perRound: 10, warmup: 3, sizes: [256], kinds: ['buffers'] },
  smoke: { rounds: 2, perRound: 3, warmup: 1, sizes: [16], kinds: ['buffers', 'objects'] },
};

const ENGINES = ['helper', 'direct'];
const CONTENDERS = [...ENGINES, 'node'];

/** node's spawns per block at `mib`: about constant time per block, at least 2. */
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

// The worker: holds the memory, spawns on request.
const worker = {
  async setup({ kind, mib }) {
    const held = mib === 0 ? [] : kind === 'buffers' ? holdBuffers(mib) : holdObjects(mib);
    const mem = process.memoryUsage();
    return { state: { held }, ready: { rssMiB: Math.round(mem.rss / 2 ** 20) } };
  },
  async teardown() {},
  handlers: {
    // n timed /bin/true spawns by contender `name`, one after another
    async spawn(state, { name, n }) {
      const samples = [];
      for (let i = 0; i < n; i++) samples.push(await lib.timeSpawn(name, '/bin/true', []));
      return { samples };
    },
  },
};

// ---- the bench side ---------------------------------------------------------

async function run(ctx) {
  const c = ctx.counts;
  const sizes = [];
  const leftoverChildren = [];
  const floorUs = {}; // the C floor's median, by kind's run
  for (const kind of c.kinds) {
    const mibs = [0, ...c.sizes];
    const workers = {};
    try {
      for (const mib of mibs) {
        // Room for the object heap (V8 refuses to grow past its limit), with margin.
        const execArgv = kind === 'objects' ? [`--max-old-space-size=${Math.ceil(mib * 1.5) + 512}`] : [];
        // Allocating 4 GiB takes tens of seconds on a slow VM.
        workers[mib] = lib.startWorker(__filename, { kind, mib }, { execArgv, timeoutMs: 120_000 + mib * 60 });
      }
      const ready = {};
      for (const mib of mibs) ready[mib] = await workers[mib].ready; // allocated in parallel, not timed
      const contenders = {};
      const perRound = {};
      for (const mib of mibs) {
        for (const name of CONTENDERS) {
          const key = `${name} @ ${mib}`;
          perRound[key] = name === 'node' ? nodePerRound(c.perRound, mib) : c.perRound;
          contenders[key] = { block: async (n) => (await workers[mib].request({ op: 'spawn', name, n })).samples };
        }
      }
      // The C floor beside them (its own small process: parent memory is
      // not its cost): node's time over it is the most any spawner could
      // be faster than node at that size on this machine.
      if (ctx.floor.bin) {
        contenders['C floor'] = { block: (n) => lib.runFloor(ctx.floor.bin, n).map((us) => ({ us })) };
        perRound['C floor'] = c.perRound;
      }
      const s = await lib.interleave(contenders, { rounds: c.rounds, perRound, warmup: c.warmup });
      for (const mib of mibs) {
        const at = (name, m = mib) => s[`${name} @ ${m}`].us;
        sizes.push({
          kind,
          mib,
          rssMiB: ready[mib].rssMiB,
          spawns: Object.fromEntries(CONTENDERS.map((n) => [n, at(n).flat().length])),
          medianUs: Object.fromEntries(CONTENDERS.map((n) => [n, lib.round(lib.roundMedian(at(n)))])),
          speedupVsNode: Object.fromEntries(ENGINES.map((n) => [n, lib.round(lib.pairedRatio(at('node'), at(n)), 2)])),
          ratioToZero: Object.fromEntries(ENGINES.map((n) => [n, lib.round(lib.pairedRatio(at(n), at(n, 0)), 2)])),
          floorVsNode: s['C floor'] ? lib.round(lib.pairedRatio(at('node'), s['C floor'].us), 2) : null,
        });
      }
      if (s['C floor']) floorUs[kind] = lib.round(lib.roundMedian(s['C floor'].us));
    } finally {
      const closed = await Promise.allSettled(Object.values(workers).map((w) => w.close()));
      for (const r of closed) if (r.status === 'fulfilled') leftoverChildren.push(...r.value.leftoverChildren);
      const failed = closed.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    }
  }
  const targets = [];
  for (const s of sizes) {
    for (const n of ENGINES) {
      if (s.mib === 1024) targets.push(lib.target(`${n} at 1 GiB of ${s.kind} vs node`, s.speedupVsNode[n], '>=', 30, s.floorVsNode ?? undefined));
      if (s.mib === 4096) targets.push(lib.target(`${n} at 4 GiB of ${s.kind} to ${n} at 0`, s.ratioToZero[n], '<=', 1.15));
    }
  }
  const medians = {};
  for (const s of sizes) for (const n of CONTENDERS) medians[`${n} @ ${s.kind} ${s.mib} MiB`] = s.medianUs[n];
  for (const [kind, us] of Object.entries(floorUs)) medians[`C floor @ ${kind} run`] = us;
  return { rounds: c.rounds, floor: ctx.floor.unavailable ? `floor unavailable: ${ctx.floor.unavailable}` : 'measured', sizes, medians, targets, leftoverChildren };
}

function print(r) {
  console.log(`/bin/true one after another while the parent holds memory (a worker process per size), ${r.rounds} interleaved rounds`);
  console.log('');
  lib.printTable(
    ['parent holds', 'RSS MiB', 'helper µs', 'direct µs', 'node µs (n)', 'helper vs node', 'direct vs node', 'C floor vs node', 'helper to 0', 'direct to 0'],
    r.sizes.map((s) => [
      s.mib === 0 ? `nothing (${s.kind} run)` : `${s.mib} MiB ${s.kind}`, s.rssMiB,
      lib.num(s.medianUs.helper), lib.num(s.medianUs.direct), `${lib.num(s.medianUs.node)} (${s.spawns.node})`,
      lib.x(s.speedupVsNode.helper, 1), lib.x(s.speedupVsNode.direct, 1), s.floorVsNode === null ? '' : lib.x(s.floorVsNode, 1),
      lib.x(s.ratioToZero.helper), lib.x(s.ratioToZero.direct),
    ]),
  );
  console.log('  (n: node\'s spawns, fewer at big sizes; "to 0": this engine\'s time over its time in the worker holding nothing, block by block;');
  console.log(`   "C floor vs node": node's time over the C floor's, the most any spawner could gain at that size${r.floor === 'measured' ? '' : `; ${r.floor}`})`);
  lib.printTargets(r.targets);
}

if (require.main === module) lib.workerMain(worker);
module.exports = { name: 'bigparent', title: 'Big parent', counts, usesFloor: true, run, print };
