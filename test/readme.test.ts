// The README's examples are runnable: each ```js block runs as an ES module
// against this checkout (lib/, built by `npm test`'s pretest) and exits 0.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
// ```js blocks are ES modules, ```cjs blocks CommonJS.
const blocks = [...readme.matchAll(/```(js|cjs)\n([\s\S]*?)```/g)].map((m) => ({ kind: m[1], code: m[2] }));

describe('README examples', () => {
  it('has examples', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(3);
  });

  it.each(blocks.map((b, i) => [i + 1, b.kind, b.code]))('example %i (%s) runs', (_n, kind, code) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'clonefd-readme-'));
    try {
      const file = path.join(dir, kind === 'cjs' ? 'example.cjs' : 'example.mjs');
      const lib = JSON.stringify(path.join(root, 'lib', 'index.js'));
      const dropin = JSON.stringify(path.join(root, 'lib', 'child_process.js'));
      const source = (code as string)
        .replaceAll("'clonefd/child_process'", dropin)
        .replaceAll("'clonefd'", lib);
      writeFileSync(file, source);
      const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 20_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
