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

// test/shared/: the suites every engine (and clone path) must pass; they
// use the project's default engine (CLONEFD_ENGINE).
const shared = ['test/shared/**/*.test.ts'];

export default defineConfig({
  test: {
    projects: [
      {
        // The default engine, the helper process: every suite.
        test: { ...common, name: 'helper', include: ['test/**/*.test.ts'] },
      },
      {
        test: { ...common, name: 'direct', include: shared, env: { CLONEFD_ENGINE: 'direct' } },
      },
      {
        // The direct engine again, on the legacy clone() path.
        test: { ...common, name: 'legacy-clone', include: shared, env: { CLONEFD_ENGINE: 'direct', CLONEFD_LEGACY_CLONE: '1' } },
      },
    ],
  },
});
