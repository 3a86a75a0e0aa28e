// clonefd's own API under `strict`: streams typed by `stdio`, signal
// names as a union, typed events, unknown options rejected. Type-checked
// only (never run): `npm run test:types`.
import type { Readable, Writable } from 'node:stream';
import {
  clonefd,
  ClonefdInfo,
  O_CLOEXEC,
  O_NONBLOCK,
  spawn,
  Subprocess,
  type ClonefdHandle,
  type SignalName,
  type SpawnOptions,
  type Spawned,
  type StdioEntry,
} from 'clonefd';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
declare function typeOf<T>(value: T): { is<U>(this: void, ...check: Equal<T, U> extends true ? [] : [never]): void };

// ---- streams by stdio --------------------------------------------------
{
  // spawn() pipes by default: the README's first example, unchanged.
  const p = spawn('sh', ['-c', 'read name; echo "hello $name"; exit 3']);
  p.stdout.setEncoding('utf8').on('data', (s: string) => process.stdout.write(s));
  p.stdin.end('world\n');
  const info = await p.exited;
  console.log(info.exitCode, info.utime, info.stime, info.rusage?.maxRSS);
  typeOf(p.stdin).is<Writable>();
  typeOf(p.stderr).is<Readable>();

  typeOf(spawn('cat', [], { stdio: 'pipe' }).stdout).is<Readable>();
  typeOf(spawn('cat', { stdio: 'overlapped' }).stdout).is<Readable>();
  typeOf(spawn('cat', { cwd: '/' }).stdin).is<Writable>();
  typeOf(spawn('cat', [], { stdio: 'ignore' }).stdout).is<null>();
  typeOf(spawn('cat', [], { stdio: 'inherit' }).stdin).is<null>();

  const t = spawn('cat', [], { stdio: ['pipe', 'inherit', 'ignore'] });
  typeOf(t.stdin).is<Writable>();
  typeOf(t.stdout).is<null>();
  typeOf(t.stderr).is<null>();
  const u = spawn('cat', [], { stdio: [0, null, undefined, 'pipe'] });
  typeOf(u.stdin).is<null>();
  typeOf(u.stdout).is<Readable>(); // null and undefined are pipes for fds 0-2
  typeOf(u.stderr).is<Readable>();
  const v = spawn('cat', [], { stdio: ['ignore'] }); // a short array: the rest are pipes
  typeOf(v.stdin).is<null>();
  typeOf(v.stdout).is<Readable>();
  const w = spawn('cat', [], { stdio: [process.stdin, 'pipe', process.stderr] });
  typeOf(w.stdin).is<null>();
  typeOf(w.stdout).is<Readable>();
  typeOf(w.stderr).is<null>();

  // Only known at runtime: the stream or null.
  const entries: StdioEntry[] = ['pipe', 'ignore'];
  typeOf(spawn('cat', [], { stdio: entries }).stdout).is<Readable | null>();
  const opts: SpawnOptions = { stdio: 'ignore' };
  typeOf(spawn('cat', [], opts).stdin).is<Writable | null>();
  const mode = 'pipe' as 'pipe' | 'ignore';
  typeOf(spawn('cat', [], { stdio: mode }).stdout).is<Readable | null>();

  // clonefd() inherits by default.
  const h = clonefd('sleep', ['1'], { flags: O_CLOEXEC | O_NONBLOCK });
  typeOf(h.stdout).is<null>();
  const hp = clonefd('cat', { stdio: 'pipe' });
  typeOf(hp.stdout).is<Readable>();
  // Every result is a Subprocess (and a ClonefdHandle).
  const s: Subprocess = t;
  const hh: ClonefdHandle = h;
  const sp: Spawned<['ignore', 'pipe', 'pipe']> = spawn('x', { stdio: ['ignore', 'pipe', 'pipe'] });
  void [s, hh, sp];
  // Methods returning `this` keep the stream types.
  typeOf(spawn('x').unref().stdout).is<Readable>();
}

// ---- signals -----------------------------------------------------------
{
  const p = spawn('sleep', ['30'], { stdio: 'ignore', timeout: 5000, killSignal: 'SIGKILL' });
  p.kill();
  p.kill('SIGINT');
  p.kill(15);
  // @ts-expect-error -- not a signal name
  p.kill('SIGNOPE');
  // @ts-expect-error -- not a signal name
  spawn('sleep', ['1'], { killSignal: 'KILL' });
  const info = await p.exited;
  typeOf(info.signal).is<SignalName | null>();
  typeOf(p.signalCode).is<SignalName | null>();
  if (info.signal === 'SIGKILL') console.log('killed');
  const n: NodeJS.Signals | `SIG${number}` | null = info.signal;
  void n;
}

// ---- events ------------------------------------------------------------
{
  const p = spawn('true', { stdio: 'ignore' });
  p.on('exit', (info) => typeOf(info).is<ClonefdInfo>());
  p.once('error', (err) => typeOf(err).is<Error>());
  // @ts-expect-error -- Subprocess's 'exit' carries the record, not (code, signal)
  p.on('exit', (code: number | null, signal: string | null) => void [code, signal]);
  // @ts-expect-error -- no such event
  p.on('close', () => {});
}

// ---- options: excess properties are compile errors ---------------------
{
  // @ts-expect-error -- the core has no shell (use clonefd/child_process)
  spawn('ls', [], { shell: true });
  // @ts-expect-error -- a typo
  spawn('ls', { timout: 5 });
  // @ts-expect-error -- encoding is the drop-in's
  clonefd('ls', [], { encoding: 'utf8' });
  // @ts-expect-error -- flags is clonefd()'s only
  spawn('ls', [], { flags: O_CLOEXEC });
  // @ts-expect-error -- not an engine
  spawn('ls', [], { engine: 'vfork' });
  spawn('ls', [], { engine: 'direct', killWithParent: true, detached: false, uid: undefined });
  clonefd('ls', [], { flags: O_CLOEXEC, stdio: 'ignore' });
}

// ---- explicit resource management -------------------------------------
{
  await using q = spawn('sleep', ['30'], { stdio: 'ignore' });
  typeOf(q.stdin).is<null>();
}
