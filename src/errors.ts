// Errors shaped like Node's own: argument errors carry Node's ERR_* codes,
// system errors carry code/errno/syscall (+ path and spawnargs for spawns).
import { constants } from 'node:os';
import { inspect } from 'node:util';

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`;
  if (typeof value === 'object') {
    const ctor = (value as object).constructor;
    return ctor?.name ? `an instance of ${ctor.name}` : inspect(value, { depth: -1 });
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return `type ${typeof value} (${shown})`;
}

/** An Error (or TypeError, RangeError) with Node's enumerable `code`, e.g. `ERR_CHILD_PROCESS_STDIO_MAXBUFFER`. */
export function codedError<E extends Error>(Ctor: new (message: string) => E, code: string, message: string): E & { code: string } {
  const err = new Ctor(message);
  Error.captureStackTrace(err, codedError);
  return coded(err, code);
}

function coded<E extends Error>(err: E, code: string): E & { code: string } {
  Object.defineProperty(err, 'code', { value: code, enumerable: true, writable: true, configurable: true });
  return err as E & { code: string };
}

function kind(name: string): string {
  return name.includes('.') ? 'property' : 'argument';
}

/** `ERR_INVALID_ARG_TYPE` (TypeError). */
export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const err = new TypeError(`The "${name}" ${kind(name)} must be ${expected}. Received ${describe(actual)}`);
  Error.captureStackTrace(err, invalidArgType);
  return coded(err, 'ERR_INVALID_ARG_TYPE');
}

/** `ERR_INVALID_ARG_VALUE` (TypeError). */
export function invalidArgValue(name: string, value: unknown, reason = 'is invalid'): TypeError {
  const err = new TypeError(`The ${kind(name)} '${name}' ${reason}. Received ${inspect(value, { depth: 1 })}`);
  Error.captureStackTrace(err, invalidArgValue);
  return coded(err, 'ERR_INVALID_ARG_VALUE');
}

/** `ERR_OUT_OF_RANGE` (RangeError). */
export function outOfRange(name: string, range: string, value: unknown): RangeError {
  const err = new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${inspect(value)}`);
  Error.captureStackTrace(err, outOfRange);
  return coded(err, 'ERR_OUT_OF_RANGE');
}

/** `ERR_UNKNOWN_SIGNAL` (TypeError). */
export function unknownSignal(signal: unknown): TypeError {
  const err = new TypeError(`Unknown signal: ${String(signal)}`);
  Error.captureStackTrace(err, unknownSignal);
  return coded(err, 'ERR_UNKNOWN_SIGNAL');
}

/** `ABORT_ERR`, as Node's `AbortError`. */
export class AbortError extends Error {
  code = 'ABORT_ERR';
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    // An own, enumerable name, exactly as Node's AbortError has it.
    this.name = 'AbortError';
  }
}

// os.constants.errno knows every Linux errno (libuv's names lack some, e.g.
// ENOEXEC). First name wins where two share a number (EAGAIN/EWOULDBLOCK).
const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(constants.errno)) if (!errnoNames.has(num)) errnoNames.set(num, name);

/** 'ENOENT' for 2 (or -2); undefined for a number Linux has no name for. */
export function errnoName(errno: number): string | undefined {
  return errnoNames.get(Math.abs(errno));
}

export interface SystemErrorFields {
  path?: string;
  spawnargs?: string[];
  /** Extra words after the code, e.g. what the child was doing. */
  detail?: string;
}

/**
 * A failed system call, shaped like the errors Node's own child_process
 * raises: `code` ('ENOENT'), `errno` (negative, as libuv reports it),
 * `syscall`, and for spawns `path` and `spawnargs`.
 */
export class SystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
  spawnargs?: string[];
  constructor(errno: number, syscall: string, fields: SystemErrorFields = {}) {
    const neg = -Math.abs(errno);
    const code = errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
    super(`${syscall} ${code}${fields.detail ? ` (${fields.detail})` : ''}`);
    Object.defineProperty(this, 'name', { value: 'Error', enumerable: false, configurable: true, writable: true });
    this.code = code;
    this.errno = neg;
    this.syscall = syscall;
    if (fields.path !== undefined) this.path = fields.path;
    if (fields.spawnargs !== undefined) this.spawnargs = fields.spawnargs;
    Error.captureStackTrace(this, SystemError);
  }
}
