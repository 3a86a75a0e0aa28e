// A short smoke suite over the built package (lib/ and the addon, loaded
// by Node's own require as a user's code would), small enough to run on
// every supported Node: .ci/run runs it again on Node 22 and 24 with the
// addon built once, on Node 20 (N-API).
import { existsSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const load = createRequire(__filename);
const lib = load(path.join(root, 'lib', 'index.js')) as typeof import('../src/index');
const cpFile = path.join(root, 'lib', 'child_process.js');
const cp = existsSync(cpFile) ? (load(cpFile) as typeof import('../src/child_process')) : undefined;

const engines = ['helper', 'direct'] as const;

async function collect(stream: NodeJS.ReadableStream | null): Promise<string> {
  let text = '';
  if (!stream) return text;
  stream.setEncoding('utf8');
  for await (const chunk of stream) text += chunk;
  return text;
}

describe(`smoke (Node ${process.version})`, () => {
  describe.each(engines)('engine %s', (engine) => {
    it('spawn: output, exit status, times, and the engine really used', async () => {
      const p = lib.spawn('sh', ['-c', 'echo "$PPID"; read line; echo "got $line"; exit 3'], { engine });
      p.stdin!.end('hello\n');
      const [out, info] = await Promise.all([collect(p.stdout), p.exited]);
      const [ppid, echoed] = out.trim().split('\n');
      expect(echoed).toBe('got hello');
      // The helper is the children's parent; the direct engine's are ours.
      if (engine === 'direct') expect(Number(ppid)).toBe(process.pid);
      else expect(Number(ppid)).not.toBe(process.pid);
      expect(info).toMatchObject({ code: lib.CLD_EXITED, status: 3, exitCode: 3, signal: null, pid: p.pid });
      expect(typeof info.utime).toBe('number');
      expect(p.exitCode).toBe(3);
    });

    it('kill', async () => {
      const p = lib.spawn('sleep', ['30'], { engine, stdio: 'ignore' });
      expect(p.kill('SIGKILL')).toBe(true);
      const info = await p.exited;
      expect(info).toMatchObject({ code: lib.CLD_KILLED, status: 9, signal: 'SIGKILL', exitCode: null });
      expect(p.kill()).toBe(false);
    });

    it('exec errors throw at spawn', () => {
      expect(() => lib.spawn('/nonexistent/clonefd-smoke', [], { engine })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    });

    it('the read contract: EAGAIN while running, the record once, then EOF', async () => {
      const h = lib.clonefd('sh', ['-c', 'read x; exit 5'], { engine, flags: lib.O_CLOEXEC | lib.O_NONBLOCK, stdio: ['pipe', 'ignore', 'ignore'] });
      try {
        expect(h.fd).toBeGreaterThanOrEqual(0);
        expect(() => h.read()).toThrow(expect.objectContaining({ code: 'EAGAIN' }));
        h.stdin!.end('\n');
        const rec = await h.readAsync();
        expect(rec).not.toBeNull();
        expect(rec).toMatchObject({ code: lib.CLD_EXITED, status: 5 });
        const buf = rec!.toBuffer();
        expect(buf.length).toBe(lib.CLONEFD_INFO_SIZE);
        expect(buf.length).toBe(24);
        const le = endianness() === 'LE';
        expect(le ? buf.readInt32LE(0) : buf.readInt32BE(0)).toBe(lib.CLD_EXITED);
        expect(le ? buf.readInt32LE(4) : buf.readInt32BE(4)).toBe(5);
        expect(lib.ClonefdInfo.fromBuffer(buf)).toMatchObject({ code: rec!.code, status: 5, utime: rec!.utime, stime: rec!.stime });
        expect(h.read()).toBeNull();
        expect(await h.readAsync()).toBeNull();
      } finally {
        h.close();
      }
    });
  });

it('helper engine: a plain read(2) of fd gives the 24-byte record, then EOF', async () => {
    const h = lib.clonefd('sh', ['-c', 'exit 6'], { engine: 'helper', flags: lib.O_CLOEXEC, stdio: 'ignore' });
    try {
      const info = await h.exited;
      const buf = Buffer.alloc(64);
      expect(readSync(h.fd, buf)).toBe(24);
      expect(buf.subarray(0, 24)).toEqual(info.toBuffer());
      expect(readSync(h.fd, buf)).toBe(0);
      expect(h.read()).toBeNull();
    } finally {
      h.close();
    }
  });

  describe.runIf(cp)('clonefd/child_process', () => {
    it('execFile: callback with stdout, stderr and the exit code', async () => {
      const r = await new Promise<{ err: (Error & { code?: unknown }) | null; stdout: string; stderr: string }>((resolve) =>
        cp!.execFile('sh', ['-c', 'echo out; echo err >&2; exit 2'], (err: Error | null, stdout: string | Buffer, stderr: string | Buffer) =>
          resolve({ err, stdout: String(stdout), stderr: String(stderr) }),
        ),
      );
      expect(r.err?.code).toBe(2);
      expect(r.stdout).toBe('out\n');
      expect(r.stderr).toBe('err\n');
    });

    it('execFile, promisified', async () => {
      const run = promisify(cp!.execFile) as unknown as (file: string, args: string[]) => Promise<{ stdout: string; stderr: string }>;
      expect(await run('echo', ['promised'])).toMatchObject({ stdout: 'promised\n', stderr: '' });
    });

    it('spawnSync: input, output, status', () => {
      const r = cp!.spawnSync('sh', ['-c', 'cat; exit 4'], { input: 'abc', encoding: 'utf8' });
      expect(r.error).toBeUndefined();
      expect(r.status).toBe(4);
      expect(r.signal).toBeNull();
      expect(r.stdout).toBe('abc');
    });

    it.each(['json', 'advanced'] as const)("fork() with %s serialization: a round trip with this Node's own child side of IPC, then the child's disconnect", async (serialization) => {
      const child = cp!.fork('-e', [], {
        // fork() runs execArgv then modulePath: '-e <script>' then '-e' would not parse, so the script is the module path's argument.
        execArgv: ['--eval', "process.on('message', (m) => { process.send({ got: m, v: process.version }); process.disconnect(); })", '--'],
        serialization,
      });
      const closed = new Promise<[number | null, string | null]>((resolve) => child.on('close', (code, signal) => resolve([code, signal])));
      const reply = new Promise<unknown>((resolve) => child.once('message', resolve));
      child.send({ n: 1, s: 'é' });
      expect(await reply).toEqual({ got: { n: 1, s: 'é' }, v: process.version });
      expect(await closed).toEqual([0, null]);
      expect(child.connected).toBe(false);
    });
  });
});
