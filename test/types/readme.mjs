// Writes the README's examples into test/types/esm/readme/ (gitignored) for
// `npm run test:types`: each ```ts block as a TypeScript module (.mts), each
// ```js block as an ES module (.mjs) and each ```cjs block as CommonJS
// (.cjs), both checked as JavaScript (checkJs), all importing 'clonefd' and
// 'clonefd/child_process' as a user would.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const readme = readFileSync(path.join(here, '..', '..', 'README.md'), 'utf8');
const out = path.join(here, 'esm', 'readme');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
let n = 0;
for (const m of readme.matchAll(/```(ts|js|cjs)\n([\s\S]*?)```/g)) {
  n++;
  const ext = { ts: 'mts', js: 'mjs', cjs: 'cjs' }[m[1]];
  // `export {}`: a block with only imports is still a module of its own.
  const end = m[1] === 'cjs' ? '' : 'export {};\n';
  writeFileSync(path.join(out, `example-${n}.${ext}`), `// README.md, example ${n} (\`\`\`${m[1]})\n${m[2]}\n${end}`);
}
if (n < 3) throw new Error(`README.md: only ${n} examples found`);
