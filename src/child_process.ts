/**
 * clonefd/child_process: a drop-in for `node:child_process` whose children
 * are clonefd children (no SIGCHLD, pidfd kill, the exit record with its
 * rusage). Change one import:
 *
 *   import { spawn, execFile, exec, spawnSync, execFileSync, execSync } from 'clonefd/child_process';
 *
 * Same signatures, options, callbacks, promisified forms and errors as
 * Node's. Not supported: IPC ('ipc' in stdio, fork()), which throw
 * ERR_CLONEFD_IPC_UNSUPPORTED.
 *
 * This file is the public façade; the implementation follows Node's own
 * seams in src/compat/: args.ts (argument rules), child.ts (ChildProcess,
 * spawn), exec.ts (execFile, exec), sync.ts (the sync forms).
 */
import { ipcUnsupported } from './compat/args';
import { ChildProcess, spawn } from './compat/child';
import { exec, execFile } from './compat/exec';
import { execFileSync, execSync, spawnSync } from './compat/sync';

export type { SpawnOptions, ExecFileOptions, SpawnSyncOptions } from './compat/args';
export type { ExecCallback, ExecError } from './compat/exec';
export type { SpawnSyncReturns } from './compat/sync';
export { ChildProcess, spawn, execFile, exec, spawnSync, execFileSync, execSync };

/** `child_process.fork()`: not available (no IPC). */
export function fork(): never {
  throw ipcUnsupported('fork()');
}

export default { spawn, execFile, exec, spawnSync, execFileSync, execSync, fork, ChildProcess };
