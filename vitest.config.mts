import { defineConfig } from 'vitest/config';

// Native addon + processes: every test file runs in its own forked process
// (never the threads pool), one file at a time per fork, so fd and zombie
// counts in a file only see that file's children.
const common = {
  pool: 'forks' as const,
  execArgv: ['--expose-gc'],
  testTimeout: 30_000,
  hookTimeout: 30_000,
};

// The suites that every engine must pass.
const shared = [
  'test/contract.test.ts',
  'test/exit.test.ts',
  'test/stdio.test.ts',
  'test/errors.test.ts',
  'test/lifecycle.test.ts',
  'test/coexist.test.ts',
];

export default defineConfig({
  test: {
    projects: [
      {
        // The default engine: the helper process.
        test: { ...common, name: 'helper', include: ['test/**/*.test.ts'] },
      },
      {
        test: { ...common, name: 'direct', include: shared, env: { CLONEFD_ENGINE: 'direct' } },
      },
      {
        // The direct engine again, on the legacy clone() path.
        test: {
          ...common,
          name: 'legacy-clone',
          include: ['test/contract.test.ts', 'test/stdio.test.ts', 'test/errors.test.ts', 'test/exit.test.ts'],
          env: { CLONEFD_ENGINE: 'direct', CLONEFD_LEGACY_CLONE: '1' },
        },
      },
    ],
  },
});
