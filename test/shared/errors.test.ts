// Bad input and failed execs: typed errors, nothing spawned or leaked.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, clonefd, SystemError } from '../../src/index';
import { fdCount, liveChildren, useLeakCheck, zombieChildren } from '../helpers';

let dir = '';
beforeAll(() => void (dir = mkdtempSync(path.join(tmpdir(), 'clonefd-errors-'))));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const leaks = useLeakCheck();

function nothingLeft(): void {
  expect(zombieChildren()).toEqual([]);
  expect(liveChildren()).toEqual([]);
  expect(fdCount(), leaks.report()).toBe(leaks.baseline);
}

describe('exec errors are SystemErrors, and leave nothing behind', () => {
  it('ENOENT', () => {
    let err: SystemError | undefined;
    try {
      spawn('/nonexistent/program', ['a', 'b']);
    } catch (e) {
      err = e as SystemError;
    }
    expect(err).toBeInstanceOf(SystemError);
    expect(err).toMatchObject({
      code: 'ENOENT',
      errno: -2,
      syscall: 'spawn /nonexistent/program',
      path: '/nonexistent/program',
      spawnargs: ['a', 'b'],
      message: 'spawn /nonexistent/program ENOENT',
    });
    nothingLeft();
  });

  it('ENOENT through a PATH search', () => {
    expect(() => spawn('clonefd-no-such-program')).toThrow(expect.objectContaining({ code: 'ENOENT', path: 'clonefd-no-such-program' }));
    nothingLeft();
  });

  it('EACCES: a file without the execute bit', () => {
    const file = path.join(dir, 'noexec');
    writeFileSync(file, '#!/bin/sh\nexit 0\n');
    chmodSync(file, 0o644);
    expect(() => spawn(file)).toThrow(expect.objectContaining({ code: 'EACCES', errno: -13, path: file }));
    nothingLeft();
  });

  it('EACCES: a directory', () => {
    expect(() => spawn(dir)).toThrow(expect.objectContaining({ code: 'EACCES', syscall: `spawn ${dir}` }));
    nothingLeft();
  });

  it('ENOEXEC: an executable file without a #! line', () => {
    const file = path.join(dir, 'noshebang');
    writeFileSync(file, 'echo hi\n');
    chmodSync(file, 0o755);
    expect(() => spawn(file)).toThrow(expect.objectContaining({ code: 'ENOEXEC', errno: -8 }));
    nothingLeft();
  });

  it('a missing cwd says so', () => {
    expect(() => spawn('/bin/true', [], { cwd: path.join(dir, 'missing') })).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('cwd') }),
    );
    nothingLeft();
  });

  it('a bad stdio fd is EBADF', () => {
    expect(() => spawn('/bin/true', [], { stdio: ['ignore', 987654, 'ignore'] })).toThrow(expect.objectContaining({ code: 'EBADF' }));
    nothingLeft();
  });

  it('a just-closed fd number in stdio is EBADF, never some other fd that took its place', async () => {
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync('/dev/null', 'r');
    closeSync(fd);
    expect(() => spawn('/bin/true', [], { stdio: ['ignore', 'ignore', 'ignore', fd] })).toThrow(
      expect.objectContaining({ code: 'EBADF', message: expect.stringContaining(`fd ${fd}`) }),
    );
    nothingLeft();
  });

  it('many failures in a row leak nothing', () => {
    for (let i = 0; i < 200; i++) expect(() => spawn('/nonexistent', [], { stdio: 'pipe' })).toThrow();
    nothingLeft();
  });

  it.runIf(process.getuid?.() === 0)('a failed setuid is reported', async () => {
    // Root's setuid cannot fail for a valid id, so run a Node as nobody
    // that asks clonefd for uid 0: the child's setuid fails with EPERM.
    const { execFileSync } = await import('node:child_process');
    const script = `const {spawn}=require(${JSON.stringify(path.resolve(__dirname, '..', '..'))});try{spawn('/bin/true',[],{uid:0,stdio:'ignore'});console.log('spawned')}catch(e){console.log(e.code)}`;
    const out = execFileSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
    expect(out.trim()).toBe('EPERM');
  });
});

describe('argument validation happens before anything spawns', () => {
  const cases: [string, () => unknown, string, ErrorConstructor][] = [
    ['file not a string', () => spawn(42 as unknown as string), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['empty file', () => spawn(''), 'ERR_INVALID_ARG_VALUE', TypeError],
    ['NUL in file', () => spawn('/bin/tr\0ue'), 'ERR_INVALID_ARG_VALUE', TypeError],
    ['args not an array', () => spawn('/bin/true', 'x' as unknown as string[]), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['non-string arg', () => spawn('/bin/true', [1 as unknown as string]), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['NUL in an arg', () => spawn('/bin/true', ['a\0b']), 'ERR_INVALID_ARG_VALUE', TypeError],
    ['options not an object', () => spawn('/bin/true', [], 5 as unknown as object), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['NUL in an env key', () => spawn('/bin/true', [], { env: { 'A\0B': 'x' } }), 'ERR_INVALID_ARG_VALUE', TypeError],
    ['NUL in an env value', () => spawn('/bin/true', [], { env: { A: 'x\0y' } }), 'ERR_INVALID_ARG_VALUE', TypeError],
    ['cwd not a string', () => spawn('/bin/true', [], { cwd: 3 as unknown as string }), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['unknown killSignal', () => spawn('/bin/true', [], { killSignal: 'SIGNOPE' as NodeJS.Signals }), 'ERR_UNKNOWN_SIGNAL', TypeError],
    ['negative timeout', () => spawn('/bin/true', [], { timeout: -1 }), 'ERR_OUT_OF_RANGE', RangeError],
    ['fractional timeout', () => spawn('/bin/true', [], { timeout: 1.5 }), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['bad stdio word', () => spawn('/bin/true', [], { stdio: 'pipes' as 'pipe' }), 'ERR_INVALID_ARG_VALUE', TypeError],
    ['ipc stdio', () => spawn('/bin/true', [], { stdio: ['pipe', 'pipe', 'pipe', 'ipc' as 'pipe'] }), 'ERR_INVALID_ARG_VALUE', TypeError],
    ['negative stdio fd', () => spawn('/bin/true', [], { stdio: [-1, 'pipe', 'pipe'] }), 'ERR_OUT_OF_RANGE', RangeError],
    ['stream without fd', () => spawn('/bin/true', [], { stdio: [{}, 'pipe', 'pipe'] }), 'ERR_INVALID_ARG_VALUE', TypeError],
    ['uid -1', () => spawn('/bin/true', [], { uid: -1 }), 'ERR_OUT_OF_RANGE', RangeError],
    ['gid not a number', () => spawn('/bin/true', [], { gid: '0' as unknown as number }), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['detached not a boolean', () => spawn('/bin/true', [], { detached: 1 as unknown as boolean }), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['signal not an AbortSignal', () => spawn('/bin/true', [], { signal: {} as AbortSignal }), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['signal that only looks like one', () => spawn('/bin/true', [], { signal: { aborted: false } as AbortSignal }), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['stream with a fractional fd', () => spawn('/bin/true', [], { stdio: [{ fd: 1.7 }, 'pipe', 'pipe'] }), 'ERR_INVALID_ARG_VALUE', TypeError],
    ['stream with an fd beyond int32', () => spawn('/bin/true', [], { stdio: ['pipe', { fd: 2 ** 32 + 1 }, 'pipe'] }), 'ERR_INVALID_ARG_VALUE', TypeError],
    // eslint-disable-next-line no-sparse-arrays
    ['a hole in args', () => spawn('/bin/true', [, 'a'] as string[]), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['killWithParent not a boolean', () => spawn('/bin/true', [], { killWithParent: 1 as unknown as boolean }), 'ERR_INVALID_ARG_TYPE', TypeError],
    ['unknown engine', () => spawn('/bin/true', [], { engine: 'turbo' as 'direct' }), 'ERR_INVALID_ARG_VALUE', TypeError],
    ['flags not a number', () => clonefd('/bin/true', [], { flags: '1' as unknown as number }), 'ERR_INVALID_ARG_TYPE', TypeError],
    // Options the core does not have are errors, never silently ignored.
    ['shell (a drop-in option)', () => spawn('/bin/true', [], { shell: true } as object), 'ERR_INVALID_ARG_VALUE', TypeError],
    ['a misspelt option', () => spawn('/bin/true', { timout: 1 } as object), 'ERR_INVALID_ARG_VALUE', TypeError],
    ["flags on spawn() (clonefd()'s only)", () => spawn('/bin/true', [], { flags: 0 } as object), 'ERR_INVALID_ARG_VALUE', TypeError],
    ['encoding on clonefd()', () => clonefd('/bin/true', [], { encoding: 'utf8' } as object), 'ERR_INVALID_ARG_VALUE', TypeError],
  ];
  it.each(cases)('%s', (_name, call, code, type) => {
    expect(call).toThrow(type);
    expect(call).toThrow(expect.objectContaining({ code }));
    nothingLeft();
  });

  it('an unknown option is named in the error; one set to undefined is absent', async () => {
    expect(() => spawn('/bin/true', [], { stdio: 'ignore', shell: '/bin/sh' } as object)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(/^The property 'options\.shell' is not an option of clonefd's spawn\(\)/) }),
    );
    expect(() => clonefd('/bin/true', [], { windowsHide: false } as object)).toThrow(/'options\.windowsHide' is not an option of clonefd's clonefd\(\)/);
    nothingLeft();
    const p = spawn('/bin/true', [], { stdio: 'ignore', shell: undefined } as object);
    expect((await p.exited).exitCode).toBe(0);
    const h = clonefd('/bin/true', [], { stdio: 'ignore', flags: undefined });
    expect((await h.exited).exitCode).toBe(0);
    h.close();
  });

  it('kill() with an unknown signal throws ERR_UNKNOWN_SIGNAL and the child lives on', async () => {
    const p = spawn('sleep', ['5'], { stdio: 'ignore' });
    expect(() => p.kill('SIGBOGUS' as NodeJS.Signals)).toThrow(expect.objectContaining({ code: 'ERR_UNKNOWN_SIGNAL' }));
    expect(() => p.kill(99)).toThrow(expect.objectContaining({ code: 'ERR_UNKNOWN_SIGNAL' }));
    expect(() => p.kill({} as unknown as NodeJS.Signals)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(p.kill('SIGKILL')).toBe(true);
    expect((await p.exited).signal).toBe('SIGKILL');
  });
});
