// The drop-in's spawnSync(), execFileSync() and execSync(): the child's
// pipes are drained on this thread by the addon (native/addon/sync.cc),
// without the event loop, and the result has Node's shape
// (lib/child_process.js).
import { binding } from '../binding';
import { CLD_DUMPED, CLD_KILLED } from '../constants';
import { ENOBUFS, ETIMEDOUT } from '../errno';
import { invalidArgType, SystemError } from '../errors';
import type { ClonefdInfo } from '../info';
import type { Subprocess } from '../index';
import { isPipeEntry, ownProps, type StdioEntry } from '../options';
import { DEFAULT_KILL_SIGNAL, signalName } from '../signals';
import { coreOptions, MAX_BUFFER, normalizeExecArgs, normalizeExecFileArgs, normalizeSpawnArguments, sanitizeKillSignal, validateMaxBuffer, validateTimeout, validStdio, type SpawnSyncOptions } from './args';
import { spawnFailure, start } from './child';

export interface SpawnSyncReturns<T> {
  pid: number;
  output: (T | null)[] | null;
  stdout: T | null;
  stderr: T | null;
  status: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** `child_process.spawnSync(file, args?, options?)`. */
export function spawnSync(file: string, args?: readonly string[] | SpawnSyncOptions, options?: SpawnSyncOptions): SpawnSyncReturns<string | Buffer> {
  const n = normalizeSpawnArguments(file, args, options);
  const opts = ownProps<SpawnSyncOptions>({ maxBuffer: MAX_BUFFER }, n.options);
  validateTimeout(opts.timeout);
  validateMaxBuffer(opts.maxBuffer);
  const killSignal = sanitizeKillSignal(opts.killSignal) ?? DEFAULT_KILL_SIGNAL;
  const inputs: boolean[] = [];
  const stdio = validStdio(opts.stdio, true, inputs);
  let input: Buffer | null = null;
  // As Node: only a truthy input counts; it is stdio[0]'s.
  if (opts.input) {
    // Buffer.from's own rules for the encoding (ERR_UNKNOWN_ENCODING, 'buffer' too), as Node.
    if (typeof opts.input === 'string') input = Buffer.from(opts.input, (opts.encoding ?? undefined) as BufferEncoding | undefined);
    else if (ArrayBuffer.isView(opts.input)) input = Buffer.from(opts.input.buffer, opts.input.byteOffset, opts.input.byteLength);
    else throw invalidArgType('options.stdio[0]', ['Buffer', 'TypedArray', 'DataView', 'string'], opts.input);
  }
  // As Node: the outputs are decoded once the child is done, by Buffer's
  // toString (an unknown encoding throws then, for an output that is not empty).
  const encoding = opts.encoding && opts.encoding !== 'buffer' ? opts.encoding : null;

  // Our own pipes (raw fds, no event loop): the child gets their other ends.
  const parentEnds: (number | null)[] = stdio.map(() => null);
  const childStdio: StdioEntry[] = [];
  const cleanup: number[] = [];
  try {
    stdio.forEach((entry, i) => {
      if (isPipeEntry(entry, i)) {
        const p = binding.pipe();
        if (typeof p === 'number') throw new SystemError(-p, 'pipe');
        // The input pipe: the child reads; others: the child writes.
        const input = inputs[i] === true;
        parentEnds[i] = input ? p[1] : p[0];
        childStdio.push(input ? p[0] : p[1]);
        cleanup.push(input ? p[0] : p[1]);
      } else {
        childStdio.push(entry === undefined || entry === null ? 'ignore' : (entry as StdioEntry));
      }
    });
  } catch (err) {
    for (const fd of [...cleanup, ...parentEnds]) if (typeof fd === 'number') binding.closeFd(fd);
    throw err;
  }

  let sub: Subprocess;
  try {
    sub = start(n.file, n.args, coreOptions(opts, childStdio, 'sync'), true);
  } catch (err) {
    for (const fd of parentEnds) if (typeof fd === 'number') binding.closeFd(fd);
    let e = err as SystemError;
    if (!(e instanceof SystemError)) throw err;
    // What Node's async spawn throws as 'spawn EINVAL' (a uid or gid of -1).
    if (e.syscall === 'spawn') e = new SystemError(-e.errno, `spawn ${n.file}`);
    // Node's shape: the error in the result, never thrown.
    return { error: spawnFailure(e, 'spawnSync', n.file, n.spawnargs), status: null, signal: null, output: null, pid: 0, stdout: null, stderr: null };
  } finally {
    // The child has its own copies (or there is no child).
    for (const fd of cleanup) binding.closeFd(fd);
  }

  const readIdx: number[] = [];
  const readFds: number[] = [];
  let stdinEnd = -1;
  parentEnds.forEach((fd, i) => {
    if (fd === null) return;
    if (inputs[i] === true) {
      stdinEnd = fd;
    } else {
      readIdx.push(i);
      readFds.push(fd);
    }
  });
  const drained = binding.drainSync(
    Int32Array.from(readFds),
    stdinEnd,
    stdinEnd >= 0 ? input ?? Buffer.alloc(0) : null,
    sub.fd,
    sub.pidfd,
    opts.timeout ?? 0,
    // As Node's C++ reads it: null or an explicit undefined is no limit (0).
    opts.maxBuffer ?? 0,
    killSignal,
  );
  let info: ClonefdInfo | null = null;
  let lost: SystemError | undefined;
  try {
    info = sub.read();
  } catch (err) {
    lost = err as SystemError; // the status was lost (ECHILD): reported in the result
  }
  sub.close();

  const output: (string | Buffer | null)[] = stdio.map(() => null);
  readIdx.forEach((i, k) => {
    output[i] = encoding ? drained.outputs[k].toString(encoding) : drained.outputs[k];
  });
  const killedBySignal = info !== null && (info.code === CLD_KILLED || info.code === CLD_DUMPED);
  // ETIMEDOUT, ENOBUFS (maxBuffer), or a failed poll: reported in the result, as Node does.
  const errno = drained.timedOut ? ETIMEDOUT : drained.overflow ? ENOBUFS : drained.error;
  const error = errno ? new SystemError(errno, `spawnSync ${n.file}`, { path: n.file, spawnargs: n.spawnargs.slice(1) }) : lost;
  // Keys in Node's order.
  return {
    ...(error ? { error } : {}),
    status: info && !killedBySignal ? info.status : null,
    signal: killedBySignal ? (signalName(info!.status) as NodeJS.Signals) : null,
    output,
    pid: sub.pid,
    stdout: output[1] ?? null,
    stderr: output[2] ?? null,
  };
}

function checkExecSyncError(ret: SpawnSyncReturns<string | Buffer>, cmd: string): Error | undefined {
  let err: Error | undefined;
  if (ret.error) {
    err = ret.error;
    Object.assign(err, ret);
  } else if (ret.status !== 0) {
    let msg = `Command failed: ${cmd}`;
    if (ret.stderr && ret.stderr.length > 0) msg += `\n${ret.stderr.toString()}`;
    err = new Error(msg);
    Object.assign(err, ret);
  }
  return err;
}

/** `child_process.execFileSync(file, args?, options?)`. */
export function execFileSync(file: string, args?: readonly string[] | SpawnSyncOptions, options?: SpawnSyncOptions): string | Buffer {
  const n = normalizeExecFileArgs(file, args, options, undefined);
  const inheritStderr = !n.options.stdio;
  const ret = spawnSync(n.file, n.args, n.options);
  if (inheritStderr && ret.stderr) process.stderr.write(ret.stderr);
  const cmd = [n.options.argv0 || n.file, ...n.args].join(' ');
  const err = checkExecSyncError(ret, cmd);
  if (err) throw err;
  return ret.stdout as string | Buffer;
}

/** `child_process.execSync(command, options?)`. */
export function execSync(command: string, options?: SpawnSyncOptions): string | Buffer {
  const { options: opts } = normalizeExecArgs(command, options);
  const inheritStderr = !opts.stdio;
  const ret = spawnSync(command, opts);
  if (inheritStderr && ret.stderr) process.stderr.write(ret.stderr);
  const err = checkExecSyncError(ret, command);
  if (err) throw err;
  return ret.stdout as string | Buffer;
}
