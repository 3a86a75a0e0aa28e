// A worker pool over fork() and IPC, as applications build them: N forked
// workers, requests distributed round-robin with a bounded window, each
// answered by id; workers SIGKILLed mid-flight at seeded random points and
// replaced at once, the requests they still held retried on the
// replacement once the dead worker's 'close' says nothing more can come
// from it. Asserted: every id answered exactly once and correctly, no reply
// after a worker's 'exit' (every message a worker sent comes before it), no
// reply from a worker for an id it did not hold, and, with all workers
// gone, no fd and no zombie left in this process.
//
// Its own file: it counts /proc/self/fd, so nothing else may spawn in this
// process meanwhile (vitest runs a file's tests one after the other).
import * as node from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fdDiff, fdCount, openFds, rng, sleep, waitFor, zombieChildren } from './helpers';

type CP = typeof import('node:child_process');
type ChildProcess = node.ChildProcess;

const againstNode = process.env.CLONEFD_IPC_TEST_AGAINST === 'node';
const ours = (againstNode ? node : await import('../src/child_process')) as unknown as CP;

const WORKER = path.join(__dirname, 'fixtures', 'ipc', 'worker.js');
const HANDLES = path.join(__dirname, 'fixtures', 'ipc', 'handles.js');
const N = 4;
const REQUESTS = 10_000;
const WINDOW = 256; // requests in flight over the whole pool
const SEED = 0xc10efd;


interface Worker {
  child: ChildProcess;
  slot: number;
  inflight: Set<number>;
  dead: boolean;
  exited: boolean;
  closed: Promise<void>;
  isClosed: boolean;
  stderr: string[];
}

interface PoolResult {
  answered: number;
  duplicates: number[];
  wrong: number[];
  missing: number;
  afterExit: number;
  strangers: number;
  kills: number;
  retried: number;
  forks: number;
  stderrOfSurvivors: string;
  exitsOfSurvivors: unknown[];
  /** Workers whose 'close' never came (what each still had: a diagnosis if this ever fails). */
  unclosed: unknown[];
}

async function runPool(cp: CP): Promise<PoolResult> {
  const random = rng(SEED);
  const answers = new Uint8Array(REQUESTS);
  const wrong: number[] = [];
  const queue: number[] = []; // ids to (re)send, retries first
  let nextId = 0;
  let inflight = 0;
  let answered = 0;
  let afterExit = 0;
  let strangers = 0;
  let kills = 0;
  let retried = 0;
  let forks = 0;
  let rr = 0;
  let nextKillAt = 600 + Math.floor(random() * 1000);
  const all: Worker[] = [];
  const slots: Worker[] = [];
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));

  function start(slot: number): Worker {
    const child = cp.fork(WORKER, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    forks++;
    const w: Worker = { child, slot, inflight: new Set(), dead: false, exited: false, closed: undefined as unknown as Promise<void>, isClosed: false, stderr: [] };
    // Every promise and listener before anything can fire.
    w.closed = new Promise<void>((resolve) =>
      child.on('close', () => {
        w.isClosed = true;
        resolve();
      }),
    );
    child.stderr!.setEncoding('utf8').on('data', (d: string) => w.stderr.push(d));
    child.on('exit', () => (w.exited = true));
    child.on('error', () => {}); // a send to a worker just killed may fail: its requests are retried
    child.on('message', (m: { id: number; y: number }) => {
      if (w.exited) afterExit++;
      if (!w.inflight.delete(m.id)) {
        strangers++;
        return;
      }
      inflight--;
      if (m.y !== m.id * 2 + 1) wrong.push(m.id);
      if (answers[m.id]++ === 0) answered++;
      if (answered === REQUESTS) return done();
      if (answered >= nextKillAt) {
        nextKillAt = answered + 600 + Math.floor(random() * 1000);
        kill(Math.floor(random() * N));
      }
      pump();
    });
    all.push(w);
    slots[slot] = w;
    return w;
  }

  function kill(slot: number): void {
    const victim = slots[slot];
    victim.dead = true;
    victim.child.kill('SIGKILL');
    kills++;
    const replacement = start(slot);
    // What the victim still held once it can say nothing more: retried on its replacement.
    void victim.closed.then(() => {
      for (const id of victim.inflight) {
        retried++;
        inflight--;
        queue.unshift(id);
      }
      victim.inflight.clear();
      void replacement;
      pump();
    });
  }

  function pump(): void {
    while (inflight < WINDOW) {
      let id: number;
      if (queue.length > 0) id = queue.shift()!;
      else if (nextId < REQUESTS) id = nextId++;
      else return;
      // Round-robin over the live workers.
      let w: Worker | undefined;
      for (let k = 0; k < N && !w; k++) {
        const cand = slots[rr++ % N];
        if (!cand.dead) w = cand;
      }
      if (!w) {
        queue.unshift(id);
        return;
      }
      w.inflight.add(id);
      inflight++;
      w.child.send({ id, x: id });
    }
  }

  for (let i = 0; i < N; i++) start(i);
  pump();
  const timer = setTimeout(done, 15_000);
  await finished;
  clearTimeout(timer);
  const survivors = slots.slice();
  for (const w of survivors) if (w.child.connected) w.child.send({ op: 'stop' });
  await Promise.race([Promise.all(all.map((w) => w.closed)), sleep(10_000)]);
  const unclosed = all
    .filter((w) => !w.isClosed)
    .map((w) => ({
      pid: w.child.pid,
      dead: w.dead,
      exited: w.exited,
      exit: [w.child.exitCode, w.child.signalCode],
      connected: w.child.connected,
      channel: w.child.channel ? 'open' : null,
      stderrClosed: w.child.stderr?.destroyed,
      inflight: w.inflight.size,
    }));
  for (const w of all) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
  const duplicates: number[] = [];
  let missing = 0;
  for (let id = 0; id < REQUESTS; id++) {
    if (answers[id] === 0) missing++;
    if (answers[id] > 1) duplicates.push(id);
  }
  return {
    answered,
    duplicates,
    wrong,
    missing,
    afterExit,
    strangers,
    kills,
    retried,
    forks,
    stderrOfSurvivors: survivors.map((w) => w.stderr.join('')).join(''),
    exitsOfSurvivors: survivors.map((w) => [w.child.exitCode, w.child.signalCode]),
    unclosed,
  };
}

function check(r: PoolResult): void {
  expect(r).toMatchObject({ answered: REQUESTS, duplicates: [], wrong: [], missing: 0, afterExit: 0, strangers: 0, stderrOfSurvivors: '', unclosed: [] });
  expect(r.exitsOfSurvivors).toEqual(Array.from({ length: N }, () => [0, null]));
  expect(r.kills).toBeGreaterThanOrEqual(5);
  expect(r.retried, 'the kills came mid-flight: some requests had to be retried').toBeGreaterThan(0);
  expect(r.forks).toBe(N + r.kills);
}

describe.sequential('a worker pool: 4 forked workers, 10,000 requests, workers SIGKILLed mid-flight and replaced', () => {
  for (const [name, cp] of [['node:child_process (the harness itself)', node], ['clonefd/child_process', ours]] as const) {
    it(
      `${name}: every request answered exactly once, nothing after 'exit', no fd or zombie left`,
      async () => {
        // Warm-up: the first fork loads what stays (the addon, the helper and its socket; Node's signal pipe).
        const w = cp.fork(WORKER, [], { stdio: 'ignore' });
        const closed = new Promise((r) => w.on('close', r));
        w.send({ op: 'stop' });
        await closed;
        await sleep(50);
        globalThis.gc?.();
        const before = openFds();
        const baseline = fdCount();
        const started = Date.now();
        const r = await runPool(cp);
        if (process.env.CLONEFD_IPC_POOL_STATS) console.log(name, JSON.stringify(r));
        const clean = await waitFor(() => zombieChildren().length === 0 && fdCount() === baseline, 10_000);
        check(r);
        expect(zombieChildren()).toEqual([]);
        expect(clean, fdDiff(before)).toBe(true);
        expect(Date.now() - started).toBeLessThan(20_000);
      },
      60_000,
    );
  }
});

describe.sequential('handle passing leaves no fd behind: 100 sockets to a child, 50 from it', () => {
  for (const [name, cp] of [['node:child_process (the harness itself)', node], ['clonefd/child_process', ours]] as const) {
    it(
      `${name}: every socket crosses and works; with the child gone, the fd table is as before`,
      async () => {
        const warm = cp.fork(WORKER, [], { stdio: 'ignore' });
        const warmClosed = new Promise((r) => warm.on('close', r));
        warm.send({ op: 'stop' });
        await warmClosed;
        await sleep(50);
        globalThis.gc?.();
        const before = openFds();
        const baseline = fdCount();
        const server = net.createServer();
        server.listen(0, '127.0.0.1');
        await once(server, 'listening');
        const port = (server.address() as net.AddressInfo).port;

        const c = cp.fork(HANDLES, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
        const closed = new Promise<void>((r) => c.on('close', () => r()));
        let stderr = '';
        c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const replies: { op: string; tag?: string }[] = [];
        const fromChild: net.Socket[] = [];
        c.on('message', (m: { op: string; tag?: string }, h?: unknown) => {
          replies.push(m);
          if (m.op === 'socket') fromChild.push(h as net.Socket);
        });
        const until = async (pred: () => boolean) => expect(await waitFor(pred, 10_000)).toBe(true);

        // 100 accepted sockets to the child, which writes on each and ends it.
        const texts: Promise<string>[] = [];
        const accepted: net.Socket[] = [];
        server.on('connection', (s) => {
          s.on('error', () => {});
          accepted.push(s);
        });
        for (let i = 0; i < 100; i++) {
          const client = net.connect(port, '127.0.0.1');
          texts.push(
            new Promise((resolve) => {
              let t = '';
              client.setEncoding('utf8').on('data', (d) => (t += d));
              client.on('error', () => resolve(`error ${t}`));
              client.on('end', () => {
                client.destroy();
                resolve(t);
              });
            }),
          );
          await until(() => accepted.length === i + 1);
          c.send({ op: 'take-socket', tag: `s${i}` }, accepted[i]);
        }
        expect(await Promise.all(texts)).toEqual(Array.from({ length: 100 }, (_, i) => `child:s${i};`));
        // 50 sockets from the child (connected to our server), destroyed here.
        for (let i = 0; i < 50; i++) c.send({ op: 'give-socket', port });
        await until(() => fromChild.length === 50 && replies.filter((m) => m.op === 'gave-socket').length === 50);
        expect(fromChild.every((s) => s instanceof net.Socket)).toBe(true);
        for (const s of fromChild) s.destroy();
        await until(() => accepted.length === 150);
        for (const s of accepted) s.destroy();
        c.send({ op: 'disconnect' }); // the child's own: Node emits no 'close' after the parent's
        await closed;
        server.close();
        const clean = await waitFor(() => zombieChildren().length === 0 && fdCount() === baseline, 10_000);
        expect(stderr).toBe('');
        expect(c.exitCode).toBe(0);
        expect(clean, fdDiff(before)).toBe(true);
      },
      60_000,
    );
  }
});
