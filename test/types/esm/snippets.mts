// Everyday code written for node:child_process (the shapes found in build
// scripts, CLIs and test helpers), only the import changed. Type-checked
// only (never run): `npm run test:types`.
import { exec, execFile, execFileSync, execSync, spawn, spawnSync, type ChildProcess, type ExecOptions, type SpawnOptions } from 'clonefd/child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const execAsync = promisify(exec);

// A git helper.
export async function git(args: string[], cwd: string): Promise<string> {
  const { stdout } = await execFileAsync('git', args, { cwd, maxBuffer: 64 * 1024 * 1024 });
  return stdout.trimEnd();
}

// A command runner that collects output and rejects with the exit code.
export function run(cmd: string, args: readonly string[], options: SpawnOptions = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => (out += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve({ code, out });
      else reject(new Error(`${cmd} failed: ${code ?? signal}`));
    });
  });
}

// Line by line from a long-running child, with a timeout and an AbortSignal.
export async function firstLine(cmd: string, signal: AbortSignal): Promise<string | undefined> {
  const child = spawn(cmd, { signal, timeout: 10_000, killSignal: 'SIGKILL' });
  child.stdin.end();
  const rl = createInterface({ input: child.stdout });
  for await (const line of rl) {
    child.kill();
    return line;
  }
  const [code] = (await once(child, 'exit')) as [number | null];
  console.log('exited', code);
  return undefined;
}

// Piping one child into another.
export function pipeline(): ChildProcess {
  const ls = spawn('ls', ['-la']);
  const wc = spawn('wc', ['-l'], { stdio: ['pipe', 'inherit', 'inherit'] });
  ls.stdout.pipe(wc.stdin);
  return wc;
}

// Sync forms in a build script.
export function version(): string {
  const node = execFileSync(process.execPath, ['--version'], { encoding: 'utf8' }).trim();
  const sha = execSync('git rev-parse HEAD', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  const r = spawnSync('uname', ['-r'], { encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(r.stderr);
  return `${node} ${sha} ${r.stdout.trim()}`;
}

// The callback style, with Node's error fields.
export function shell(command: string, options: ExecOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    exec(command, { ...options, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) {
        console.error(error.code, error.signal, error.killed, stderr);
        reject(error);
        return;
      }
      resolve(stdout);
    });
  });
}

export async function both(): Promise<void> {
  const [a, b] = await Promise.all([execAsync('uname -s'), execFileAsync('uname', ['-m'])]);
  console.log(a.stdout.trim(), b.stdout.trim());
  const bin = await execAsync('head -c 16 /dev/urandom', { encoding: 'buffer' });
  console.log(bin.stdout.toString('hex'));
}

// A child kept in a Map typed with the module's ChildProcess.
const children = new Map<number, ChildProcess>();
export function track(child: ChildProcess): void {
  if (child.pid !== undefined) children.set(child.pid, child);
  child.once('exit', () => child.pid !== undefined && children.delete(child.pid));
}
track(spawn('sleep', ['1'], { stdio: 'ignore', detached: true }));
