/**
 * `npm run bench:quant`: the expert-indexed 4-bit mat-vecs of one decode token
 * (issue 9) against the two figures that bound them, on the default backend
 * (CUDA where a GPU is found) or the one named by MOE_BACKEND:
 *
 *   - the copy bandwidth (moe_copy_f32 over 256 MiB, `--measure-peak`);
 *   - the read ceiling: `read`, a kernel that only reads as many bytes as the
 *     packed weights, in one dispatch.
 *
 * Shapes: Qwen3-30B-A3B, top-8 of 128 experts, gate/up 2048 → 768 (x shared
 * by the slots) and down 768 → 2048 (one x row per slot), group size 64.
 * On CUDA each sample is 50 dispatches replayed from a CUDA graph (`--batch
 * 50 --graph`), with cold weights (buffer copies rotated through twice the
 * L2); BENCH_QUANT_FLAGS replaces those flags (e.g. "--batch 1").
 *
 * Target (issue 9): the tiled kernel reads its packed weights at ≥ 60% of
 * the copy bandwidth.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/util/paths.js';

interface Case {
  kernel: string;
  medianNs: number;
  noise: number;
  samples: number;
  gbps: number;
  weightGBs?: number;
}
interface Report {
  backend: string;
  device: { name: string };
  clock: string;
  peak: { bandwidthGBs: number; source: string } | null;
  cases: Case[];
}

const backend = process.env.MOE_BACKEND;
const timing = (process.env.BENCH_QUANT_FLAGS ?? '').trim();

function bench(args: string[]): Report {
  const r = spawnSync(process.execPath, [join(PACKAGE_ROOT, 'bin', 'run.js'), 'bench', ...args, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`moe bench ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as Report;
}

function main(): void {
  const chosen = backend ? ['--backend', backend] : [];
  const common = [...chosen, '--max-time', '1'];
  const probe = bench([...chosen, '--kernel', 'empty', '--max-time', '0.1']);
  const gpuFlags = probe.backend === 'cuda' ? (timing ? timing.split(/\s+/) : ['--batch', '50', '--graph']) : [];
  const flags = [...common, ...gpuFlags];
  const shapes: [name: string, out: number, inDim: number, xPerPair: number][] = [
    ['gate/up 2048 -> 768', 768, 2048, 0],
    ['down    768 -> 2048', 2048, 768, 1],
  ];
  let peak: Report['peak'] = null;
  console.log(`backend: ${probe.backend} (${probe.device.name})`);
  for (const [name, out, inDim, xpp] of shapes) {
    const words = (8 * out * inDim) / 8; // 4-bit packed weights of the 8 selected experts, in 32-bit words
    const q = bench([
      ...flags,
      ...(peak ? [] : ['--measure-peak']),
      '--kernel', 'qmv4-expert,qmv4-expert-naive',
      '--experts', '128', '--top-k', '8', '--out-dim', String(out), '--in-dim', String(inDim), '--x-per-pair', String(xpp), '--group-size', '64',
    ]);
    const rd = bench([...flags, '--kernel', 'read', '--elements', String(words)]);
    const r = { ...q, cases: [...q.cases, ...rd.cases] };
    peak = peak ?? r.peak;
    if (name.startsWith('gate')) console.log(`clock: ${r.clock}\ncopy bandwidth: ${peak ? `${peak.bandwidthGBs.toFixed(0)} GB/s (${peak.source})` : 'unknown'}`);
    const copy = peak?.bandwidthGBs ?? NaN;
    console.log(`\n${name}: ${((words * 4) / 1e6).toFixed(2)} MB of packed weights (top-8 of 128 experts)`);
    for (const c of r.cases) {
      const w = c.weightGBs ?? c.gbps;
      const what = c.kernel === 'read' ? 'read ceiling   ' : c.kernel === 'qmv4-expert' ? 'tiled          ' : 'naive          ';
      console.log(
        `  ${what} ${c.kernel.padEnd(18)} ${(c.medianNs / 1000).toFixed(2).padStart(7)} us  ${w.toFixed(w < 10 ? 2 : 0).padStart(5)} GB/s = ${((100 * w) / copy).toFixed(1).padStart(5)}% of copy` +
          `  (noise ${(100 * c.noise).toFixed(2)}%, ${c.samples} samples)`,
      );
    }
  }
  console.log('\ntarget (issue 9): tiled ≥ 60% of copy for both shapes');
}

main();
