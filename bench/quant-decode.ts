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
 *
 * Then the fused expert stage of the same token (shaders/moe_qffn.metal): the
 * two dispatches moe_qffn_gate_up_q4 (gate, up and the activation of the 8
 * experts) and moe_qffn_down_accum_q4 (down projections weighted and summed,
 * with the residual), their packed weights (18.9 MB) against the copy
 * bandwidth and against a read ceiling of the same bytes in the same number
 * of dispatches: `read` of the gate+up bytes plus `read` of the down bytes.
 * The q8 and f32 pairs are printed beside it (f32: 32 experts stacked, the
 * selected 8 read; the stack size does not change what one dispatch reads).
 *
 * Targets: the fused q4 stage ≥ 55% of copy and ≥ 85% of the 2-dispatch read ceiling.
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
  shape: string;
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
  // with --json an error is reported on stdout ({"error": ...}), not stderr
  if (r.status !== 0) throw new Error(`moe bench ${args.join(' ')} exited ${r.status}:\n${r.stderr}${r.stdout}`);
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
  fused(flags, peak?.bandwidthGBs ?? NaN);
}

const gb = (v: number): string => v.toFixed(v < 10 ? 2 : 0);

/** The fused pairs, the 2-dispatch read ceiling and the ratios. */
function fused(flags: string[], copy: number): void {
  const [E, K, H, I, G] = [128, 8, 2048, 768, 64];
  // f32 has no groups: --group-size does not apply to it (and is an error)
  const shapeOf = (fmt: string): string[] => ['--top-k', String(K), ...(fmt === 'f32' ? [] : ['--group-size', String(G)])];
  const pairs: [fmt: string, bits: number, experts: number][] = [
    ['q4', 4, E],
    ['q8', 8, E],
    ['f32', 32, 32],
  ];
  console.log(`\nfused expert stage of one token (Qwen3-30B-A3B: hidden ${H}, intermediate ${I}, top-${K} of ${E}, group ${G}), two dispatches:`);
  const results: Record<string, { us: number; bytes: number }> = {};
  for (const [fmt, bits, experts] of pairs) {
    const gu = bench([...flags, '--kernel', `qffn-gate-up-${fmt}`, ...shapeOf(fmt), '--experts', String(experts), '--out-dim', String(I), '--in-dim', String(H), '--act', '0']).cases[0] as Case;
    const dn = bench([...flags, '--kernel', `qffn-down-accum-${fmt}`, ...shapeOf(fmt), '--experts', String(experts), '--out-dim', String(H), '--in-dim', String(I), '--add-residual', '1']).cases[0] as Case;
    const guBytes = (2 * K * I * H * bits) / 8;
    const dnBytes = (K * H * I * bits) / 8;
    const us = (gu.medianNs + dn.medianNs) / 1000;
    results[fmt] = { us, bytes: guBytes + dnBytes };
    for (const [c, b] of [[gu, guBytes], [dn, dnBytes]] as const) {
      console.log(`  ${c.kernel.padEnd(20)} ${(c.medianNs / 1000).toFixed(2).padStart(7)} us  ${(b / 1e6).toFixed(2).padStart(6)} MB  ${gb(b / c.medianNs).padStart(5)} GB/s  (noise ${(100 * c.noise).toFixed(2)}%, ${c.samples} samples)`);
    }
    const gbs = (guBytes + dnBytes) / (us * 1000);
    console.log(`  ${`stage ${fmt}`.padEnd(20)} ${us.toFixed(2).padStart(7)} us  ${((guBytes + dnBytes) / 1e6).toFixed(2).padStart(6)} MB  ${gb(gbs).padStart(5)} GB/s = ${((100 * gbs) / copy).toFixed(1)}% of copy`);
  }
  const q4 = results.q4 as { us: number; bytes: number };
  const readOf = (bytes: number): Case => bench([...flags, '--kernel', 'read', '--elements', String(bytes / 4)]).cases[0] as Case;
  const r1 = readOf((2 * K * I * H) / 2);
  const r2 = readOf((K * H * I) / 2);
  const readUs = (r1.medianNs + r2.medianNs) / 1000;
  const readGBs = q4.bytes / (readUs * 1000);
  const q4GBs = q4.bytes / (q4.us * 1000);
  console.log(`  read ceiling, 2 dispatches of the q4 bytes: ${(r1.medianNs / 1000).toFixed(2)} + ${(r2.medianNs / 1000).toFixed(2)} = ${readUs.toFixed(2)} us, ${gb(readGBs)} GB/s = ${((100 * readGBs) / copy).toFixed(1)}% of copy`);
  const pctCopy = (100 * q4GBs) / copy;
  const pctRead = (100 * q4GBs) / readGBs;
  console.log(`\nfused q4 stage: ${gb(q4GBs)} GB/s = ${pctCopy.toFixed(1)}% of copy (${copy.toFixed(0)} GB/s), ${pctRead.toFixed(1)}% of the 2-dispatch read ceiling`);
  console.log(`${pctCopy >= 55 ? 'PASS' : 'FAIL'}  fused q4 stage ≥ 55% of copy`);
  console.log(`${pctRead >= 85 ? 'PASS' : 'FAIL'}  fused q4 stage ≥ 85% of the 2-dispatch read ceiling`);
}

main();
