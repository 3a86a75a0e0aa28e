#!/usr/bin/env node
// Prints the one summary line CI reads, "N passed, N failed, N skipped",
// from vitest's JSON report(s). Exits 1 when anything failed or a report
// is missing. usage: node .ci/summary.js report.json [more.json...]
'use strict';
const fs = require('node:fs');

let passed = 0;
let failed = 0;
let skipped = 0;
let broken = false;
for (const file of process.argv.slice(2)) {
  let report;
  try {
    report = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    console.error(`summary: cannot read ${file}: ${err.message}`);
    broken = true;
    failed += 1;
    continue;
  }
  passed += report.numPassedTests;
  skipped += report.numPendingTests + (report.numTodoTests || 0);
  // A file that fails outside any test (a hook, an import) counts too.
  const fileFailures = report.testResults.filter(
    (r) => r.status === 'failed' && r.assertionResults.every((a) => a.status !== 'failed'),
  ).length;
  failed += report.numFailedTests + fileFailures;
  if (!report.success && report.numFailedTests + fileFailures === 0) failed += 1;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || broken ? 1 : 0);
