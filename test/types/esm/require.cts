// CommonJS under nodenext (a .cts file): require() resolves the "exports"
// conditions for require. Type-checked only.
import cp = require('clonefd/child_process');
import clonefd = require('clonefd');
import util = require('node:util');

async function main(): Promise<void> {
  const { stdout } = await util.promisify(cp.execFile)('uname', ['-s']);
  const s: string = stdout;
  const child = cp.spawn('sh', ['-c', 'exit 3'], { stdio: 'ignore' });
  child.on('exit', (code: number | null, signal: NodeJS.Signals | null) => console.log(code, signal, s));
  const p = clonefd.spawn('cat');
  p.stdin.end('x');
  const info: clonefd.ClonefdInfo = await p.exited;
  console.log(info.exitCode, cp.default.execSync('echo hi', { encoding: 'utf8' }).trim());
}
void main;
