import { Flags } from '@oclif/core';
import { getBackend } from '../backend/index.js';
import { ensureDeviceTrusted } from '../backend/selftest.js';
import { memoryBudget } from '../backend/limits.js';
import { layerBytes, runLayer, type LayerProgress, type LayerReport, type StageReport, type Strategy } from '../dispatch/layer.js';
import { StageError } from '../dispatch/stage.js';
import { KernelRuntimeError, ShaderCompileError, UsageError } from '../errors.js';
import { readShader } from '../harness/source.js';
import { blankComparison, type OutputComparison } from '../verify/compare.js';
import { loadManifest } from '../harness/manifest.js';
import { presetModel } from '../kernels/select.js';
import type { LayerShape } from '../reference/moe-layer.js';
import { dispatchRenderers, DISPATCH_SCHEMA, type DispatchError, type DispatchReport } from '../report/dispatch.js';
import { reportHead } from '../report/common.js';
import { backendFlag, MoeCommand, reportFlags, safetyFlags, safetyRunOptions, seedFlag } from '../cli/base.js';
import { startSpinner } from '../cli/terminal.js';

/** The entry points a --shader file defines (its kernels and [[host_name]]s). */
function shaderEntries(source: string): string[] {
  const out = new Set<string>();
  for (const m of source.matchAll(/kernel\s+void\s+([A-Za-z_]\w*)/g)) out.add(m[1] as string);
  for (const m of source.matchAll(/host_name\(\s*"([^"]+)"\s*\)/g)) out.add(m[1] as string);
  return [...out];
}

/** A final comparison standing for a layer that did not finish (no output to compare). */
function unfinished(elements: number, why: string): OutputComparison {
  const c = blankComparison('final hidden state', elements, { kind: 'exact', reason: 'no output: the layer stopped before its last stage' });
  return { ...c, kind: 'float', pass: false, failure: `the layer did not finish: ${why}`, unwritten: elements };
}

const int = (name: string, v: string | undefined, min: number): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v.trim())) throw new UsageError(`--${name}: '${v}' is not a non-negative integer`);
  const n = Number(v);
  if (n < min) throw new UsageError(`--${name}: ${n} must be at least ${min}`);
  return n;
};

export default class Dispatch extends MoeCommand {
  static override summary = 'Run one whole MoE layer stage by stage and check it against the reference of the layer';
  static override description = `router logits → softmax + top-k + renorm → for each token and selected expert: gate and up projections, GELU(tanh)·up, down projection → weighted reduce of expert outputs, plus the sigmoid-gated shared expert and the residual where the model has them.

Every intermediate is compared with a pure-TS reference of the whole layer, so a wrong kernel is named by the first stage whose result diverges. --shader replaces any kernel of the layer whose entry name your file defines. The activation is GELU (tanh approximation) times up: the catalog's kernels compute that (the seeds' "swiglu" kernels too).

Exit codes: 0 PASS, 1 FAIL (a wrong stage, or a kernel that failed while running: an out-of-bounds access, a --timeout, a stack overflow), 2 bad usage (including a configuration whose buffers would not fit in memory, refused before allocating).`;

  static override examples = [
    '<%= config.bin %> dispatch --preset qwen3-30b-a3b --tokens 4',
    '<%= config.bin %> dispatch --preset qwen1.5-moe-a2.7b --strategy loop',
    '<%= config.bin %> dispatch --preset qwen3-30b-a3b --junit dispatch.xml --markdown >> $GITHUB_STEP_SUMMARY',
    '<%= config.bin %> dispatch --hidden 512 --intermediate 256 --experts 16 --top-k 4 --shared-intermediate 512 --tokens 3',
  ];

  static override flags = {
    preset: Flags.string({ description: `model shapes from fixtures/models.json (${'see moe dispatch --help'})` }),
    strategy: Flags.string({
      description: "'loop': one dispatch per expert and projection (the seed's Stage 1); 'batched': every top-k pair at once; 'fused': per token, the whole expert stage in two dispatches (gate+up+activation, down+weighted sum+shared+residual)",
      options: ['loop', 'batched', 'fused'],
      default: 'batched',
    }),
    tokens: Flags.string({ description: 'tokens in the batch', default: '4' }),
    hidden: Flags.string({ description: 'hidden size (overrides the preset)' }),
    intermediate: Flags.string({ description: 'expert intermediate size (overrides the preset)' }),
    experts: Flags.string({ description: 'routed experts (overrides the preset)' }),
    'top-k': Flags.string({ description: 'experts per token (overrides the preset)' }),
    'shared-intermediate': Flags.string({ description: 'shared expert intermediate size, 0 for none (overrides the preset)' }),
    'shared-gate': Flags.boolean({ description: 'scale the shared expert by sigmoid(w·x) (Qwen-MoE style)', allowNo: true }),
    dtype: Flags.string({ description: 'element type of weights and activations', options: ['f32'], default: 'f32' }),
    quant: Flags.string({ description: 'quantize the routed experts to the MLX affine format (group size 64, bf16 scales and biases); the router and shared expert stay f32', options: ['q4', 'q8'] }),
    backend: backendFlag,
    seed: seedFlag,
    shader: Flags.string({ description: 'your .metal file: its kernels replace ours of the same entry names' }),
    manifest: Flags.string({ description: "binding manifest (docs/manifest.md): its entries replace our kernels of their specs, bound and launched as it says", exclusive: ['shader'] }),
    ...reportFlags,
    ...safetyFlags,
  };

  async run(): Promise<DispatchReport> {
    const { flags } = await this.parse(Dispatch);
    const runOptions = safetyRunOptions(flags);
    const m = flags.preset ? presetModel(flags.preset) : undefined;
    const pick = (flag: string, v: string | undefined, fromPreset: number | undefined, min: number): number => {
      const n = int(flag, v, min) ?? fromPreset;
      if (n === undefined) throw new UsageError(`--${flag} is needed without --preset`);
      return n;
    };
    if (flags.quant && flags.dtype !== 'f32') throw new UsageError('--quant applies to f32 activations');
    const shape: LayerShape = {
      tokens: pick('tokens', flags.tokens, undefined, 1),
      hidden: pick('hidden', flags.hidden, m?.hidden, 1),
      intermediate: pick('intermediate', flags.intermediate, m?.expert_intermediate, 1),
      experts: pick('experts', flags.experts, m?.experts, 1),
      topK: pick('top-k', flags['top-k'], m?.top_k, 1),
      sharedIntermediate: pick('shared-intermediate', flags['shared-intermediate'], m ? (m.shared_intermediate ?? 0) : 0, 0),
      sharedGate: flags['shared-gate'] ?? m?.shared_gate ?? false,
      activation: 'gelu-tanh',
    };
    if (shape.topK > shape.experts) throw new UsageError(`--top-k ${shape.topK} must not exceed --experts ${shape.experts}`);
    if (shape.topK > 64) throw new UsageError(`--top-k ${shape.topK}: the routing kernel supports at most 64`);
    const strategy = flags.strategy as Strategy;
    const need = layerBytes(shape, strategy);
    const budget = memoryBudget();
    if (need > budget) {
      throw new UsageError(
        `this layer needs about ${(need / 2 ** 30).toFixed(2)} GiB of buffers, more than the ${(budget / 2 ** 30).toFixed(2)} GiB of memory available: use fewer --tokens or smaller sizes`,
      );
    }
    if (shape.hidden * shape.intermediate > 2 ** 29) throw new UsageError('one expert matrix would exceed 2 GiB');

    if (flags.shader) readShader(flags.shader);

    const manifest = flags.manifest ? loadManifest(flags.manifest) : null;
    const backend = getBackend(flags.backend);
    await ensureDeviceTrusted(backend);  // GPU backends: the device self-test, or exit 2
    const device = backend.device();
    const spinner = startSpinner(`running the layer (${strategy})${flags.shader ? ` with ${flags.shader}` : ''}`, this.interactive(flags));
    const head = {
      ...reportHead(DISPATCH_SCHEMA, backend.name, device),
      preset: flags.preset ?? null,
      activation: 'GELU(tanh)·up',
      userShader: flags.shader ?? null,
      ...(manifest ? { manifest: { file: manifest.file, shader: manifest.shaderRel } } : {}),
    };
    /** The report of a layer that stopped early: the stages that finished (none by default), the error, a failed final state. */
    const stopped = (error: DispatchError, stages: StageReport[] = []): DispatchReport => ({
      ...head,
      shape,
      strategy,
      seed: flags.seed,
      stages,
      totalNs: stages.reduce((a, st) => a + st.ns, 0),
      tokensPerSecond: 0,
      weightBytes: 0,
      packedBytes: 0,
      quant: flags.quant === 'q4' ? 4 : flags.quant === 'q8' ? 8 : null,
      effectiveGBs: 0,
      firstDivergence: stages.find((st) => !st.pass)?.stage ?? error.stage,
      final: unfinished(shape.tokens * shape.hidden, error.message),
      pass: false,
      errors: [error],
    });
    // SIGINT/SIGTERM: report the stages that finished, then end
    const progress: LayerProgress = {};
    const release = this.reportOnInterrupt(
      (signal) => ({
        ...stopped({ type: 'runtime', stage: null, kernel: null, message: `interrupted by ${signal} before the layer finished` }, progress.finished?.() ?? []),
        interrupted: signal,
      }),
      dispatchRenderers,
      flags,
      spinner,
    );
    let layer: LayerReport;
    try {
      layer = await runLayer(backend, { shape, strategy, seed: flags.seed, shaderFile: flags.shader, manifest: manifest ?? undefined, quant: flags.quant === 'q4' ? 4 : flags.quant === 'q8' ? 8 : undefined, runOptions, progress });
    } catch (e) {
      if (!(e instanceof StageError)) throw e;
      // a stage that could not run: the report says which (JUnit <error>), then exit 2 (compile, signature) or 1 (runtime)
      const cause = e.cause;
      const type: DispatchError['type'] = cause instanceof ShaderCompileError ? 'compile' : cause instanceof UsageError ? 'signature' : 'runtime';
      if (!(cause instanceof UsageError) && !(cause instanceof KernelRuntimeError)) throw cause;
      const report = stopped({ type, stage: e.stage, kernel: e.entry, message: cause.message });
      process.stderr.write(`Error: stage '${e.stage}' (${e.entry}): ${cause.message}\n`);
      process.exitCode = cause instanceof UsageError ? 2 : 1;
      return this.emit(report, dispatchRenderers, flags);
    } finally {
      spinner?.stop();
      release();
    }
    const { output: _output, ...rest } = layer;
    const errors: DispatchError[] = [];
    if (flags.shader) {
      const used = layer.stages.some((st) => st.sources.some((k) => k.from === 'shader'));
      if (!used) {
        const theirs = shaderEntries(readShader(flags.shader));
        const ours = [...new Set(layer.stages.flatMap((st) => st.kernels))];
        errors.push({
          type: 'unused-shader',
          stage: null,
          kernel: null,
          message:
            `--shader ${flags.shader}: none of its kernels ran: it defines ${theirs.length > 0 ? theirs.join(', ') : 'no kernel'}, ` +
            `and this layer (${strategy}${flags.quant ? `, ${flags.quant}` : ''}) runs ${ours.join(', ')}; ` +
            'a kernel of the file replaces ours when it has the same entry name',
        });
      }
    }
    const report: DispatchReport = { ...head, ...rest, errors };
    if (errors.length > 0) {
      for (const e of errors) process.stderr.write(`Error: ${e.message}\n`);
      process.exitCode = 2;
    } else if (!report.pass) process.exitCode = 1;
    return this.emit(report, dispatchRenderers, flags);
  }
}
