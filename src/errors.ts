// Errors shaped like Node's own: argument errors carry Node's ERR_* codes,
// system errors carry code/errno/syscall (+ path and spawnargs for spawns).
import { constants } from 'node:os';
import { format, inspect } from 'node:util';

/** Node's determineSpecificType (lib/internal/errors.js): how a received value is shown. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  switch (typeof value) {
    case 'bigint':
      return `type bigint (${value}n)`;
    case 'number':
      if (value === 0) return 1 / value === -Infinity ? 'type number (-0)' : 'type number (0)';
      return `type number (${value})`;
    case 'boolean':
      return `type boolean (${value})`;
    case 'symbol':
      return `type symbol (${String(value)})`;
    case 'function':
      return `function ${value.name}`;
    case 'object': {
      const ctor = (value as object).constructor as { name?: unknown } | undefined;
      if (ctor && 'name' in ctor) return `an instance of ${String(ctor.name)}`;
      return inspect(value, { depth: -1 });
    }
    case 'string': {
      const v = value.length > 28 ? `${value.slice(0, 25)}...` : value;
      return v.includes("'") ? `type string (${JSON.stringify(v)})` : `type string ('${v}')`;
    }
    default: {
      let shown = inspect(value, { colors: false });
      if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
      return `type ${typeof value} (${shown})`;
    }
  }
}

// Node's NodeError classes (lib/internal/errors.js makeNodeErrorWithCode):
// one subclass of the base per code, whose instances have an own
// enumerable `code`, a stack whose first line reads `TypeError [ERR_X]:
// message`, a toString() that says the same, and `constructor` the base.
type ErrorCtor = new (message: string) => Error;
const nodeErrorClasses = new Map<ErrorCtor, Map<string, ErrorCtor>>();
function nodeErrorClass(Base: ErrorCtor, code: string): ErrorCtor {
  let byCode = nodeErrorClasses.get(Base);
  if (!byCode) nodeErrorClasses.set(Base, (byCode = new Map()));
  let C = byCode.get(code);
  if (!C) {
    C = class NodeError extends Base {
      override get ['constructor'](): ErrorCtor {
        return Base;
      }
      override toString(): string {
        return `${this.name} [${code}]: ${this.message}`;
      }
    };
    byCode.set(code, C);
  }
  return C;
}

/** A Node-shaped error with `code`; the stack starts below `caller`. */
function make<E extends Error>(Base: new (message: string) => E, code: string, message: string, caller: Function): E & { code: string } {
  const err = new (nodeErrorClass(Base, code))(message) as E;
  Object.defineProperty(err, 'code', { value: code, enumerable: true, writable: true, configurable: true });
  // The code in the stack's first line, as Node shows it: the name says it while V8 formats the stack.
  Object.defineProperty(err, 'name', { value: `${Base.prototype.name} [${code}]`, enumerable: false, writable: true, configurable: true });
  Error.captureStackTrace(err, caller);
  void err.stack;
  delete (err as { name?: string }).name;
  return err as E & { code: string };
}

/** An Error (or TypeError, RangeError) with Node's enumerable `code`, e.g. `ERR_CHILD_PROCESS_STDIO_MAXBUFFER`. */
export function codedError<E extends Error>(Ctor: new (message: string) => E, code: string, message: string): E & { code: string } {
  return make(Ctor, code, message, codedError);
}

function kind(name: string): string {
  return name.includes('.') ? 'property' : 'argument';
}

// Node's ERR_INVALID_ARG_TYPE wording for a list of expected types.
const kTypes = ['string', 'function', 'number', 'object', 'Function', 'Object', 'boolean', 'bigint', 'symbol'];
function formatList(list: string[], last: string): string {
  return list.length < 3 ? list.join(` ${last} `) : `${list.slice(0, -1).join(', ')}, ${last} ${list[list.length - 1]}`;
}
/** Node's phrase for `expected` ('string', ['boolean', 'string'], 'AbortSignal', 'int32'...). */
export function expectedPhrase(expected: string | string[]): string {
  const list = Array.isArray(expected) ? expected : [expected];
  const types: string[] = [];
  const instances: string[] = [];
  const other: string[] = [];
  for (const value of list) {
    if (kTypes.includes(value)) types.push(value.toLowerCase());
    else if (/^([A-Z][a-z0-9]*)+$/.test(value)) instances.push(value);
    else other.push(value);
  }
  if (instances.length > 0 && types.includes('object')) {
    types.splice(types.indexOf('object'), 1);
    instances.push('Object');
  }
  let msg = '';
  if (types.length > 0) {
    msg += `${types.length > 1 ? 'one of type' : 'of type'} ${formatList(types, 'or')}`;
    if (instances.length > 0 || other.length > 0) msg += ' or ';
  }
  if (instances.length > 0) {
    msg += `an instance of ${formatList(instances, 'or')}`;
    if (other.length > 0) msg += ' or ';
  }
  if (other.length > 0) {
    if (other.length > 1) msg += `one of ${formatList(other, 'or')}`;
    else msg += `${other[0].toLowerCase() !== other[0] ? 'an ' : ''}${other[0]}`;
  }
  return msg;
}

/**
 * `ERR_INVALID_ARG_TYPE` (TypeError). `expected` is either Node's list
 * form (`['boolean', 'string']`, `'Object'`, `'int32'`), worded as Node
 * words it, or a phrase already worded (`'of type string'`).
 */
export function invalidArgType(name: string, expected: string | string[], actual: unknown): TypeError {
  const phrase = Array.isArray(expected) || !/^(of type|one of|an instance|an? )/.test(expected) ? expectedPhrase(expected) : expected;
  return make(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" ${kind(name)} must be ${phrase}. Received ${describe(actual)}`, invalidArgType);
}

/** `ERR_INVALID_ARG_VALUE` (TypeError). */
export function invalidArgValue(name: string, value: unknown, reason = 'is invalid'): TypeError {
  let shown = inspect(value);
  if (shown.length > 128) shown = `${shown.slice(0, 128)}...`;
  return make(TypeError, 'ERR_INVALID_ARG_VALUE', `The ${kind(name)} '${name}' ${reason}. Received ${shown}`, invalidArgValue);
}

function numericalSeparator(val: string): string {
  let res = '';
  let i = val.length;
  const start = val[0] === '-' ? 1 : 0;
  for (; i >= start + 4; i -= 3) res = `_${val.slice(i - 3, i)}${res}`;
  return `${val.slice(0, i)}${res}`;
}

/** `ERR_OUT_OF_RANGE` (RangeError). */
export function outOfRange(name: string, range: string, value: unknown): RangeError {
  let received: string;
  if (Number.isInteger(value) && Math.abs(value as number) > 2 ** 32) received = numericalSeparator(String(value));
  else if (typeof value === 'bigint') {
    received = String(value);
    if (value > 2n ** 32n || value < -(2n ** 32n)) received = numericalSeparator(received);
    received += 'n';
  } else received = inspect(value);
  return make(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${received}`, outOfRange);
}

/** `ERR_UNKNOWN_SIGNAL` (TypeError), worded as Node's `Unknown signal: %s`. */
export function unknownSignal(signal: unknown): TypeError {
  return make(TypeError, 'ERR_UNKNOWN_SIGNAL', format('Unknown signal: %s', signal), unknownSignal);
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
  // Declared only: own properties when given, as Node's (no `path: undefined` key).
  declare path?: string;
  declare spawnargs?: string[];
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
