// The drop-in's spawnSync(), execFileSync() and execSync(): the child's
// pipes are drained on this thread by the addon (native/addon/sync.cc),
// without the event loop, and the result has Node's shape
// (lib/child_process.js).
import { binding } from '../binding';
import { CLD_DUMPED, CLD_KILLED } from '../constants';
import { ENOBUFS, ETIMEDOUT } from '../errno';
import { codedError, invalidArgType, SystemError } from '../errors';
import type { ClonefdInfo } from '../info';
import type { Subprocess } from '../index';
import { expandStdio, isPipeEntry, ownProps, type StdioEntry } from '../options';
import { DEFAULT_KILL_SIGNAL, signalName, toSignalNumber } from '../signals';
import { coreOptions, MAX_BUFFER, normalizeSpawnArguments, validateMaxBuffer, validateTimeout, type SpawnSyncOptions } from './args';
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
  const killSignal = opts.killSignal === undefined ? DEFAULT_KILL_SIGNAL : toSignalNumber(opts.killSignal, 'options.killSignal');
  let input: Buffer | null = null;
  if (opts.input !== undefined && opts.input !== null) {
    if (typeof opts.input === 'string') input = Buffer.from(opts.input, typeof opts.encoding === 'string' && opts.encoding !== 'buffer' ? opts.encoding : 'utf8');
    else if (ArrayBuffer.isView(opts.input)) input = Buffer.from(opts.input.buffer, opts.input.byteOffset, opts.input.byteLength);
    else throw invalidArgType('options.input', 'of type string or an instance of Buffer, TypedArray, or DataView', opts.input);
  }
  if (typeof opts.encoding === 'string' && opts.encoding !== 'buffer' && !Buffer.isEncoding(opts.encoding)) {
    throw codedError(TypeError, 'ERR_UNKNOWN_ENCODING', `Unknown encoding: ${opts.encoding}`);
  }
  const encoding = opts.encoding && opts.encoding !== 'buffer' && Buffer.isEncoding(opts.encoding) ? opts.encoding : null;

  // Our own pipes (raw fds, no event loop): the child gets their other ends.
  const stdio = expandStdio(opts.stdio, 'pipe');
  const parentEnds: (number | null)[] = stdio.map(() => null);
  const childStdio: StdioEntry[] = [];
  const cleanup: number[] = [];
  try {
    stdio.forEach((entry, i) => {
      if (isPipeEntry(entry, i)) {
        const p = binding.pipe();
        if (typeof p === 'number') throw new SystemError(-p, 'pipe');
        // stdin: the child reads; others: the child writes.
        parentEnds[i] = i === 0 ? p[1] : p[0];
        childStdio.push(i === 0 ? p[0] : p[1]);
        cleanup.push(i === 0 ? p[0] : p[1]);
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
    sub = start(n.file, n.args, coreOptions(opts, childStdio), true);
  } catch (err) {
    for (const fd of parentEnds) if (typeof fd === 'number') binding.closeFd(fd);
    const e = err as SystemError;
    if (!(e instanceof SystemError)) throw err;
    // Node's shape: the error in the result, never thrown.
    return { error: spawnFailure(e, 'spawnSync', n.file, n.spawnargs), status: null, signal: null, output: null, pid: 0, stdout: null, stderr: null };
  } finally {
    // The child has its own copies (or there is no child).
    for (const fd of cleanup) binding.closeFd(fd);
  }

  const readIdx: number[] = [];
  const readFds: number[] = [];
  parentEnds.forEach((fd, i) => {
    if (fd !== null && i !== 0) {
      readIdx.push(i);
      readFds.push(fd);
    }
  });
  const stdinEnd = parentEnds[0] ?? -1;
  const drained = binding.drainSync(
    Int32Array.from(readFds),
    stdinEnd,
    stdinEnd >= 0 ? input ?? Buffer.alloc(0) : null,
    sub.fd,
    sub.pidfd,
    opts.timeout ?? 0,
    opts.maxBuffer ?? MAX_BUFFER,
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
  if (!Array.isArray(args) && args !== undefined && args !== null && typeof args === 'object') {
    options = args as SpawnSyncOptions;
    args = [];
  }
  const opts = ownProps<SpawnSyncOptions>(options);
  const inheritStderr = !opts.stdio;
  const ret = spawnSync(file, (args ?? []) as string[], opts);
  if (inheritStderr && ret.stderr) process.stderr.write(ret.stderr);
  const cmd = [opts.argv0 || file, ...((args ?? []) as string[])].join(' ');
  const err = checkExecSyncError(ret, cmd);
  if (err) throw err;
  return ret.stdout as string | Buffer;
}

/** `child_process.execSync(command, options?)`. */
export function execSync(command: string, options?: SpawnSyncOptions): string | Buffer {
  if (typeof command !== 'string') throw invalidArgType('command', 'of type string', command);
  const opts = ownProps<SpawnSyncOptions>(options);
  opts.shell = typeof opts.shell === 'string' ? opts.shell : true;
  const inheritStderr = !opts.stdio;
  const ret = spawnSync(command, [], opts);
  if (inheritStderr && ret.stderr) process.stderr.write(ret.stderr);
  const err = checkExecSyncError(ret, command);
  if (err) throw err;
  return ret.stdout as string | Buffer;
}
