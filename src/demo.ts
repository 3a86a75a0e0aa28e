// `npm start`: a few children started at once; each line is printed when
// that child's clonefd becomes readable, with the record read from it.
import { clonefd, CLK_TCK, O_CLOEXEC, O_NONBLOCK, type ClonefdHandle } from './index';

interface Job {
  label: string;
  file: string;
  args: string[];
  timeout?: number;
}

const burn = "let x=0;const t=Date.now();while(Date.now()-t<300)x++";
const jobs: Job[] = [
  { label: 'exits 0', file: 'true', args: [] },
  { label: 'exits 3', file: 'sh', args: ['-c', 'sleep 0.1; exit 3'] },
  { label: 'burns 0.3 s of CPU', file: process.execPath, args: ['-e', burn] },
  { label: 'killed by timeout', file: 'sleep', args: ['10'], timeout: 400 },
  { label: 'sleeps 0.6 s', file: 'sleep', args: ['0.6'] },
];

async function main(): Promise<void> {
  const t0 = Date.now();
  console.log(`clonefd demo: ${jobs.length} children at once; a line appears as each child's fd becomes readable`);
  console.log(`(utime/stime in clock ticks of 1/${CLK_TCK} s; struct clonefd_info shown as its 24 bytes)\n`);
  console.log('   ms  pid      fd  child               code status utime stime  clonefd_info');
  const handles: ClonefdHandle[] = jobs.map((job) =>
    clonefd(job.file, job.args, { flags: O_CLOEXEC | O_NONBLOCK, stdio: 'ignore', timeout: job.timeout }),
  );
  await Promise.all(
    handles.map(async (h, i) => {
      const info = await h.readAsync();
      if (!info) return;
      const ms = String(Date.now() - t0).padStart(5);
      const what = jobs[i].label.padEnd(19);
      const status = info.signal ?? String(info.status);
      console.log(
        `${ms}  ${String(h.pid).padEnd(7)} ${String(h.fd).padStart(3)}  ${what} ${String(info.code).padStart(4)} ${status.padStart(6)} ${String(info.utime).padStart(5)} ${String(info.stime).padStart(5)}  ${info.toBuffer().toString('hex')}`,
      );
      h.close();
    }),
  );
  try {
    clonefd('/nonexistent/program', []);
  } catch (err) {
    console.log(`\nexec errors are thrown at spawn, exactly: ${(err as Error).message}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
