// Code written for node:child_process, with the import switched to
// clonefd/child_process, must compile unchanged under `strict`, and mean
// the same types. Type-checked only (never run): `npm run test:types`.
import type * as node from 'node:child_process';
import { spawn as nodeSpawn } from 'node:child_process';
import type { NonSharedBuffer } from 'node:buffer';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import cpDefault, * as ours from 'clonefd/child_process';
import {
  ChildProcess,
  exec,
  execFile,
  execFileSync,
  execSync,
  fork,
  spawn,
  spawnSync,
  type ChildProcessByStdio,
  type ChildProcessWithoutNullStreams,
  type ExecException,
  type ExecFileException,
  type ExecOptions,
  type SpawnOptions,
  type SpawnSyncReturns,
} from 'clonefd/child_process';
import type { ClonefdInfo } from 'clonefd';

/** Exact type equality (not mere assignability). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
declare function typeOf<T>(value: T): { is<U>(this: void, ...check: Equal<T, U> extends true ? [] : [never]): void };

// ---- promisify: the README's first line, and the encodings -------------
{
  const { stdout, stderr } = await promisify(execFile)('uname', ['-s']);
  typeOf(stdout).is<string>();
  typeOf(stderr).is<string>();
  console.log(stdout.trim());

  const r1 = await promisify(exec)('echo hi');
  typeOf(r1).is<{ stdout: string; stderr: string }>();
  const r2 = await promisify(exec)('echo hi', { encoding: 'buffer' });
  typeOf(r2.stdout).is<NonSharedBuffer>();
  const r3 = await promisify(execFile)('ls', ['-l'], { encoding: 'buffer' });
  typeOf(r3.stderr).is<NonSharedBuffer>();
  const r4 = await promisify(execFile)('ls', { encoding: 'latin1', cwd: '/' });
  typeOf(r4.stdout).is<string>();
  const r5 = await promisify(execFile)('ls', [], { encoding: null });
  typeOf(r5.stdout).is<NonSharedBuffer>();
  // An encoding only known at runtime: Node's worst case.
  const enc = 'utf8' as BufferEncoding | 'buffer';
  const r6 = await promisify(exec)('true', { encoding: enc });
  typeOf(r6.stdout).is<string | NonSharedBuffer>();

  // The promise carries the child, which is ours (and so also Node's).
  const p = promisify(execFile)('sleep', ['1']);
  typeOf(p.child).is<ours.ChildProcess>();
  const n: node.ChildProcess = p.child;
  p.child.kill('SIGTERM');
  void n;
  const info: ClonefdInfo = await p.child.exited;
  void info;

  // Rejections: Node's documented shape is reachable with a narrowing.
  try {
    await promisify(execFile)('false');
  } catch (e) {
    const err = e as ExecFileException & { stdout: string; stderr: string };
    console.log(err.code, err.signal, err.stdout);
  }
}

// ---- callbacks: parameters typed by the overloads ----------------------
{
  exec('ls', (error, stdout, stderr) => {
    typeOf(error).is<ExecException | null>();
    typeOf(stdout).is<string>();
    typeOf(stderr).is<string>();
  });
  exec('ls', { encoding: 'buffer' }, (_error, stdout) => typeOf(stdout).is<NonSharedBuffer>());
  exec('ls', { cwd: '/tmp', timeout: 1000 }, (_error, stdout) => typeOf(stdout).is<string>());
  execFile('ls', (error, stdout) => {
    typeOf(error).is<ExecFileException | null>();
    typeOf(stdout).is<string>();
  });
  execFile('ls', ['-l'], (_e, stdout) => typeOf(stdout).is<string>());
  execFile('ls', ['-l'], { encoding: 'buffer' }, (_e, stdout) => typeOf(stdout).is<NonSharedBuffer>());
  execFile('ls', ['-l'], { maxBuffer: 1 << 20 }, (_e, stdout) => typeOf(stdout).is<string>());
  execFile('ls', null, { encoding: 'utf8' }, (error, stdout, stderr) => {
    if (error) console.log(error.code, error.killed, error.cmd);
    console.log(stdout.length + stderr.length);
  });
  // A callback annotated with Node's own types is accepted as it is.
  const cb = (error: node.ExecException | null, stdout: string, stderr: string): void => void [error, stdout, stderr];
  exec('ls', cb);
  // The returned child is ours.
  const c = execFile('ls');
  typeOf(c).is<ours.ChildProcess>();
  // @ts-expect-error -- a string callback result is a string, not a Buffer
  exec('ls', (_e, stdout: Buffer) => void stdout);
}

// ---- the sync forms, by encoding ---------------------------------------
{
  typeOf(execSync('echo hi')).is<NonSharedBuffer>();
  typeOf(execSync('echo hi', { encoding: 'utf8' })).is<string>();
  typeOf(execSync('echo hi', { encoding: 'buffer' })).is<NonSharedBuffer>();
  typeOf(execSync('echo hi', { stdio: 'pipe' })).is<NonSharedBuffer>();
  typeOf(execSync('echo hi', {} as node.ExecSyncOptions)).is<string | NonSharedBuffer>();
  console.log(execSync('echo hi').toString());
  console.log(execSync('echo hi', { encoding: 'utf8' }).trim());

  typeOf(execFileSync('ls')).is<NonSharedBuffer>();
  typeOf(execFileSync('ls', ['-l'])).is<NonSharedBuffer>();
  typeOf(execFileSync('ls', ['-l'], { encoding: 'utf8' })).is<string>();
  typeOf(execFileSync('ls', { encoding: 'latin1' })).is<string>();
  typeOf(execFileSync('ls', ['-l'], { encoding: null })).is<NonSharedBuffer>();

  typeOf(spawnSync('ls')).is<SpawnSyncReturns<NonSharedBuffer>>();
  typeOf(spawnSync('ls', ['-l'])).is<SpawnSyncReturns<NonSharedBuffer>>();
  typeOf(spawnSync('ls', ['-l'], { encoding: 'utf8' })).is<SpawnSyncReturns<string>>();
  typeOf(spawnSync('ls', { encoding: 'utf8', input: 'x' })).is<SpawnSyncReturns<string>>();
  typeOf(spawnSync('ls', ['-l'], { stdio: 'inherit' })).is<SpawnSyncReturns<NonSharedBuffer>>();
  const r = spawnSync('sh', ['-c', 'exit 3'], { encoding: 'utf8' });
  const status: number | null = r.status;
  const signal: NodeJS.Signals | null = r.signal;
  console.log(status, signal, r.stdout.trim(), r.error?.message);
  // Ours is Node's.
  const nr: node.SpawnSyncReturns<string> = r;
  void nr;
}

// ---- spawn: stdio overloads --------------------------------------------
{
  const a = spawn('cat');
  typeOf(a).is<ChildProcessWithoutNullStreams>();
  typeOf(a.stdin).is<Writable>();
  typeOf(a.stdout).is<Readable>();
  a.stdout.setEncoding('utf8');
  a.stdin.end('x');

  const b = spawn('ls', ['-l'], { stdio: 'pipe', cwd: '/' });
  typeOf(b.stdout).is<Readable>();

  const c = spawn('ls', ['-l'], { stdio: ['ignore', 'pipe', 'inherit'] });
  typeOf(c).is<ChildProcessByStdio<null, Readable, null>>();
  typeOf(c.stdin).is<null>();
  typeOf(c.stderr).is<null>();
  c.stdout.on('data', (chunk: Buffer) => void chunk);

  const d = spawn('ls', { stdio: ['pipe', process.stdout, 'pipe'] });
  typeOf(d).is<ChildProcessByStdio<Writable, null, Readable>>();

  const e = spawn('sh', ['-c', 'exit 3'], { stdio: 'ignore' });
  typeOf(e).is<ours.ChildProcess>();
  typeOf(e.stdout).is<Readable | null>();

  const opts: SpawnOptions = { stdio: 'inherit', detached: true };
  typeOf(spawn('x', [], opts)).is<ours.ChildProcess>();

  // clonefd's extra options, on the drop-in.
  spawn('true', [], { engine: 'direct', killWithParent: true });
  execFile('true', { engine: 'helper' }, () => {});
  execSync('true', { engine: 'direct', encoding: 'utf8' });
  // @ts-expect-error -- not an engine
  spawn('true', [], { engine: 'fork' });
  // @ts-expect-error -- an excess property is an error, as with Node's types
  spawn('true', [], { shel: true });
}

// ---- events and ChildProcess members ----------------------------------
{
  const child = spawn('sh', ['-c', 'exit 3'], { stdio: 'ignore' });
  child.on('exit', (code, signal) => {
    typeOf(code).is<number | null>();
    typeOf(signal).is<NodeJS.Signals | null>();
  });
  child.once('close', (code, signal) => console.log(code, signal));
  child.on('error', (err) => typeOf(err).is<Error>());
  child.on('spawn', () => {});
  child.addListener('exit', (code: number | null) => void code);
  const [code] = await once(child, 'exit');
  void code;
  // The clonefd extras.
  typeOf(child.fd).is<number>();
  typeOf(child.exited).is<Promise<ClonefdInfo>>();
  typeOf(child.info).is<ClonefdInfo | null>();
  console.log((await child.exited).rusage?.maxRSS);
  typeOf(child.pid).is<number | undefined>();
  typeOf(child.exitCode).is<number | null>();
  typeOf(child.signalCode).is<NodeJS.Signals | null>();
  child.kill();
  child.kill('SIGKILL');
  child.kill(9);
  // @ts-expect-error -- not a signal name
  child.kill('SIGNOPE');
  child.unref();
  child.ref();
}

// ---- assignability to and from Node's types ----------------------------
{
  // Ours where Node's is expected.
  const c1: node.ChildProcess = spawn('ls', ['-l']);
  const c2: node.ChildProcessWithoutNullStreams = spawn('cat');
  const c3: node.ChildProcessByStdio<null, Readable, null> = spawn('ls', { stdio: ['ignore', 'pipe', 'ignore'] });
  const c4: node.ChildProcess = spawn('ls', { stdio: 'inherit' });
  function wait(child: node.ChildProcess): Promise<number | null> {
    return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }
  await wait(spawn('true'));
  void [c1, c2, c3, c4];
  // The module as a whole stands in for Node's (this is what code that
  // takes `typeof import('node:child_process')` as a parameter needs),
  type Usable = Pick<typeof node, 'spawn' | 'exec' | 'execFile' | 'spawnSync' | 'execSync' | 'execFileSync' | 'fork'>;
  const m: Usable = ours;
  void m;
  const d: Usable = cpDefault;
  void d;
  // ours.ChildProcess is a class like Node's.
  const x = new ChildProcess();
  const y: node.ChildProcess = x;
  void y;
  const z: unknown = nodeSpawn('true');
  if (z instanceof ChildProcess) typeOf(z).is<ours.ChildProcess>();
  // The other way round: a Node child lacks fd, exited and info.
  // @ts-expect-error -- a node:child_process ChildProcess is not a clonefd one
  const w: ours.ChildProcess = nodeSpawn('true');
  void w;
  // Options objects typed with Node's interfaces are accepted.
  const nodeOpts: node.ExecOptions = { cwd: '/', timeout: 5 };
  exec('ls', nodeOpts, () => {});
  const ourOpts: ExecOptions = { engine: 'direct' };
  const back: node.ExecOptions = ourOpts;
  void back;
}

// ---- fork: typed as Node's, returns clonefd's ChildProcess (so also Node's)
{
  const f = () => fork('./worker.js', ['a'], { silent: true, serialization: 'advanced', engine: 'direct' });
  typeOf(f()).is<ours.ChildProcess>();
  const asNode: node.ChildProcess = f();
  const sent: boolean = asNode.send({ hello: 1 }, (err) => void err);
  f().on('message', (m: node.Serializable) => void m);
  f().channel?.unref();
  void sent;
  // @ts-expect-error -- fork takes a module path
  fork(42);
}
