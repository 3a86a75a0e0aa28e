// Signal names and numbers, validated the way Node's child_process does.
import { constants } from 'node:os';
import { invalidArgType, unknownSignal } from './errors';

const byName: Record<string, number> = { ...constants.signals } as Record<string, number>;
const byNumber = new Map<number, string>();
for (const [name, num] of Object.entries(byName)) {
  // SIGIOT/SIGABRT and SIGPOLL/SIGIO share numbers: keep the first (POSIX) name.
  if (!byNumber.has(num)) byNumber.set(num, name);
}

export const SIGKILL: number = byName.SIGKILL;
export const SIGTERM: number = byName.SIGTERM;
/** What kill() and killSignal default to, as in child_process. */
export const DEFAULT_KILL_SIGNAL = SIGTERM;

/** Highest signal number on Linux (SIGRTMAX). */
const SIGRTMAX = 64;

/** A signal name or number → its number; throws ERR_UNKNOWN_SIGNAL. */
export function toSignalNumber(signal: unknown, name = 'signal'): number {
  if (typeof signal === 'number') {
    if (Number.isInteger(signal) && signal >= 0 && signal <= SIGRTMAX) return signal;
    throw unknownSignal(signal);
  }
  if (typeof signal === 'string') {
    const num = byName[signal];
    if (num !== undefined) return num;
    throw unknownSignal(signal);
  }
  throw invalidArgType(name, 'of type string or number', signal);
}

/**
 * A signal's name as reported by clonefd: Node's names, or `SIG<n>` for
 * the ones Node has no name for (the real-time signals, 34-64).
 */
export type SignalName = NodeJS.Signals | `SIG${number}`;

/** A signal number → its name ('SIGKILL'), or 'SIG<n>' for unnamed ones. */
export function signalName(num: number): SignalName {
  return (byNumber.get(num) as NodeJS.Signals | undefined) ?? `SIG${num}`;
}

/**
 * Node's convertToValidSignal (lib/internal/util.js), the drop-in's rule: a
 * number that os.constants.signals names (so not 0, nor the real-time
 * signals 32-64), or a name in any case ('sigterm'); anything else,
 * whatever its type, is ERR_UNKNOWN_SIGNAL.
 */
export function convertToValidSignal(signal: unknown): number {
  if (typeof signal === 'number' && byNumber.has(signal)) return signal;
  if (typeof signal === 'string') {
    const num = Object.hasOwn(byName, signal.toUpperCase()) ? byName[signal.toUpperCase()] : undefined;
    if (num) return num;
  }
  throw unknownSignal(signal);
}
