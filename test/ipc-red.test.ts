// IPC guarantees the red team broke once (issue 10), each checked against
// the failure it found: a channel whose peer closed with our data unread,
// a large send() on an unref'd channel, 'advanced' Buffers that exposed
// this process's memory, a bad JSON line that swallowed the messages
// before it.
import * as node from 'node:child_process';
import { fstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

type CP = typeof import('node:child_process');
const ours = (await import('../src/child_process')) as unknown as CP;
const LIB = path.join(__dirname, '..', 'lib', 'child_process.js');

const dir = mkdtempSync(path.join(tmpdir(), 'clonefd-ipc-red-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, source: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, source);
  return file;
}

/** The file an fd number names now ("dev:ino"), or null when it is closed. */
function fileAt(fd: number): string | null {
  try {
    const st = fstatSync(fd);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

describe('IPC under attack', () => {
  it('disconnect() with writes queued, the child exiting on its first message: every callback runs, the channel fd is closed', async () => {
    // The child leaves 8 MiB unread: the parent's end gets ECONNRESET, a
    // poll error (libuv stops polling): before the fix the fd and the
    // callbacks were stuck for good.
    const child = ours.fork(script('first-and-exit.js', "process.on('message', () => process.exit(0));"));
    const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
    child.on('error', () => {});
    const fd = (child.channel as unknown as { fd: number }).fd;
    const id = fileAt(fd);
    expect(id).not.toBeNull();
    const results: (string | null)[] = [];
    const callbacks = new Promise<void>((resolve) => {
      for (let i = 0; i < 3; i++) {
        child.send('x'.repeat(4 << 20), (err) => {
          results.push(err ? (err as NodeJS.ErrnoException).code ?? 'error' : null);
          if (results.length === 3) resolve();
        });
      }
    });
    child.disconnect();
    await closed;
    await Promise.race([callbacks, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    const seen = { results, fdStillOurs: fileAt(fd) === id, exit: [child.exitCode, child.signalCode] };
    expect(results, JSON.stringify(seen)).toHaveLength(3);
    // The first went out whole (the child read it); the others could not be delivered and say so.
    expect(results[0], JSON.stringify(seen)).toBeNull();
    expect(seen.fdStillOurs, JSON.stringify(seen)).toBe(false);
  });

  it("a 10 MiB send() next to child.unref() and channel.unref() reaches the child before the parent exits, as with Node", () => {
    const mark = path.join(dir, 'unref-mark');
    const childFile = script(
      'unref-child.js',
      "process.on('message', (m) => require('fs').writeFileSync(process.argv[2], 'got ' + m.length)); process.on('disconnect', () => process.exit(0)); setTimeout(() => {}, 5000);",
    );
    const parent = script(
      'unref-parent.js',
      `const cp = require(process.argv[2]);
       const c = cp.fork(${JSON.stringify(childFile)}, [${JSON.stringify(mark)}], { stdio: 'ignore' });
       c.unref();
       c.channel.unref();
       c.send('x'.repeat(10 << 20), (err) => console.log('cb', err));`,
    );
    for (const impl of ['node:child_process', LIB]) {
      rmSync(mark, { force: true });
      const r = node.spawnSync(process.execPath, [parent, impl], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status, `${impl}: ${r.stderr}`).toBe(0);
      expect(r.stdout, impl).toBe('cb null\n');
      // The child writes its mark once it has the whole message (it may still be writing it).
      const deadline = Date.now() + 5000;
      let got = '';
      while (Date.now() < deadline) {
        try {
          got = readFileSync(mark, 'utf8');
        } catch {
          /* not yet */
        }
        if (got) break;
        node.spawnSync('sleep', ['0.05']);
      }
      expect(got, impl).toBe(`got ${10 << 20}`);
    }
  });

  it("'advanced': a small Buffer from the child is a view on the channel's bytes only, never on this process's Buffer pool", async () => {
    const secret = Buffer.from(`PARENT-SECRET-${'S'.repeat(40)}`); // a pooled Buffer of this process
    const child = ours.fork(script('pool.js', "process.send({ b: Buffer.from('hi') }); process.disconnect();"), { serialization: 'advanced' });
    const message = await new Promise<{ b: Uint8Array }>((resolve) => child.once('message', resolve));
    const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
    expect(Buffer.from(message.b).toString()).toBe('hi');
    const whole = Buffer.from(message.b.buffer);
    expect(whole.includes('PARENT-SECRET')).toBe(false);
    expect(whole.length).toBeLessThan(1024);
    await closed;
    void secret;
  });

  it('a child writing a line that is not JSON: the messages before it arrive, then an error event; the channel closes', async () => {
    // Node delivers 'ok' too, then throws from its event loop (README: an 'error' event here).
    const child = ours.spawn('sh', ['-c', `printf '"ok"\\nnot json\\n' >&3; sleep 0.2`], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    const events: string[] = [];
    child.on('message', (m) => events.push(`message ${String(m)}`));
    child.on('error', (e) => events.push(`error ${e.name}`));
    child.on('disconnect', () => events.push('disconnect'));
    await new Promise<void>((resolve) => child.on('close', () => resolve()));
    expect(events).toEqual(['message ok', 'error SyntaxError', 'disconnect']);
  });
});
