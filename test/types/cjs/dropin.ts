// CommonJS with module commonjs and node10 resolution (see tsconfig.json):
// code written for node:child_process, import switched. Type-checked only.
import { exec, execFile, execFileSync, execSync, spawn, spawnSync, type ChildProcess } from 'clonefd/child_process';
import childProcess from 'clonefd/child_process';
import * as star from 'clonefd/child_process';
import type * as node from 'node:child_process';
import { promisify } from 'node:util';
import { spawn as coreSpawn, type ClonefdInfo } from 'clonefd';

export async function main(): Promise<void> {
  const { stdout } = await promisify(execFile)('uname', ['-s']);
  console.log(stdout.trim());
  const r = await promisify(exec)('echo hi', { encoding: 'buffer' });
  const b: Buffer = r.stdout;
  const child: ChildProcess = spawn('sh', ['-c', 'exit 3'], { stdio: 'ignore' });
  child.on('exit', (code, signal) => console.log(code, signal));
  const info: ClonefdInfo = await child.exited;
  const asNode: node.ChildProcess = child;
  const t: string = execSync('echo hi', { encoding: 'utf8' });
  const u: Buffer = execFileSync('ls');
  const v: string = spawnSync('ls', { encoding: 'utf8' }).stdout;
  execFile('ls', ['-l'], (error, out, err) => console.log(error?.code, out.length, err.length));
  childProcess.spawn('ls').stdout.pipe(process.stdout);
  star.default.exec('ls', (_e, out) => console.log(out.trim()));
  const p = coreSpawn('cat');
  p.stdin.end('x');
  // @ts-expect-error -- unknown option of the core
  coreSpawn('ls', [], { shell: true });
  console.log(b, info, asNode, t, u, v);
}
