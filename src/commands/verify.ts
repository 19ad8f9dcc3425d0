import { Flags, type Interfaces } from '@oclif/core';
import ora, { type Ora } from 'ora';
import { getBackend } from '../backend/index.js';
import { ensureDeviceTrusted } from '../backend/selftest.js';
import { UsageError } from '../errors.js';
import { findSpec, SPECS } from '../kernels/index.js';
import { buildCases, presetModel } from '../kernels/select.js';
import { kernelStatus, verifyRenderers, VERIFY_SCHEMA, type VerifyReport } from '../report/verify.js';
import { reportHead } from '../report/common.js';
import { verifySpec, type CaseResult } from '../harness/run.js';
import { backendFlag, MoeCommand, parseList, reportFlags, safetyFlags, safetyRunOptions, seedFlag } from '../cli/base.js';
import { childBackend, childCaseDone, childReport, delegateGpuSafety, gpuSafetyFlags } from '../cli/gpu-safety.js';

/** One flag per spec parameter (e.g. --tokens, --experts, --top-k), shared by every spec that has it. */
function paramFlags(): Record<string, Interfaces.OptionFlag<string | undefined>> {
  const out: Record<string, Interfaces.OptionFlag<string | undefined>> = {};
  for (const s of SPECS) {
    for (const p of s.params) {
      const flag = p.flag ?? p.name;
      if (out[flag]) continue;
      out[flag] = Flags.string({ description: `${p.description} (comma list sweeps)`, helpGroup: 'SHAPE' });
    }
  }
  return out;
}

export default class Verify extends MoeCommand {
  static override summary = 'Run kernels on seeded inputs and compare every output with the TypeScript reference';
  static override description = `Each case builds seeded random inputs, runs the real .metal kernel on the backend, and compares every output with a pure-TypeScript reference: cosine similarity, max_abs, rel_max_abs, element-wise atol/rtol, exact integers (ties allowed). Outputs are filled with a NaN canary first, so elements never written are reported.

On the cpu backend every buffer sits between inaccessible guard pages: an out-of-bounds access fails the case with the buffer, the offset and the thread; a kernel that runs past --timeout is abandoned; a stack overflow is reported (raise --stack-size). --schedules N re-runs each case under N thread orders between barriers (forward, reverse, seeded shuffles) and fails it when an output differs bit for bit: a race.

On the GPU backends every buffer sits between redzones checked after each dispatch (an out-of-bounds write fails the case with the buffer, the side and the byte offsets); --sanitize TOOL (cuda) re-runs the verification under NVIDIA's compute-sanitizer and fails the cases it reports on; --validate (metal) re-runs it with Apple's shader validation.

Exit codes: 0 all cases pass, 1 a case failed (wrong output, out-of-bounds access, timeout, race...), 2 bad usage or environment (unknown kernel, bad sizes, a case whose buffers would not fit in memory, a shader that does not compile or whose signature does not match the spec).`;

  static override examples = [
    '<%= config.bin %> verify',
    '<%= config.bin %> verify --kernel softmax-topk --backend cpu',
    '<%= config.bin %> verify --kernel softmax-topk --tokens 1,16 --experts 60 --top-k 4',
    '<%= config.bin %> verify --kernel moe_softmax_topk_f32 --shader ./my_kernels.metal',
    '<%= config.bin %> verify --kernel softmax-topk --shader ./my_kernels.metal --schedules 4',
    '<%= config.bin %> verify --backend cuda --kernel softmax-topk --shader ./my_kernels.metal --sanitize racecheck',
    '<%= config.bin %> verify --junit results.xml --markdown >> $GITHUB_STEP_SUMMARY',
  ];

  static override flags = {
    kernel: Flags.string({ char: 'k', description: 'kernel(s) to verify, by short name or entry point, comma-separated (default: all)', env: 'MOE_KERNEL' }),
    backend: backendFlag,
    seed: seedFlag,
    shader: Flags.string({ description: 'your own .metal file to verify in place of ours (needs --kernel)' }),
    entry: Flags.string({ description: "entry point in --shader (default: the spec's entry name)", dependsOn: ['shader'] }),
    inputs: Flags.string({ description: 'input set(s), comma-separated (default: all of the kernel\'s sets)' }),
    preset: Flags.string({ description: 'only the shapes of one model from fixtures/models.json (e.g. qwen3-30b-a3b)' }),
    ...reportFlags,
    schedules: Flags.integer({
      description: 'run each case under N thread orders between barriers (forward, reverse, seeded shuffles); fail when outputs differ bit for bit',
      default: 1,
      min: 1,
      max: 64,
      helpGroup: 'SAFETY',
    }),
    ...safetyFlags,
    ...gpuSafetyFlags,
    ...paramFlags(),
  };

  async run(): Promise<VerifyReport> {
    const { flags } = await this.parse(Verify);
    // --sanitize (cuda) and --validate (metal) re-run this command in a child process.
    const delegated = await delegateGpuSafety<VerifyReport>(flags, this.argv);
    if (delegated) return this.emit(delegated, verifyRenderers, flags);
    const f = flags as Record<string, unknown>;
    const names = flags.kernel ? flags.kernel.split(',').map((s) => s.trim()).filter((s) => s !== '') : SPECS.map((s) => s.name);
    const specs = names.map(findSpec);
    if (flags.shader && specs.length !== 1) throw new UsageError('--shader needs exactly one --kernel to check it against');
    if (flags.preset) presetModel(flags.preset);
    const values: Record<string, number[] | undefined> = {};
    for (const s of specs) for (const p of s.params) {
      const flag = p.flag ?? p.name;
      values[flag] = parseList(flag, f[flag] as string | undefined, { min: p.min ?? (p.kind === 'float' ? -Infinity : 1), float: p.kind === 'float' });
    }
    const inputSets = flags.inputs?.split(',').map((s) => s.trim());
    const runOptions = safetyRunOptions(flags);

    const backend = getBackend(flags.backend);
    await ensureDeviceTrusted(backend);  // GPU backends: the device self-test, or exit 2
    const device = backend.device();
    const spinner: Ora | null = this.interactive(flags) ? ora({ stream: process.stderr }).start('compiling') : null;
    const started = new Date();
    const t0 = performance.now();
    const results: CaseResult[] = [];
    const kernels: VerifyReport['kernels'] = [];
    try {
      for (const spec of specs) {
        const cases = buildCases(spec, values, inputSets, flags.preset);
        if (cases.length === 0) continue;
        if (spinner) spinner.text = `${spec.name}: compiling ${spec.shader}`;
        let done = 0;
        const { results: rows, sourceHash } = await verifySpec(spec, childBackend(backend), cases, {
          seed: flags.seed,
          shaderFile: flags.shader,
          entry: flags.entry,
          backendFlag: flags.backend,
          runOptions,
          schedules: flags.schedules,
          onCase: () => {
            childCaseDone();
            done++;
            if (spinner) spinner.text = `${spec.name}: case ${done}/${cases.length}`;
          },
        });
        results.push(...rows);
        kernels.push({
          name: spec.name,
          entry: flags.entry ?? spec.entry,
          shader: flags.shader ?? `shaders/${spec.shader}`,
          sourceHash,
          math: spec.math,
          status: kernelStatus(rows),
        });
      }
    } finally {
      spinner?.stop();
    }
    if (results.length === 0) throw new UsageError('no cases selected (check --preset, --inputs and the shape flags)');
    const ms = performance.now() - t0;
    const report: VerifyReport = {
      ...reportHead(VERIFY_SCHEMA, backend.name, device),
      seed: flags.seed,
      startedAt: started.toISOString(),
      durationMs: ms,
      summary: {
        cases: results.length,
        passed: results.filter((r) => r.status === 'PASS').length,
        failed: results.filter((r) => r.status === 'FAIL').length,
        errors: results.filter((r) => r.status === 'ERROR').length,
        skipped: results.filter((r) => r.status === 'SKIP').length,
        kernels: kernels.length,
      },
      kernels,
      cases: results,
    };
    if (report.summary.failed + report.summary.errors > 0) process.exitCode = 1;
    if (childReport(report)) return report;
    return this.emit(report, verifyRenderers, flags);
  }
}
