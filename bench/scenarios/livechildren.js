// [livechildren] The per-spawn cost of a /bin/true churn while many idle
// children (`sleep 1000`) stay alive. libuv answers every SIGCHLD by
// trying waitpid() on each child it still has, so node's cost grows with
// the number alive; clonefd watches one pidfd per child and has no such
// scan.
//
// Each contender, at each number of idle children, is a worker subprocess
// of its own (this file with --worker) holding its own idle children: in
// one process the helper's fds (two per child) would be in the fd table
// that the direct engine's and node's children inherit and close at exec,
// and node's handles in the loop clonefd runs in. All the workers are
// alive together and the bench interleaves churn blocks between them, so
// "to none" is a ratio of blocks measured side by side, like "vs node".
// Each worker kills and reaps its idle children (by the handles it holds)
// when told to quit.
'use strict';
const lib = require('../lib');

const counts = {
  full: { rounds: 3, perRound: 50, warmup: 5, levels: [0, 1000, 4000] },
  quick: { rounds: 3, perRound: 10, warmup: 3, levels: [0, 150] },
  smoke: { rounds: 2, perRound: 3, warmup: 1, levels: [0, 20] },
};

const CONTENDERS = ['helper', 'direct', 'node'];

// ---- the worker: one contender, its idle children ---------------------------

const worker = {
  async setup({ name, idle }) {
    const kids = await lib.startIdle(name, idle);
    return { state: { name, kids }, ready: { fds: lib.fdCount() } };
  },
  async teardown(state) {
    if (state) await lib.killAll(state.kids);
  },
  handlers: {
    // n timed /bin/true spawns, one after another
    async churn({ name }, { n }) {
      const samples = [];
      for (let i = 0; i < n; i++) samples.push(await lib.timeSpawn(name, '/bin/true', []));
      return { samples };
    },
  },
};

// ---- the bench side ---------------------------------------------------------

async function run(ctx) {
  const c = ctx.counts;
  const workers = {};
  const leftoverChildren = [];
  const levels = [];
  try {
    const t0 = Date.now();
    for (const idle of c.levels) {
      for (const name of CONTENDERS) {
        workers[`${name} @ ${idle}`] = lib.startWorker(__filename, { name, idle }, { timeoutMs: 120_000 + idle * 30 });
      }
    }
    // Started together: the idle children come up on both CPUs at once; nothing is timed yet.
    const ready = {};
    for (const [key, w] of Object.entries(workers)) ready[key] = await w.ready;
    const startSeconds = lib.round((Date.now() - t0) / 1000, 1);
    const contenders = Object.fromEntries(Object.entries(workers).map(([key, w]) => [key, {
      block: async (n) => (await w.request({ op: 'churn', n })).samples,
    }]));
    const s = await lib.interleave(contenders, c);
    for (const idle of c.levels) {
      const at = (name, i = idle) => s[`${name} @ ${i}`].us;
      levels.push({
        idle,
        startSeconds,
        fds: Object.fromEntries(CONTENDERS.map((n) => [n, ready[`${n} @ ${idle}`].fds])),
        medianUs: Object.fromEntries(CONTENDERS.map((n) => [n, lib.round(lib.roundMedian(at(n)))])),
        ratioToNone: Object.fromEntries(CONTENDERS.map((n) => [n, lib.round(lib.pairedRatio(at(n), at(n, c.levels[0])), 2)])),
        speedupVsNode: Object.fromEntries(CONTENDERS.filter((n) => n !== 'node').map((n) => [n, lib.round(lib.pairedRatio(at('node'), at(n)), 2)])),
      });
    }
  } finally {
    // Every worker reaps its children, whatever happened above.
    const closed = await Promise.allSettled(Object.values(workers).map((w) => w.close()));
    for (const r of closed) if (r.status === 'fulfilled') leftoverChildren.push(...r.value.leftoverChildren);
    const failed = closed.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
  const top = levels[levels.length - 1];
  const targets = ['helper', 'direct'].map((n) => lib.target(`${n} with ${top.idle} idle children to ${n} with none`, top.ratioToNone[n], '<=', 1.3));
  const medians = {};
  for (const l of levels) for (const n of CONTENDERS) medians[`${n} @ ${l.idle} idle`] = l.medianUs[n];
  return { rounds: c.rounds, churnPerContender: c.rounds * c.perRound, levels, medians, targets, leftoverChildren };
}

function print(r) {
  console.log(`/bin/true × ${r.churnPerContender} per contender while its own idle children live (a worker process each, all alive together), ${r.rounds} interleaved rounds`);
  console.log('');
  lib.printTable(
    ['idle children', 'helper µs', 'direct µs', 'node µs', 'helper to none', 'direct to none', 'node to none', 'helper vs node', 'direct vs node'],
    r.levels.map((l) => [
      `${l.idle} each`, lib.num(l.medianUs.helper), lib.num(l.medianUs.direct), lib.num(l.medianUs.node),
      lib.x(l.ratioToNone.helper), lib.x(l.ratioToNone.direct), lib.x(l.ratioToNone.node),
      lib.x(l.speedupVsNode.helper), lib.x(l.speedupVsNode.direct),
    ]),
  );
  const top = r.levels[r.levels.length - 1];
  console.log('  ("to none": this contender\'s time over its time in the worker with no idle children, block by block)');
  console.log(`  (open fds in the workers with ${top.idle}: ${Object.entries(top.fds).map(([n, f]) => `${n} ${f}`).join(', ')}; all ${r.levels.reduce((a, l) => a + l.idle, 0) * 3} idle children started in ${top.startSeconds} s)`);
  lib.printTargets(r.targets);
}

if (require.main === module) lib.workerMain(worker);

module.exports = { name: 'livechildren', title: 'Many live children', counts, run, print };
