#!/usr/bin/env node
// Reads the sanitizer logs of a run (scripts/asan.sh) and decides.
//
// usage: node test/native/check-reports.js LOGDIR HELPER_EXE [--expect-selftest]
//
// Every file in LOGDIR is a log_path output (<prefix>.<pid>) of Node (with
// the addon) or of a helper. Each report is printed. The helper runs from a
// memfd, so its frames read "(/memfd:clonefd-helper (deleted)+0x...)" and
// cannot be symbolized by the runtime: they are symbolized here with
// addr2line against HELPER_EXE (the same bytes as the memfd).
//
// A report is attributed to clonefd when any of its frames is in native/
// (or test/native/), in clonefd.node or in clonefd-helper. Exit status: 1 if
// any report is attributed to clonefd, else 0 (reports in Node or V8 only are
// printed as such; with halt_on_error they also made the workload fail).
// --expect-selftest inverts it: exit 0 only if the helper's positive control
// (test/native/sanitizer_options.c) was reported and attributed.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const [logDir, helperExe, flag] = process.argv.slice(2);
if (!logDir || !helperExe) {
  console.error('usage: node test/native/check-reports.js LOGDIR HELPER_EXE [--expect-selftest]');
  process.exit(2);
}
const selftest = flag === '--expect-selftest';

const OURS = [/\/native\/[\w/]+\.(c|cc|h)\b/, /clonefd\.node/, /clonefd-helper/, /sanitizer_options\.c/];
const MEMFD_FRAME = /\(\/memfd:clonefd-helper \(deleted\)\+(0x[0-9a-f]+)\)/;

function symbolize(text) {
  const lines = text.split('\n');
  const offs = [];
  lines.forEach((l) => {
    const m = MEMFD_FRAME.exec(l);
    if (m) offs.push(m[1]);
  });
  if (offs.length === 0) return text;
  let syms = [];
  try {
    // -i off: one line per address. Offsets are file offsets = vaddrs for a PIE's first segment.
    syms = execFileSync('addr2line', ['-f', '-C', '-e', helperExe, ...offs], { encoding: 'utf8' }).trim().split('\n');
  } catch {
    return text;
  }
  let k = 0;
  return lines
    .map((l) => {
      const m = MEMFD_FRAME.exec(l);
      if (!m) return l;
      const fn = syms[2 * k];
      const loc = syms[2 * k + 1];
      k++;
      return fn && fn !== '??' ? l.replace(MEMFD_FRAME, `in ${fn} ${loc} (clonefd-helper+${m[1]})`) : l;
    })
    .join('\n');
}

/** Splits one log into reports (a log may hold several: UBSan without halt, LSan after ASan). */
function reports(text) {
  const parts = text.split(/\n(?==+\n==\d+==ERROR|\S+:\d+:\d+: runtime error)/);
  return parts.map((p) => p.trim()).filter((p) => /ERROR: |runtime error|WARNING: .*Sanitizer/.test(p));
}

const files = fs.existsSync(logDir) ? fs.readdirSync(logDir).filter((f) => f !== 'selftest').sort() : [];
let ours = 0;
let foreign = 0;
let control = false;
for (const f of files) {
  const raw = fs.readFileSync(path.join(logDir, f), 'utf8');
  for (const r of reports(symbolize(raw))) {
    const frames = r.split('\n').filter((l) => /^\s+#\d+ /.test(l) || /runtime error/.test(l));
    const mine = frames.some((l) => OURS.some((re) => re.test(l)));
    if (/sanitizer_options\.c/.test(r) && /heap-buffer-overflow/.test(r)) control = true;
    if (mine) ours++;
    else foreign++;
    if (!selftest || !control) {
      console.log(`----- ${f}: ${mine ? 'ATTRIBUTED TO CLONEFD' : 'not attributed to clonefd (Node/V8/libc only)'} -----`);
      console.log(r);
      console.log('-----');
    }
  }
}
if (selftest) {
  if (control) {
    console.log('sanitizer self-test: the helper\'s deliberate heap-buffer-overflow was caught, logged and attributed');
    process.exit(0);
  }
  console.error(`sanitizer self-test FAILED: no report from the helper's positive control in ${logDir} (${files.join(', ') || 'no files'})`);
  process.exit(1);
}
console.log(`sanitizer reports: ${ours} attributed to clonefd, ${foreign} elsewhere (${files.length} log files)`);
process.exit(ours > 0 ? 1 : 0);
