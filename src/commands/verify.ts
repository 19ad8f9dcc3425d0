import { Flags, type Interfaces } from '@oclif/core';
import ora, { type Ora } from 'ora';
import { getBackend } from '../backend/index.js';
import { ensureDeviceTrusted } from '../backend/selftest.js';
import { ShaderCompileError, UsageError } from '../errors.js';
import { readShader } from '../harness/source.js';
import { findSpec, SPECS } from '../kernels/index.js';
import { buildCases, presetModel } from '../kernels/select.js';
import { kernelStatus, verifyRenderers, VERIFY_SCHEMA, type VerifyReport } from '../report/verify.js';
import { reportHead } from '../report/common.js';
import { skippedCase, verifySpec, type CaseResult } from '../harness/run.js';
import { loadManifest, resolveManifest, type Manifest } from '../harness/manifest.js';
import type { KernelSpec } from '../kernels/spec.js';
import { backendFlag, MoeCommand, parseList, reportFlags, safetyFlags, safetyRunOptions, seedFlag } from '../cli/base.js';

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

Exit codes: 0 all cases pass, 1 a case failed (wrong output, out-of-bounds access, timeout, race...), 2 bad usage or environment (unknown kernel, bad sizes, a case whose buffers would not fit in memory, a shader that does not compile or whose signature does not match the spec).`;

  static override examples = [
    '<%= config.bin %> verify',
    '<%= config.bin %> verify --kernel softmax-topk --backend cpu',
    '<%= config.bin %> verify --kernel softmax-topk --tokens 1,16 --experts 60 --top-k 4',
    '<%= config.bin %> verify --kernel moe_softmax_topk_f32 --shader ./my_kernels.metal',
    '<%= config.bin %> verify --kernel softmax-topk --shader ./my_kernels.metal --schedules 4',
    '<%= config.bin %> verify --manifest ./engine.manifest.json',
    '<%= config.bin %> verify --manifest ./engine.manifest.json --kernel kernel_rms_norm --rows 4',
    '<%= config.bin %> verify --junit results.xml --markdown >> $GITHUB_STEP_SUMMARY',
  ];

  static override flags = {
    kernel: Flags.string({ char: 'k', description: 'kernel(s) to verify, by short name or entry point, comma-separated (default: all)', env: 'MOE_KERNEL' }),
    backend: backendFlag,
    seed: seedFlag,
    shader: Flags.string({ description: 'your own .metal file to verify in place of ours (needs --kernel)' }),
    entry: Flags.string({ description: "entry point in --shader (default: the spec's entry name)", dependsOn: ['shader'] }),
    manifest: Flags.string({
      description: 'binding manifest (docs/manifest.md): verify every entry of its shader as it binds and launches them (--kernel picks entries or specs)',
      exclusive: ['shader'],
    }),
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
    ...paramFlags(),
  };

  async run(): Promise<VerifyReport> {
    const { flags } = await this.parse(Verify);
    const f = flags as Record<string, unknown>;
    const picked = flags.kernel ? flags.kernel.split(',').map((s) => s.trim()).filter((s) => s !== '') : undefined;
    let manifest: Manifest | null = null;
    /** What runs: a spec (ours, or derived from a manifest entry), its shader and entry, and why a case is skipped. */
    let jobs: { spec: KernelSpec; base: KernelSpec; shaderFile?: string; entry?: string; skip: (p: Record<string, number>) => string | null }[];
    const compileOnly: { entry: string; note?: string; error?: string }[] = [];
    if (flags.manifest) {
      manifest = loadManifest(flags.manifest);
      const resolved = resolveManifest(manifest, picked);
      jobs = [];
      for (const k of resolved.kernels) {
        if (k.spec && k.base) jobs.push({ spec: k.spec, base: k.base, shaderFile: manifest.shaderFile, entry: k.entry, skip: k.skip });
        else compileOnly.push({ entry: k.entry, note: k.note });
      }
    } else {
      const specs = (picked ?? SPECS.map((s) => s.name)).map(findSpec);
      if (flags.shader && specs.length !== 1) throw new UsageError('--shader needs exactly one --kernel to check it against');
      jobs = specs.map((s) => ({ spec: s, base: s, shaderFile: flags.shader, entry: flags.entry, skip: () => null }));
    }
    if (flags.preset) presetModel(flags.preset);
    const values: Record<string, number[] | undefined> = {};
    for (const { spec: s } of jobs) for (const p of s.params) {
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
      for (const entry of compileOnly) {
        const m = manifest as Manifest;
        if (spinner) spinner.text = `${entry.entry}: compiling ${m.shaderRel}`;
        try {
          await backend.compile(readShader(m.shaderFile), m.shaderFile, entry.entry);
        } catch (e) {
          // Kernel by kernel: one that does not compile is reported, the others run.
          if (!(e instanceof ShaderCompileError)) throw e;
          entry.error = e.message;
        }
      }
      for (const job of jobs) {
        const spec = job.spec;
        const all = buildCases(spec, values, inputSets, flags.preset);
        if (all.length === 0) continue;
        if (spinner) spinner.text = `${spec.name}: compiling ${job.shaderFile ?? spec.shader}`;
        let done = 0;
        const o = {
          seed: flags.seed,
          shaderFile: job.shaderFile,
          entry: job.entry,
          manifest: flags.manifest,
          backendFlag: flags.backend,
          runOptions,
          schedules: flags.schedules,
          onCase: () => {
            done++;
            if (spinner) spinner.text = `${spec.name}: case ${done}/${all.length}`;
          },
        };
        const skippedRows: CaseResult[] = [];
        const cases = all.filter((c) => {
          const why = job.skip(c.params);
          if (why !== null) skippedRows.push(skippedCase(spec, c, job.entry ?? spec.entry, o, why));
          return why === null;
        });
        let ran: CaseResult[];
        let sourceHash = '';
        try {
          ({ results: ran, sourceHash } = await verifySpec(spec, backend, cases, o));
        } catch (e) {
          // With a manifest, a kernel that does not compile is one failed kernel: its cases are ERROR rows, the others run.
          if (!manifest || !(e instanceof ShaderCompileError)) throw e;
          ran = cases.map((c) => ({ ...skippedCase(spec, c, job.entry ?? spec.entry, o, ''), status: 'ERROR' as const, skipReason: undefined, error: `does not compile: ${e.message}` }));
        }
        const rows = [...ran, ...skippedRows];
        results.push(...rows);
        kernels.push({
          name: spec.name,
          entry: job.entry ?? spec.entry,
          shader: manifest ? manifest.shaderRel : job.shaderFile ?? `shaders/${spec.shader}`,
          sourceHash,
          math: spec.math,
          status: kernelStatus(rows),
          ...(manifest ? { spec: job.base.name, manifest: manifest.file } : {}),
        });
      }
    } finally {
      spinner?.stop();
    }
    if (results.length === 0 && compileOnly.length === 0) throw new UsageError('no cases selected (check --preset, --inputs and the shape flags)');
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
      ...(manifest
        ? { manifest: { file: manifest.file, shader: manifest.shaderRel }, compiledOnly: compileOnly.map((c) => ({ entry: c.entry, shader: (manifest as Manifest).shaderRel, ...(c.note ? { note: c.note } : {}), ...(c.error ? { error: c.error } : {}) })) }
        : {}),
    };
    if (report.summary.failed + report.summary.errors > 0 || compileOnly.some((c) => c.error)) process.exitCode = 1;
    return this.emit(report, verifyRenderers, flags);
  }
}
