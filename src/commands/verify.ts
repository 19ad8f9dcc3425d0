import { Flags, type Interfaces } from '@oclif/core';
import { getBackend } from '../backend/index.js';
import { ensureDeviceTrusted } from '../backend/selftest.js';
import { basename, isAbsolute } from 'node:path';
import { ShaderCompileError, UsageError } from '../errors.js';
import { findSpec, SPECS } from '../kernels/index.js';
import { loadUserSpecs, withUserSpecs } from '../kernels/user.js';
import { unwrittenHint } from '../kernels/describe.js';
import { buildCases, checkShapeFlags, presetModel } from '../kernels/select.js';
import { parseShard, shardCases } from '../kernels/shard.js';
import type { KernelCase, KernelSpec } from '../kernels/spec.js';
import { kernelStatus, verifyRenderers, verifySummary, VERIFY_SCHEMA, type VerifyKernel, type VerifyReport } from '../report/verify.js';
import { reportHead } from '../report/common.js';
import { checkCases, skippedCase, verifySpec, type CaseResult } from '../harness/run.js';
import { loadManifest, resolveManifest, type Manifest } from '../harness/manifest.js';
import { readShader } from '../harness/source.js';
import { backendFlag, MoeCommand, paramAssignments, paramFlag, paramText, parseList, reportFlags, safetyFlags, safetyRunOptions, seedFlag, shardFlag } from '../cli/base.js';
import { startSpinner } from '../cli/terminal.js';
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
    '<%= config.bin %> verify --manifest ./engine.manifest.json',
    '<%= config.bin %> verify --manifest ./engine.manifest.json --kernel kernel_rms_norm --rows 4',
    '<%= config.bin %> verify --backend cuda --kernel softmax-topk --shader ./my_kernels.metal --sanitize racecheck',
    '<%= config.bin %> verify --junit results.xml --markdown >> $GITHUB_STEP_SUMMARY',
    '<%= config.bin %> verify --shard 2/3 --json > shard-2.json',
  ];

  static override flags = {
    kernel: Flags.string({ char: 'k', description: 'kernel(s) to verify, by short name or entry point, comma-separated (default: all)', env: 'MOE_KERNEL' }),
    backend: backendFlag,
    seed: seedFlag,
    shader: Flags.string({ description: 'your own .metal file to verify in place of ours (needs --kernel)' }),
    spec: Flags.string({
      description: 'a file of your own kernel specs (ESM or CommonJS .js, or .ts through tsx where installed) written with the moe-kernels API; without --kernel, its specs are the ones verified',
    }),
    entry: Flags.string({ description: "entry point in --shader (default: the spec's entry name)", dependsOn: ['shader'] }),
    manifest: Flags.string({
      description: 'binding manifest (docs/manifest.md): verify every entry of its shader as it binds and launches them (--kernel picks entries or specs)',
      exclusive: ['shader'],
    }),
    inputs: Flags.string({ description: 'input set(s), comma-separated (default: all of the kernel\'s sets)' }),
    preset: Flags.string({ description: 'only the shapes of one model from fixtures/models.json (e.g. qwen3-30b-a3b)' }),
    param: paramFlag,
    ...reportFlags,
    shard: shardFlag,
    verbose: Flags.boolean({ char: 'v', description: 'print every case (default: a row per kernel, and the failing cases in full)' }),
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
    const user = flags.spec ? await loadUserSpecs(flags.spec) : [];
    const known = flags.spec ? withUserSpecs(SPECS, user, flags.spec) : SPECS;
    const picked = flags.kernel ? flags.kernel.split(',').map((s) => s.trim()).filter((s) => s !== '') : undefined;
    let manifest: Manifest | null = null;
    /** What runs: a spec (ours, a user's, or derived from a manifest entry), its shader and entry, and why a case is skipped. */
    let jobs: Job[];
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
      const chosen = (picked ?? (flags.spec ? user : SPECS).map((s) => s.name)).map((n) => findSpec(n, known));
      if (flags.shader && chosen.length !== 1) {
        throw new UsageError(`--shader needs exactly one kernel to check it against (selected: ${chosen.map((s) => s.name).join(', ')}): give --kernel`);
      }
      if (flags.shader) readShader(flags.shader);
      jobs = chosen.map((s) => ({ spec: s, base: s, shaderFile: flags.shader, entry: flags.entry, skip: () => null }));
    }
    const specs = jobs.map((j) => j.spec);
    const jobOf = new Map(jobs.map((j) => [j.spec, j]));
    if (flags.preset) presetModel(flags.preset);
    const assigned = paramAssignments(flags.param, specs);
    const values: Record<string, number[] | undefined> = {};
    for (const { spec: s } of jobs) for (const p of s.params) {
      const flag = p.flag ?? p.name;
      values[flag] = parseList(flag, paramText(p, f, assigned), { min: p.min ?? (p.kind === 'float' ? -Infinity : 1), float: p.kind === 'float' });
    }
    // a shape flag none of the selected kernels has is an error; one that some lack is a warning
    const shapeFlagNames = new Set(SPECS.flatMap((s) => s.params.map((p) => p.flag ?? p.name)));
    const given = [...shapeFlagNames].filter((n) => f[n] !== undefined);
    for (const { flag, notFor } of checkShapeFlags(specs, given)) {
      this.note(`${flag} does not apply to ${notFor.length} of the selected kernels (${notFor.join(', ')}): they run their default cases`);
    }
    const inputSets = flags.inputs?.split(',').map((s) => s.trim());
    const runOptions = safetyRunOptions(flags);

    // every case, checked before anything runs
    const selected: { spec: KernelSpec; cases: KernelCase[] }[] = [];
    for (const spec of specs) {
      const cases = buildCases(spec, values, inputSets, flags.preset);
      if (cases.length === 0) {
        if (flags.kernel) this.note(`${spec.name}: no case selected${flags.preset ? ` (no shape of --preset ${flags.preset})` : ''}: not verified`);
        continue;
      }
      // cases a manifest entry cannot run (its `requires`, whole vectors) become SKIP rows, unchecked
      const job = jobOf.get(spec) as Job;
      checkCases(spec, cases.filter((c) => job.skip(c.params) === null), { schedules: flags.schedules });
      selected.push({ spec, cases });
    }
    // --shard i/n: this runner's share of the whole case list (src/kernels/shard.ts)
    const shard = flags.shard === undefined ? undefined : parseShard(flags.shard);
    const { plan: shares, caseList } = shardCases(selected, shard, (c) => c.inputSet);
    const plan = shares.filter((p) => p.cases.length > 0);
    if (caseList.cases === 0 && compileOnly.length === 0) throw new UsageError('no cases selected (check --preset, --inputs and the shape flags)');
    const totalCases = plan.reduce((a, p) => a + p.cases.length, 0);
    if (totalCases === 0 && shard) this.note(`share ${shard.index}/${shard.count} has none of the ${caseList.cases} cases: an empty report`);

    const backend = getBackend(flags.backend);
    await ensureDeviceTrusted(backend);  // GPU backends: the device self-test, or exit 2
    const device = backend.device();
    const spinner = startSpinner('starting', this.interactive(flags));
    const started = new Date();
    const t0 = performance.now();
    const results: CaseResult[] = [];
    const positions: number[] = [];
    const kernels: VerifyKernel[] = [];
    const notRun: string[] = [];
    const makeReport = (): VerifyReport => ({
      ...reportHead(VERIFY_SCHEMA, backend.name, device),
      seed: flags.seed,
      ...(shard ? { shard: { ...shard, positions } } : {}),
      caseList,
      startedAt: started.toISOString(),
      durationMs: performance.now() - t0,
      userShader: flags.shader ?? null,
      summary: verifySummary(results, kernels),
      kernels,
      cases: results,
      ...(manifest
        ? { manifest: { file: manifest.file, shader: manifest.shaderRel }, compiledOnly: compileOnly.map((c) => ({ entry: c.entry, shader: (manifest as Manifest).shaderRel, ...(c.note ? { note: c.note } : {}), ...(c.error ? { error: c.error } : {}) })) }
        : {}),
    });
    let current: { spec: KernelSpec; rows: CaseResult[]; at: number[] } | null = null;
    const kernelOf = (spec: KernelSpec, rows: CaseResult[], sourceHash: string | null): VerifyKernel => {
      const job = jobOf.get(spec) as Job;
      return {
        name: spec.name,
        entry: job.entry ?? spec.entry,
        shader: manifest ? manifest.shaderRel : (job.shaderFile ?? (isAbsolute(spec.shader) ? spec.shader : `shaders/${spec.shader}`)),
        sourceHash,
        math: spec.math,
        status: kernelStatus(rows),
        ...hintOf(spec, rows, user.includes(spec) ? flags.spec : undefined),
        ...(manifest ? { spec: job.base.name, manifest: manifest.file } : {}),
      };
    };
    // SIGINT/SIGTERM: report what finished (the kernel under way with its finished cases), then end
    const release = this.reportOnInterrupt(
      (signal) => {
        if (current && current.rows.length > 0) {
          results.push(...current.rows);
          positions.push(...current.at.slice(0, current.rows.length));
          kernels.push(kernelOf(current.spec, current.rows, null));
        }
        return { ...makeReport(), interrupted: signal };
      },
      verifyRenderers,
      flags,
      spinner,
    );
    let doneCases = 0;
    try {
      for (const entry of compileOnly) {
        const m = manifest as Manifest;
        if (spinner) spinner.text = `${entry.entry}: compiling ${m.shaderRel}`;
        try {
          await backend.compile(readShader(m.shaderFile), m.shaderFile, entry.entry);
        } catch (e) {
          // kernel by kernel: one that does not compile is reported, the others run
          if (!(e instanceof ShaderCompileError)) throw e;
          entry.error = e.message;
        }
      }
      for (const [i, { spec, cases: share, positions: shareAt }] of plan.entries()) {
        const job = jobOf.get(spec) as Job;
        const file = job.shaderFile ? basename(job.shaderFile) : spec.shader;
        // a manifest entry's reasons not to run a case (its `requires`, whole vectors): SKIP rows after the others
        const cases: KernelCase[] = [];
        const at: number[] = [];
        const skipAt: number[] = [];
        const skipped: { c: KernelCase; why: string }[] = [];
        share.forEach((c, j) => {
          const why = job.skip(c.params);
          if (why === null) {
            cases.push(c);
            at.push(shareAt[j] as number);
          } else {
            skipped.push({ c, why });
            skipAt.push(shareAt[j] as number);
          }
        });
        const progress = (): string => `kernel ${i + 1}/${plan.length}, case ${doneCases}/${totalCases}`;
        if (spinner) spinner.text = `${progress()}: ${spec.name}: compiling ${file}`;
        current = { spec, rows: [], at };
        const rows = current.rows;
        const o = {
          seed: flags.seed,
          shaderFile: job.shaderFile,
          entry: job.entry,
          ...(flags.manifest ? { manifest: flags.manifest } : {}),
          ...(user.includes(spec) && flags.spec ? { specFile: flags.spec, knownFlags: new Set(Object.keys(Verify.flags)) } : {}),
          backendFlag: flags.backend,
          runOptions,
          schedules: flags.schedules,
          onCase: (r: CaseResult) => {
            childCaseDone();
            rows.push(r);
            doneCases++;
            if (spinner) spinner.text = `${progress()}: ${spec.name} (${file})`;
          },
        };
        const skippedRows = skipped.map(({ c, why }) => skippedCase(spec, c, job.entry ?? spec.entry, o, why));
        try {
          const { sourceHash } = await verifySpec(spec, childBackend(backend), cases, o);
          results.push(...rows, ...skippedRows);
          positions.push(...at, ...skipAt);
          kernels.push(kernelOf(spec, [...rows, ...skippedRows], sourceHash));
        } catch (e) {
          if (manifest && e instanceof ShaderCompileError && rows.length === 0) {
            // with a manifest, an entry that does not compile is one failed kernel: its cases are ERROR rows, the others run
            const failed = cases.map((c) => ({ ...skippedCase(spec, c, job.entry ?? spec.entry, o, ''), status: 'ERROR' as const, skipReason: undefined, error: `does not compile: ${e.message}` }));
            results.push(...failed, ...skippedRows);
            positions.push(...at, ...skipAt);
            kernels.push(kernelOf(spec, [...failed, ...skippedRows], null));
            doneCases += cases.length;
            current = null;
            continue;
          }
          // the shader did not compile or does not match the spec: an error row for this kernel, the others still run
          if (!(e instanceof UsageError) || rows.length > 0) throw e;
          const k = kernelOf(spec, [], null);
          k.status = 'ERROR';
          k.error = { type: e instanceof ShaderCompileError ? 'compile' : 'signature', message: e.message };
          kernels.push(k);
          notRun.push(e.message);
          doneCases += cases.length;
        }
        current = null;
      }
    } finally {
      spinner?.stop();
      release();
    }
    const report = makeReport();
    if (notRun.length > 0) {
      for (const m of notRun) process.stderr.write(`Error: ${m}\n`);
      process.exitCode = 2;
    } else if (report.summary.failed + report.summary.errors > 0 || compileOnly.some((c) => c.error)) process.exitCode = 1;
    if (childReport(report)) return report;
    return this.emit(report, verifyRenderers, flags);
  }
}

/** A kernel to verify: its spec (ours, a user's, or derived from a manifest entry), the spec it stands for, its shader and entry, and why a case is skipped. */
interface Job {
  spec: KernelSpec;
  base: KernelSpec;
  shaderFile?: string;
  entry?: string;
  skip: (p: Record<string, number>) => string | null;
}

/** The launch hint of a kernel some of whose outputs were never written (at the first such case's shape). */
function hintOf(spec: KernelSpec, rows: CaseResult[], specFile: string | undefined): { hint?: string } {
  const row = rows.find((r) => r.outputs.some((o) => o.unwritten > 0));
  return row ? { hint: unwrittenHint(spec, row.params, specFile) } : {};
}
