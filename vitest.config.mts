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

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...common,
          name: 'direct',
          include: ['test/**/*.test.ts'],
        },
      },
      {
        // The same contract suites again on the legacy clone() path.
        test: {
          ...common,
          name: 'legacy-clone',
          include: ['test/contract.test.ts', 'test/stdio.test.ts', 'test/errors.test.ts', 'test/exit.test.ts'],
          env: { CLONEFD_LEGACY_CLONE: '1' },
        },
      },
    ],
  },
});
