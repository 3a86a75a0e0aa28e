// The drop-in's execFile() and exec(): buffered output, maxBuffer, timeout
// and the callback's error as Node builds them (lib/child_process.js), and
// their util.promisify forms.
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { codedError, errnoName } from '../errors';
import { ownProps } from '../options';
import { DEFAULT_KILL_SIGNAL } from '../signals';
import { MAX_BUFFER, normalizeExecArgs, normalizeExecFileArgs, sanitizeKillSignal, validateMaxBuffer, validateTimeout, type ExecFileOptions } from './args';
import { spawn, type ChildProcess } from './child';

export type ExecCallback = (error: ExecError | null, stdout: string | Buffer, stderr: string | Buffer) => void;

export interface ExecError extends Error {
  code?: number | string | null;
  killed?: boolean;
  signal?: NodeJS.Signals | null;
  cmd?: string;
  stdout?: string | Buffer;
  stderr?: string | Buffer;
}

function maxBufferError(name: string): RangeError {
  return codedError(RangeError, 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER', `${name} maxBuffer length exceeded`);
}

/** `child_process.execFile(file, args?, options?, callback?)`. */
export function execFile(file: string, ...rest: unknown[]): ChildProcess {
  const n = normalizeExecFileArgs(file, rest[0], rest[1], rest[2]);
  return execFileImpl(n.file, n.args, n.options, n.callback as ExecCallback | undefined);
}

function execFileImpl(file: string, args: string[], options: ExecFileOptions, callback: ExecCallback | undefined): ChildProcess {
  const opts = ownProps<ExecFileOptions>({ encoding: 'utf8', timeout: 0, maxBuffer: MAX_BUFFER, killSignal: 'SIGTERM' }, options);
  validateTimeout(opts.timeout);
  validateMaxBuffer(opts.maxBuffer);
  const killSignal = sanitizeKillSignal(opts.killSignal) ?? DEFAULT_KILL_SIGNAL;
  // Exactly the options Node's execFile passes on (stdio, argv0, detached,
  // killSignal and timeout are execFile's own business or ignored), plus
  // clonefd's extras.
  const child = spawn(file, args, {
    cwd: opts.cwd,
    env: opts.env,
    gid: opts.gid,
    shell: opts.shell,
    signal: opts.signal,
    uid: opts.uid,
    windowsHide: !!opts.windowsHide,
    windowsVerbatimArguments: !!opts.windowsVerbatimArguments,
    engine: opts.engine,
    killWithParent: opts.killWithParent,
  });
  const encoding = opts.encoding && opts.encoding !== 'buffer' && Buffer.isEncoding(opts.encoding) ? opts.encoding : null;
  const out: (string | Buffer)[] = [];
  const err: (string | Buffer)[] = [];
  let outLen = 0;
  let errLen = 0;
  let ex: ExecError | null = null;
  let killed = false;
  let exited = false;
  let timer: NodeJS.Timeout | undefined;
  // As Node compares it: an explicit undefined is no limit, null is 0.
  const maxBuffer = opts.maxBuffer as number;

  // As Node: a stream whose encoding the caller set (setEncoding on
  // child.stdout) gives strings, joined as strings.
  const join = (chunks: (string | Buffer)[], stream: Readable | null) =>
    encoding || stream?.readableEncoding ? chunks.join('') : Buffer.concat(chunks as Buffer[]);
  const exithandler = (code?: number | null, signal?: NodeJS.Signals | null) => {
    if (exited) return;
    exited = true;
    if (timer) clearTimeout(timer);
    if (!callback) return;
    const stdout = join(out, child.stdout);
    const stderr = join(err, child.stderr);
    if (!ex && code === 0 && signal === null) {
      callback(null, stdout, stderr);
      return;
    }
    let cmd = file;
    if (args.length) cmd += ` ${args.join(' ')}`;
    if (!ex) {
      ex = new Error(`Command failed: ${cmd}\n${stderr}`) as ExecError;
      ex.code = typeof code === 'number' && code < 0 ? errnoName(code) ?? String(code) : code;
      ex.killed = child.killed || killed;
      ex.signal = signal ?? null;
    }
    ex.cmd = cmd;
    callback(ex, stdout, stderr);
  };
  const kill = () => {
    child.stdout?.destroy();
    child.stderr?.destroy();
    killed = true;
    try {
      child.kill(killSignal);
    } catch (e) {
      ex = e as ExecError;
      exithandler();
    }
  };
  if (opts.timeout && opts.timeout > 0) {
    timer = setTimeout(() => {
      timer = undefined;
      kill();
    }, opts.timeout);
  }
  const collect = (stream: Readable | null, chunks: (string | Buffer)[], name: 'stdout' | 'stderr') => {
    if (!stream) return;
    if (encoding) stream.setEncoding(encoding);
    stream.on('data', (chunk: string | Buffer) => {
      if (maxBuffer === Infinity) {
        chunks.push(chunk);
        return;
      }
      const enc = stream.readableEncoding;
      const length = enc ? Buffer.byteLength(chunk as string, enc) : chunk.length;
      const total = name === 'stdout' ? (outLen += length) : (errLen += length);
      if (total > maxBuffer) {
        const keep = maxBuffer - (total - length);
        chunks.push(chunk.slice(0, keep));
        ex = maxBufferError(name) as unknown as ExecError;
        kill();
      } else {
        chunks.push(chunk);
      }
    });
  };
  collect(child.stdout, out, 'stdout');
  collect(child.stderr, err, 'stderr');
  child.addListener('close', exithandler);
  child.addListener('error', (e: Error) => {
    ex = e as ExecError;
    child.stdout?.destroy();
    child.stderr?.destroy();
    exithandler();
  });
  return child;
}

/** `child_process.exec(command, options?, callback?)`. */
export function exec(command: string, options?: ExecFileOptions | ExecCallback | null, callback?: ExecCallback): ChildProcess {
  if (typeof options === 'function') {
    callback = options;
    options = undefined;
  }
  const n = normalizeExecArgs(command, options);
  return execFile(n.file, n.options, callback);
}

// util.promisify(execFile / exec): resolves { stdout, stderr }; rejects
// with the error carrying them; the promise has `.child`, as Node's.
function customPromisify(orig: (...args: unknown[]) => ChildProcess) {
  return (...args: unknown[]) => {
    let resolve!: (v: { stdout: string | Buffer; stderr: string | Buffer }) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<{ stdout: string | Buffer; stderr: string | Buffer }>((res, rej) => {
      resolve = res;
      reject = rej;
    }) as Promise<{ stdout: string | Buffer; stderr: string | Buffer }> & { child: ChildProcess };
    promise.child = orig(...args, (err: ExecError | null, stdout: string | Buffer, stderr: string | Buffer) => {
      if (err !== null) {
        err.stdout = stdout;
        err.stderr = stderr;
        reject(err);
      } else {
        resolve({ stdout, stderr });
      }
    });
    return promise;
  };
}
Object.defineProperty(execFile, promisify.custom, { enumerable: false, value: customPromisify(execFile as (...a: unknown[]) => ChildProcess) });
Object.defineProperty(exec, promisify.custom, { enumerable: false, value: customPromisify(exec as (...a: unknown[]) => ChildProcess) });
