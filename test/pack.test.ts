// The package as a user gets it: `npm pack`, installed from the tarball into
// an empty project with its install script running and PREBUILDS_ONLY=1 (so
// node-gyp-build must find the prebuild and never compiles), then used
// through require('clonefd'), import('clonefd'), 'clonefd/child_process',
// the bin and TypeScript. The prebuild comes from prebuilds/ when it is
// newer than the native sources, else `npm run prebuild` runs in a
// scratch copy of the package (never in this checkout, whose build/ the
// other test files are using) and the result is kept in prebuilds/.
import { execFile, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const tuple = `${process.platform}-${process.arch}`;
const libc = existsSync('/etc/alpine-release') ? 'musl' : 'glibc';
const addonName = `clonefd.${libc}.node`;
const helperName = `clonefd-helper.${libc}`;
const prebuilt = path.join(root, 'prebuilds', tuple);

function run(cmd: string, args: string[], options: SpawnSyncOptions & { what: string }) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  if (r.status !== 0) {
    const tail = (s: unknown) => String(s ?? '').split('\n').slice(-40).join('\n');
    throw new Error(`${options.what} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})\n--- stdout\n${tail(r.stdout)}\n--- stderr\n${tail(r.stderr)}`);
  }
  return { stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** The latest mtime of what a prebuild is made from. */
function sourcesMtime(): number {
  const files = [path.join(root, 'binding.gyp'), path.join(root, 'scripts', 'prebuild.js')];
  for (const name of readdirSync(path.join(root, 'native'))) files.push(path.join(root, 'native', name));
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

function prebuildFresh(): boolean {
  const files = [path.join(prebuilt, addonName), path.join(prebuilt, helperName)];
  if (!files.every((f) => existsSync(f))) return false;
  return Math.min(...files.map((f) => statSync(f).mtimeMs)) >= sourcesMtime();
}

/** `npm run prebuild` in a scratch copy; its prebuilds/<platform-arch> replaces ours. */
function buildPrebuild(scratch: string): void {
  // Stamped with the time the sources were copied: an edit during the build leaves it stale.
  const copied = new Date();
  const dir = path.join(scratch, 'prebuild-src');
  mkdirSync(dir);
  for (const entry of ['package.json', 'binding.gyp', 'native', 'scripts']) cpSync(path.join(root, entry), path.join(dir, entry), { recursive: true });
  symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  run('npm', ['run', 'prebuild'], { cwd: dir, what: 'npm run prebuild', timeout: 240_000 });
  mkdirSync(prebuilt, { recursive: true });
  for (const name of readdirSync(path.join(dir, 'prebuilds', tuple))) {
    copyFileSync(path.join(dir, 'prebuilds', tuple, name), path.join(prebuilt, name));
    chmodSync(path.join(prebuilt, name), 0o755);
    utimesSync(path.join(prebuilt, name), copied, copied);
  }
}

/** The environment for npm and the package in the consumer: none of this run's package or lifecycle variables. */
function consumerEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_(lifecycle_|package_|config_local_prefix$)/.test(k) || /^(CLONEFD_|VITEST|NODE_OPTIONS$)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, PREBUILDS_ONLY: '1', ...extra };
}

// Runs inside the consumer: spawns with each engine and reports who the
// child's parent is (the helper, from a memfd or the packaged file, or Node).
const probeBody = `
const who = async (spawn, engine) => {
  const p = spawn('sh', ['-c', 'readlink /proc/$PPID/exe; exit 7'], { engine, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  for await (const chunk of p.stdout) out += chunk;
  const info = await p.exited;
  return { parent: out.trim(), status: info.status, code: info.code };
};
const node = fs.realpathSync(process.execPath);
`;

const cjsProbe = `'use strict';
const fs = require('node:fs');
const path = require('node:path');
${probeBody}
(async () => {
  const clonefd = require('clonefd');
  const pkgDir = path.dirname(require.resolve('clonefd/package.json'));
  let deep = 'allowed';
  try { require('clonefd/lib/binding.js'); } catch (e) { deep = e.code; }
  const result = {
    node,
    names: Object.keys(clonefd),
    bindingPath: require(path.join(pkgDir, 'lib', 'binding.js')).bindingPath,
    helper: await who(clonefd.spawn, 'helper'),
    direct: await who(clonefd.spawn, 'direct'),
    byDefault: await who(clonefd.spawn, undefined),
    deep,
  };
  if (process.argv.includes('--child_process')) {
    const cp = require('clonefd/child_process');
    const viaExecFile = await new Promise((resolve, reject) =>
      cp.execFile('sh', ['-c', 'readlink /proc/$PPID/exe; echo out; echo err >&2'], (err, stdout, stderr) => (err ? reject(err) : resolve({ stdout, stderr }))),
    );
    const sync = cp.spawnSync('sh', ['-c', 'echo sync; exit 3'], { encoding: 'utf8' });
    result.childProcess = {
      names: Object.keys(cp),
      execFile: viaExecFile,
      spawnSync: { status: sync.status, stdout: sync.stdout },
      execFileSync: cp.execFileSync('echo', ['hi'], { encoding: 'utf8' }),
    };
  }
  console.log(JSON.stringify(result));
})().catch((e) => { console.error(e); process.exit(1); });
`;

const esmProbe = `import fs from 'node:fs';
import { createRequire } from 'node:module';
import * as ns from 'clonefd';
import clonefdDefault, { spawn } from 'clonefd';
${probeBody}
const require = createRequire(import.meta.url);
const cjsNames = Object.keys(require('clonefd')).filter((k) => k !== '__esModule');
const result = {
  node,
  missing: cjsNames.filter((k) => !(k in ns)),
  defaultIsModule: clonefdDefault === require('clonefd'),
  helper: await who(spawn, 'helper'),
  direct: await who(spawn, 'direct'),
};
if (process.argv.includes('--child_process')) {
  const cp = await import('clonefd/child_process');
  const cpNames = Object.keys(require('clonefd/child_process')).filter((k) => k !== '__esModule' && k !== 'default');
  const out = await new Promise((resolve, reject) => cp.execFile('echo', ['esm'], (err, stdout) => (err ? reject(err) : resolve(stdout))));
  result.childProcess = { missing: cpNames.filter((k) => !(k in cp)), execFile: out };
}
console.log(JSON.stringify(result));
`;

function canUnshare(): boolean {
  if (process.getuid?.() !== 0) return false;
  const r = spawnSync('unshare', ['-p', '-f', '--mount-proc', 'sh', '-c', 'sysctl -w vm.memfd_noexec=2 >/dev/null'], { encoding: 'utf8' });
  return r.status === 0;
}

describe('the packed package, installed from its tarball', () => {
  let scratch = '';
  let consumer = '';
  let pkgDir = '';
  let packed: { path: string; mode: number }[] = [];
  let installLog = '';
  let hasChildProcess = false;
  let hasCli = false;

  beforeAll(() => {
    scratch = realpathSync(mkdtempSync(path.join(tmpdir(), 'clonefd-pack-')));
    if (!prebuildFresh()) buildPrebuild(scratch);

    // lib/ is what `npm test`'s pretest built; pack it as it is.
    const { stdout } = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', scratch], { cwd: root, what: 'npm pack', timeout: 120_000 });
    const [info] = JSON.parse(stdout.slice(stdout.indexOf('[')));
    packed = info.files;
    const tarball = path.join(scratch, info.filename);
    hasChildProcess = packed.some((f) => f.path === 'lib/child_process.js');
    hasCli = packed.some((f) => f.path === 'lib/cli.js');

    // An empty project. The install script runs through a logging shell,
    // which proves it ran (npm prints nothing when it succeeds).
    consumer = path.join(scratch, 'consumer');
    mkdirSync(consumer);
    writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, allowScripts: { clonefd: true } }));
    const shell = path.join(scratch, 'logging-sh');
    const log = path.join(scratch, 'scripts.log');
    writeFileSync(shell, `#!/bin/sh\nprintf '%s PREBUILDS_ONLY=%s\\n' "$*" "$PREBUILDS_ONLY" >> "${log}"\nexec /bin/sh "$@"\n`, { mode: 0o755 });
    run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', `--script-shell=${shell}`], {
      cwd: consumer,
      env: consumerEnv(),
      what: 'npm install <tarball>',
      timeout: 180_000,
    });
    installLog = existsSync(log) ? readFileSync(log, 'utf8') : '';
    pkgDir = path.join(consumer, 'node_modules', 'clonefd');
    writeFileSync(path.join(consumer, 'probe.cjs'), cjsProbe);
    writeFileSync(path.join(consumer, 'probe.mjs'), esmProbe);
  }, 420_000);

  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  const probe = (file: string, wrap: string[] = []) => {
    const args = [file, ...(hasChildProcess ? ['--child_process'] : [])];
    const [cmd, ...rest] = wrap.length ? [...wrap, process.execPath, ...args] : [process.execPath, ...args];
    const { stdout, stderr } = run(cmd, rest, { cwd: consumer, env: consumerEnv(), what: `node ${file}`, timeout: 30_000 });
    expect(stderr).toBe('');
    return JSON.parse(stdout);
  };
  const packagedHelper = () => path.join(pkgDir, 'prebuilds', tuple, helperName);
  /** The helper started from the package: its embedded copy in a memfd, or the packaged file. */
  const expectPackagedHelper = (exe: string) => {
    if (!exe.startsWith('/memfd:clonefd-helper')) expect(exe).toBe(packagedHelper());
  };

  it('holds the compiled library, the sources to rebuild and the prebuild with its helper, nothing else', () => {
    const paths = packed.map((f) => f.path);
    for (const p of ['package.json', 'README.md', 'binding.gyp', 'lib/index.js', 'lib/index.d.ts', 'native/addon/addon.cc', 'native/helper.c', 'native/embed-helper.js']) {
      expect(paths).toContain(p);
    }
    // Everything binding.gyp builds from, for machines without a matching prebuild.
    const gypSources = readFileSync(path.join(root, 'binding.gyp'), 'utf8').match(/native\/[\w./-]+\.(?:c|cc|h|js)\b/g) ?? [];
    expect(gypSources.length).toBeGreaterThan(0);
    for (const p of gypSources) expect(paths).toContain(p);
    expect(paths).toContain(`prebuilds/${tuple}/${addonName}`);
    const helper = packed.find((f) => f.path === `prebuilds/${tuple}/${helperName}`);
    expect(helper, 'the helper executable next to the addon').toBeDefined();
    expect(helper!.mode & 0o111).toBe(0o111);
    const unexpected = paths.filter((p) => !/^(package\.json|README\.md|LICENSE|binding\.gyp|lib\/((engines|compat)\/)?[^/]+\.(js|d\.ts)|native\/(addon\/)?[^/]+|prebuilds\/[^/]+\/[^/]+)$/.test(p));
    expect(unexpected).toEqual([]);
  });

  it('installs: its install script runs and finds the prebuild; nothing is compiled', () => {
    expect(installLog).toMatch(/node-gyp-build PREBUILDS_ONLY=1/);
    expect(existsSync(path.join(pkgDir, 'build'))).toBe(false);
    expect(statSync(packagedHelper()).mode & 0o111).toBe(0o111);
  });

  it('require("clonefd"): both engines run; the helper is the package\'s own', () => {
    const r = probe('probe.cjs');
    expect(r.bindingPath).toBe(path.join(pkgDir, 'prebuilds', tuple, addonName));
    expect(r.names).toEqual(expect.arrayContaining(['spawn', 'clonefd', 'ClonefdInfo', 'Subprocess', 'SystemError', 'O_CLOEXEC']));
    for (const engine of ['helper', 'direct', 'byDefault']) expect(r[engine], engine).toMatchObject({ status: 7, code: 1 });
    expectPackagedHelper(r.helper.parent);
    expect(r.byDefault.parent).toBe(r.helper.parent);
    expect(r.direct.parent).toBe(r.node);
    expect(r.deep, 'deep imports are not exported').toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');
  });

  it('import("clonefd"): every export is a named export, the default is the module; both engines run', () => {
    const r = probe('probe.mjs');
    expect(r.missing).toEqual([]);
    expect(r.defaultIsModule).toBe(true);
    expect(r.helper).toMatchObject({ status: 7, code: 1 });
    expect(r.direct).toMatchObject({ status: 7, code: 1 });
    expectPackagedHelper(r.helper.parent);
    expect(r.direct.parent).toBe(r.node);
  });

  it('clonefd/child_process, through require and import', (ctx) => {
    if (!hasChildProcess) return ctx.skip();
    const r = probe('probe.cjs');
    expect(r.childProcess.names).toEqual(expect.arrayContaining(['spawn', 'execFile', 'exec', 'spawnSync', 'execFileSync', 'execSync', 'fork', 'ChildProcess']));
    const [parent, out] = r.childProcess.execFile.stdout.trim().split('\n');
    expectPackagedHelper(parent);
    expect(out).toBe('out');
    expect(r.childProcess.execFile.stderr).toBe('err\n');
    expect(r.childProcess.spawnSync).toEqual({ status: 3, stdout: 'sync\n' });
    expect(r.childProcess.execFileSync).toBe('hi\n');
    const m = probe('probe.mjs');
    expect(m.childProcess).toEqual({ missing: [], execFile: 'esm\n' });
  });

  it.runIf(canUnshare())('where memfds may not be executed, the packaged helper file runs', () => {
    const r = probe('probe.cjs', ['unshare', '-p', '-f', '--mount-proc', 'sh', '-c', 'sysctl -w vm.memfd_noexec=2 >/dev/null && exec "$@"', 'sh']);
    expect(r.helper).toMatchObject({ status: 7, code: 1 });
    expect(r.helper.parent).toBe(packagedHelper());
  });

  it('the clonefd bin', (ctx) => {
    if (!hasCli) return ctx.skip();
    const bin = path.join(consumer, 'node_modules', '.bin', 'clonefd');
    expect(realpathSync(bin)).toBe(path.join(pkgDir, 'lib', 'cli.js'));
    // Through its #! line, with this Node first in PATH.
    const env = consumerEnv({ PATH: `${path.dirname(process.execPath)}:${process.env.PATH}` });
    const r = spawnSync(bin, ['run', '--', 'sh', '-c', 'exit 5'], { cwd: consumer, env, encoding: 'utf8', timeout: 30_000 });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(5);
  });

  it('TypeScript finds the types of both entry points (node16 ESM and CJS, bundler, node10)', async () => {
    const dir = path.join(consumer, 'types');
    mkdirSync(dir);
    const cp = hasChildProcess;
    writeFileSync(
      path.join(dir, 'esm.mts'),
      `import { spawn, clonefd, ClonefdInfo, type Subprocess } from 'clonefd';
import whole from 'clonefd';
const p: Subprocess = spawn('true');
const pid: number = whole.spawn('true').pid + clonefd('true').fd;
const info: Promise<ClonefdInfo> = p.exited;
${cp ? "import { execFile, spawnSync, ChildProcess } from 'clonefd/child_process';\nconst c: ChildProcess = execFile('true');\nconst s: number | null = spawnSync('true').status;" : ''}
export { pid, info${cp ? ', c, s' : ''} };
`,
    );
    writeFileSync(
      path.join(dir, 'cjs.cts'),
      `import clonefd = require('clonefd');
const p: clonefd.Subprocess = clonefd.spawn('true');
${cp ? "import cp = require('clonefd/child_process');\nconst c: cp.ChildProcess = cp.spawn('true');\nexport { c };" : ''}
export { p };
`,
    );
    writeFileSync(
      path.join(dir, 'plain.ts'),
      `import { spawn, type Subprocess } from 'clonefd';
const p: Subprocess = spawn('true');
${cp ? "import { execFileSync } from 'clonefd/child_process';\nconst out: string | Buffer = execFileSync('true');\nexport { out };" : ''}
export { p };
`,
    );
    const base = {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
      typeRoots: [path.join(root, 'node_modules', '@types')],
      lib: ['ES2022', 'ESNext.Disposable'],
      target: 'ES2022',
    };
    const configs = {
      node16: { compilerOptions: { ...base, module: 'node16', moduleResolution: 'node16' }, files: ['esm.mts', 'cjs.cts'] },
      bundler: { compilerOptions: { ...base, module: 'esnext', moduleResolution: 'bundler' }, files: ['plain.ts'] },
      node10: { compilerOptions: { ...base, module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true }, files: ['plain.ts'] },
    };
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const results = await Promise.all(
      Object.entries(configs).map(([name, config]) => {
        writeFileSync(path.join(dir, `tsconfig.${name}.json`), JSON.stringify(config));
        return new Promise<string>((resolve) =>
          execFile(process.execPath, [tsc, '-p', `tsconfig.${name}.json`], { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) =>
            resolve(err ? `tsc (${name}): ${err.message}\n${stdout}${stderr}` : ''),
          ),
        );
      }),
    );
    expect(results.filter(Boolean).join('\n')).toBe('');
  }, 90_000);
});
