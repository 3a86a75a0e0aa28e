#!/usr/bin/env node
// The benchmark suite (issue 11): clonefd against node:child_process and a
// C floor, scenario by scenario, every figure a ratio against a peer
// measured in the same run, interleaved in rounds (A B A B ...), medians
// of the rounds. Not a test: the numbers depend on the machine and its load.
//
//   npm run bench                          every scenario (under 10 minutes on 2 cores)
//   npm run bench -- --quick               smaller counts (under 30 s)
//   npm run bench -- --only sequential,pipes
//   npm run bench -- --json                the results as JSON on stdout, no tables
//   node bench/run.js --smoke --json       tiny counts, for test/bench-smoke.test.ts
//
// Every run writes bench/results/<time>.json (git-ignored; --results DIR
// writes it into DIR instead, as the smoke test does) and ends by
// checking that no child other than clonefd's helper is left; it exits
// non-zero if one is, or if a scenario failed (the others still run).
'use strict';
const path = require('node:path');
const lib = require('./lib');

// In the order they run; names are --only's.
const SCENARIOS = ['floor', 'sequential', 'bigparent', 'livechildren', 'concurrency', 'burst', 'pipes', 'memory', 'sync', 'fork', 'trees'];

function usage(message) {
  if (message) console.error(`bench: ${message}`);
  console.error(`usage: node bench/run.js [--quick | --smoke] [--only ${SCENARIOS.join('|')}[,...]] [--json] [--results DIR]`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { mode: 'full', only: SCENARIOS, json: false, resultsDir: path.join(__dirname, 'results') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.mode = 'quick';
    else if (a === '--smoke') opts.mode = 'smoke';
    else if (a === '--json') opts.json = true;
    else if (a === '--results') {
      if (!argv[i + 1]) usage('--results needs a directory');
      opts.resultsDir = path.resolve(argv[++i]);
    }
    else if (a === '--only') {
      const names = String(argv[++i] ?? '').split(',').filter(Boolean);
      const unknown = names.filter((n) => !SCENARIOS.includes(n));
      if (names.length === 0 || unknown.length) usage(`unknown scenario ${unknown.join(', ') || '(none given)'}`);
      opts.only = SCENARIOS.filter((n) => names.includes(n)); // in run order
    } else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  try {
    lib.clonefd();
    lib.dropin();
  } catch (err) {
    console.error(`bench: cannot load clonefd from lib/ (${err.message}); build it first: npm install (or npm run compile)`);
    process.exit(2);
  }
  const log = opts.json ? () => {} : console.log;
  const started = Date.now();
  const machine = lib.machineInfo();
  const result = { mode: opts.mode, startedAt: new Date(started).toISOString(), machine, scenarios: {}, failed: [] };

  log(`clonefd benchmark (${opts.mode} run${opts.only.length < SCENARIOS.length ? `, only ${opts.only.join(',')}` : ''})`);
  log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.ramGiB} GiB RAM; load ${machine.loadAvg.join(' ')}`);
  log(`Node ${machine.node}, Linux ${machine.kernel}`);
  log('figures: medians of the rounds\' medians; ratios: medians of the ratios within each round (interleaved A B A B ...)');

  // The floor binary is built once, into a temp dir removed at the end.
  // A scenario that measures the floor beside its contenders says so (usesFloor).
  const usesFloor = opts.only.some((name) => require(`./scenarios/${name}.js`).usesFloor);
  const floor = usesFloor ? lib.buildFloor() : { unavailable: 'not needed' };
  try {
    for (const name of opts.only) {
      const scenario = require(`./scenarios/${name}.js`);
      log('');
      log(`== [${name}] ${scenario.title} ==`);
      const t0 = Date.now();
      try {
        const r = await scenario.run({ mode: opts.mode, counts: scenario.counts[opts.mode], floor });
        r.seconds = lib.round((Date.now() - t0) / 1000, 1);
        result.scenarios[name] = r;
        if (!opts.json) {
          scenario.print(r);
          log(`  (${r.seconds} s)`);
        }
      } catch (err) {
        // A failed scenario is reported and the next one runs.
        result.scenarios[name] = { error: String(err && err.stack || err), seconds: lib.round((Date.now() - t0) / 1000, 1) };
        result.failed.push(name);
        log(`  FAILED: ${err && err.stack || err}`);
      }
    }
  } finally {
    floor.dispose?.();
  }

  // Let the last exits be reaped before looking; scenarios run in a
  // subprocess report theirs in their results (orphans are not ours).
  await lib.sleep(100);
  result.leftoverChildren = lib.leftoverChildren();
  for (const [name, r] of Object.entries(result.scenarios)) {
    for (const k of r.leftoverChildren ?? []) result.leftoverChildren.push([...k, `in ${name}'s subprocess`]);
  }
  const targets = Object.values(result.scenarios).flatMap((r) => r.targets ?? []);
  result.targetsMet = targets.filter((t) => t.ok).length;
  result.targetsMissed = targets.filter((t) => !t.ok).map((t) => t.what);
  // Missed where even the C floor misses: the machine's limit, not ours.
  result.targetsOutOfReach = targets.filter((t) => !t.ok && t.reachable === false).map((t) => t.what);
  result.wallSeconds = lib.round((Date.now() - started) / 1000, 1);
  const file = lib.writeResults(opts.resultsDir, result);
  if (result.failed.length || result.leftoverChildren.length) process.exitCode = 1;

  if (opts.json) {
    console.log(JSON.stringify(result));
    return;
  }
  log('');
  log('== summary ==');
  log(`  targets: ${result.targetsMet} of ${targets.length} met${result.targetsMissed.length ? `; missed: ${result.targetsMissed.join('; ')}` : ''}`);
  if (result.targetsOutOfReach.length) log(`  out of reach on this machine (the C floor misses them too): ${result.targetsOutOfReach.join('; ')}`);
  log(`  failed scenarios: ${result.failed.length ? result.failed.join(', ') : 'none'}`);
  log(`  children left behind: ${result.leftoverChildren.length ? result.leftoverChildren.map((k) => k.join(' ')).join(', ') : 'none'}`);
  log(`  wall time: ${result.wallSeconds} s`);
  log(`  results: ${path.relative(process.cwd(), file)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
