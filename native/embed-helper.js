// Build step: turns the compiled helper executable into a C source file,
// so the addon carries the helper inside it and can run it from a memfd on
// machines without a compiler (prebuilt packages).
// usage: node native/embed-helper.js <helper-executable> <output.c>
'use strict';
const fs = require('node:fs');

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: node native/embed-helper.js <helper-executable> <output.c>');
  process.exit(2);
}
const bytes = fs.readFileSync(input);
const lines = [];
for (let i = 0; i < bytes.length; i += 24) lines.push(`  ${Array.from(bytes.subarray(i, i + 24)).join(',')},`);
fs.writeFileSync(
  output,
  `/* Generated from ${require('node:path').basename(input)} by native/embed-helper.js: do not edit. */\n` +
    `__attribute__((visibility("hidden"))) const unsigned char clonefd_helper_blob[] = {\n${lines.join('\n')}\n};\n` +
    `__attribute__((visibility("hidden"))) const unsigned long clonefd_helper_blob_len = ${bytes.length}UL;\n`,
);
