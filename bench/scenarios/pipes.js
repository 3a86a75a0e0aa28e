// [pipes] (1) Throughput: `head -c <size> /dev/zero` read through the
// child's stdout pipe to its end, MB/s (10^6 bytes per second), by
// clonefd's spawn with each engine, the drop-in's spawn and node's spawn.
// (2) execFile-style capture of a small output (`/bin/echo hello`) per
// call: the drop-in's execFile against node's, and clonefd's spawn
// collecting stdout itself. Interleaved in rounds.
'use strict';
const cp = require('node:child_process');
const lib = require('../lib');

const MiB = 2 ** 20;
const counts = {
  full: { streamRounds: 2, bytes: 1024 * MiB, captureRounds: 5, perRound: 60, warmup: 5 },
  quick: { streamRounds: 2, bytes: 32 * MiB, captureRounds: 3, perRound: 10, warmup: 3 },
  smoke: { streamRounds: 1, bytes: 4 * MiB, captureRounds: 2, perRound: 3, warmup: 1 },
};

const PIPE_OUT = ['ignore', 'pipe', 'ignore'];

/** Starters of a child with stdout piped: the child object (with .stdout), by contender. */
const pipers = {
  'clonefd spawn (helper)': (file, args) => lib.clonefd().spawn(file, args, { stdio: PIPE_OUT, engine: 'helper' }),
  'clonefd spawn (direct)': (file, args) => lib.clonefd().spawn(file, args, { stdio: PIPE_OUT, engine: 'direct' }),
  'drop-in spawn': (file, args) => lib.dropin().spawn(file, args, { stdio: PIPE_OUT }),
  'node spawn': (file, args) => cp.spawn(file, args, { stdio: PIPE_OUT }),
};
/** The exit promise of a piper's child: a clonefd Subprocess's `exited`, or a ChildProcess's 'exit'. */
const exitOf = (name, child) => (name.startsWith('clonefd') ? lib.coreExit(child) : lib.cpExit(child));

/**
 * Runs `file args` with `name` and reads its stdout to the end: resolves
 * with { bytes, text (first 64 bytes) } once the stream ended and the exit
 * was observed. `keep` keeps the chunks' text (small outputs only).
 */
function readAll(name, file, args, keep) {
  const child = pipers[name](file, args);
  let bytes = 0;
  let text = '';
  const ended = new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      bytes += chunk.length;
      if (keep) text += chunk.toString('latin1');
    });
    child.stdout.once('end', resolve);
    child.stdout.once('error', reject);
  });
  const done = Promise.all([ended, exitOf(name, child)]).then(() => ({ bytes, text }));
  return lib.bounded(done, 120_000, `${name}: ${file} ${args.join(' ')} read to the end`).catch((err) => {
    lib.killChild(child);
    throw err;
  });
}

async function run(ctx) {
  const c = ctx.counts;
  const names = Object.keys(pipers);

  // (1) throughput: one stream per contender per round
  const stream = Object.fromEntries(names.map((n) => [n, async () => {
    const t0 = lib.nowUs();
    const { bytes } = await readAll(n, 'head', ['-c', String(c.bytes), '/dev/zero'], false);
    const s = (lib.nowUs() - t0) / 1e6;
    if (bytes !== c.bytes) throw new Error(`${n}: read ${bytes} bytes of ${c.bytes}`);
    return { mbPerS: bytes / 1e6 / s };
  }]));
  const ss = await lib.interleave(stream, { rounds: c.streamRounds, perRound: 1 });
  const throughput = {};
  for (const n of names) {
    throughput[n] = {
      mbPerS: lib.round(lib.roundMedian(ss[n].mbPerS)),
      vsNode: n === 'node spawn' ? null : lib.round(lib.pairedRatio(ss[n].mbPerS, ss['node spawn'].mbPerS), 2),
    };
  }

  // (2) capture of `hello\n` per call
  const capture = {
    'drop-in execFile': execFileCapture(lib.dropin().execFile),
    'node execFile': execFileCapture(cp.execFile),
    'clonefd spawn (helper), stdout collected': spawnCapture('clonefd spawn (helper)'),
    'clonefd spawn (direct), stdout collected': spawnCapture('clonefd spawn (direct)'),
  };
  const cs = await lib.interleave(capture, { rounds: c.captureRounds, perRound: c.perRound, warmup: c.warmup });
  const perCall = {};
  for (const n of Object.keys(capture)) {
    perCall[n] = {
      medianUs: lib.round(lib.roundMedian(cs[n].us)),
      speedupVsNodeExecFile: n === 'node execFile' ? null : lib.round(lib.pairedRatio(cs['node execFile'].us, cs[n].us), 2),
    };
  }

  const medians = {};
  for (const [n, v] of Object.entries(throughput)) medians[`${n} MB/s`] = v.mbPerS;
  for (const [n, v] of Object.entries(perCall)) medians[`${n} µs/call`] = v.medianUs;
  const targets = [
    ...names.filter((n) => n !== 'node spawn').map((n) => lib.target(`${n} pipe throughput vs node spawn`, throughput[n].vsNode, '>=', 1)),
    lib.target('drop-in execFile capture vs node execFile', perCall['drop-in execFile'].speedupVsNodeExecFile, '>=', 1),
  ];
  return { bytes: c.bytes, streamRounds: c.streamRounds, captureCalls: c.captureRounds * c.perRound, captureRounds: c.captureRounds, throughput, perCall, medians, targets };
}

function execFileCapture(execFile) {
  return async () => {
    const t0 = lib.nowUs();
    const out = await lib.bounded(new Promise((resolve, reject) => {
      execFile('/bin/echo', ['hello'], (err, stdout) => (err ? reject(err) : resolve(stdout)));
    }), lib.CHILD_MS, 'execFile /bin/echo hello');
    if (out !== 'hello\n') throw new Error(`execFile captured ${JSON.stringify(out)}`);
    return { us: lib.nowUs() - t0 };
  };
}

function spawnCapture(name) {
  return async () => {
    const t0 = lib.nowUs();
    const { text } = await readAll(name, '/bin/echo', ['hello'], true);
    if (text !== 'hello\n') throw new Error(`${name} captured ${JSON.stringify(text)}`);
    return { us: lib.nowUs() - t0 };
  };
}

function print(r) {
  console.log(`(1) head -c ${r.bytes} /dev/zero through the child's stdout, read to the end; ${r.streamRounds} interleaved round(s)`);
  console.log('');
  lib.printTable(['contender', 'MB/s', 'vs node spawn'],
    Object.entries(r.throughput).map(([n, v]) => [n, lib.num(v.mbPerS), v.vsNode === null ? '' : lib.x(v.vsNode)]));
  console.log('');
  console.log(`(2) /bin/echo hello, stdout captured, × ${r.captureCalls} per contender; ${r.captureRounds} interleaved rounds`);
  console.log('');
  lib.printTable(['contender', 'median µs/call', 'speed-up vs node execFile'],
    Object.entries(r.perCall).map(([n, v]) => [n, lib.num(v.medianUs), v.speedupVsNodeExecFile === null ? '' : lib.x(v.speedupVsNodeExecFile)]));
  lib.printTargets(r.targets);
}

module.exports = { name: 'pipes', title: 'Pipes', counts, run, print };
