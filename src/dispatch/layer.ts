/**
 * One whole MoE FFN layer through the native layer, stage by stage, as the
 * seeds' host code drives it (mlx-native's moe_dispatch / build_moe_ffn_layer):
 *
 *   router logits → softmax + top-k + renorm → experts (gate, up, GELU·up, down)
 *   → weighted reduce + sigmoid-gated shared expert + residual
 *
 * Three strategies: 'loop' (the seed's Stage 1: one dispatch per token, expert
 * and projection, accumulated in place), 'batched' (every top-k pair of the
 * batch at once: expert-indexed mat-vecs, one GELU·up, one weighted reduce)
 * and 'fused' (per token, two dispatches for the whole expert stage: gate, up
 * and the activation of all top-k experts; then their down projections,
 * weighted and summed with the shared expert and the residual).
 * Every intermediate is compared with the reference of the whole layer, so a
 * wrong kernel is named by the first stage whose result diverges.
 */
import type { NativeRunOptions } from '../backend/addon-types.js';
import type { Backend } from '../backend/types.js';
import { UsageError } from '../errors.js';
import { sigmoidGate } from '../kernels/sigmoid-gate.js';
import { expertMatvec } from '../kernels/expert-matvec.js';
import { accumulate } from '../kernels/accumulate.js';
import { geluMul } from '../kernels/gelu-mul.js';
import { matvec } from '../kernels/matvec.js';
import { weightedReduce } from '../kernels/weighted-reduce.js';
import { zeroBuffer } from '../kernels/zero-buffer.js';
import { qmv4Tiled, qmv8Tiled } from '../kernels/qmv.js';
import { qmv4Expert } from '../kernels/qmv4-expert.js';
import { qffnDownAccumF32, qffnDownAccumQ4, qffnDownAccumQ8 } from '../kernels/qffn-down-accum.js';
import { qffnGateUpF32, qffnGateUpQ4, qffnGateUpQ8 } from '../kernels/qffn-gate-up.js';
import { dequantize, quantize, type QuantBits, type QuantizedMatrix } from '../quant/affine.js';
import { softmaxTopk } from '../kernels/softmax-topk.js';
import type { FloatRule, KernelSpec, Params, TypedArray } from '../kernels/spec.js';
import { moeLayerRef, type LayerShape, type LayerStages, type LayerWeights } from '../reference/moe-layer.js';
import { probsTie } from '../reference/softmax-topk.js';
import { fillUniform } from '../util/fastrng.js';
import { makeRng } from '../util/rng.js';
import { compareOutput, type OutputComparison } from '../verify/compare.js';
import { bindTensors } from '../harness/bindings.js';
import { makeRunner, pipelineFor, stageBinding, StageError, useManifest, type KernelSource, type StageRunner } from './stage.js';
import type { Manifest } from '../harness/manifest.js';

export type Strategy = 'loop' | 'batched' | 'fused';

/** Stage names of the fused strategy's two expert dispatches. */
export const FUSED_STAGES = { gateUp: 'expert gate/up·act', down: 'expert down·combine' } as const;

export interface LayerOptions {
  shape: LayerShape;
  strategy: Strategy;
  seed: number;
  shaderFile?: string;
  /** Binding manifest: its entries replace our kernels of their specs. */
  manifest?: Manifest;
  /** Routed experts quantized to the MLX affine format (the router and shared expert stay f32). */
  quant?: QuantBits;
  /** Native run options of every dispatch (--timeout, --stack-size). */
  runOptions?: NativeRunOptions;
  /** Filled in as the layer starts: the stages finished so far, for the report of a run cut short. */
  progress?: LayerProgress;
}

/**
 * What a layer under way can say about itself. `finished()` returns the
 * stages all of whose dispatches have run, compared with the reference of the
 * layer (computed then), in the order of a full report; the others are left
 * out, since their outputs are not complete.
 */
export interface LayerProgress {
  finished?: () => StageReport[];
}

/** Group size of the quantized experts (MLX's default). */
export const QUANT_GROUP = 64;

export interface StageReport {
  stage: string;
  kernels: string[];
  /** Whose kernel each entry of `kernels` is: ours (shaders/) or the --shader file's. */
  sources: KernelSource[];
  dispatches: number;
  ns: number;
  share: number;
  comparisons: OutputComparison[];
  pass: boolean;
}

export interface LayerReport {
  shape: LayerShape;
  strategy: Strategy;
  seed: number;
  stages: StageReport[];
  totalNs: number;
  tokensPerSecond: number;
  /** Bytes of expert weights the layer reads (the selected experts' gate, up and down, plus shared and router). */
  weightBytes: number;
  /** Of which packed quantized expert weights with their scales and biases (0 when f32). */
  packedBytes: number;
  quant: QuantBits | null;
  effectiveGBs: number;
  /** First stage whose result diverges from the reference (null when all pass). */
  firstDivergence: string | null;
  final: OutputComparison;
  pass: boolean;
  /** The layer's output [tokens, hidden] (not part of JSON reports). */
  output: Float32Array;
}

/** f32 GPU math against an f64 reference over dot products of length up to 16k. */
export const LAYER_RULE: FloatRule = {
  kind: 'float',
  atol: 1e-4,
  rtol: 1e-3,
  minCosine: 0.9999,
  maxRelMaxAbs: 1e-3,
  reason: 'f32 dot products of length hidden/intermediate (up to 16k) against an f64 reference: error ~ √n·ulp·|terms|',
};

/** Bytes of all buffers the layer would hold at once, for the memory check. */
export function layerBytes(s: LayerShape, strategy: Strategy): number {
  const f = 4;
  const pairs = s.tokens * s.topK;
  const selected = Math.min(s.experts, pairs);
  const experts = selected * 3 * s.intermediate * s.hidden * f;
  const shared = s.sharedIntermediate * 3 * s.hidden * f;
  const router = s.experts * s.hidden * f;
  const acts = (s.tokens * (s.hidden * 4 + s.experts) + pairs * (2 * s.intermediate + s.hidden) * 2) * f;
  // the native layer copies each bound buffer once more; the batched path also stacks the selected experts
  const copies = strategy !== 'loop' ? experts : 3 * s.intermediate * s.hidden * f;
  // the reference holds the same weights (shared with the kernels' inputs) plus f64 intermediates
  const ref = (pairs * (s.intermediate + s.hidden) + s.tokens * s.experts * 2) * 8;
  return experts + shared + router + acts + copies + ref;
}

class Weights implements LayerWeights {
  router: Float32Array;
  sharedGate?: Float32Array;
  sharedUp?: Float32Array;
  sharedDown?: Float32Array;
  sharedGateVec?: Float32Array;
  private cache = new Map<string, Float32Array>();
  private qcache = new Map<string, QuantizedMatrix>();
  constructor(
    private s: LayerShape,
    private seed: number,
    readonly quant: QuantBits | null = null,
  ) {
    const H = s.hidden;
    this.router = fillUniform(new Float32Array(s.experts * H), `${seed}:router`, 4 / Math.sqrt(H));
    if (s.sharedIntermediate > 0) {
      const I = s.sharedIntermediate;
      this.sharedGate = fillUniform(new Float32Array(I * H), `${seed}:shared:gate`, 1 / Math.sqrt(H));
      this.sharedUp = fillUniform(new Float32Array(I * H), `${seed}:shared:up`, 1 / Math.sqrt(H));
      this.sharedDown = fillUniform(new Float32Array(H * I), `${seed}:shared:down`, 1 / Math.sqrt(I));
      if (s.sharedGate) this.sharedGateVec = fillUniform(new Float32Array(H), `${seed}:shared:gatevec`, 2 / Math.sqrt(H));
    }
  }
  /** An expert matrix [rows, cols]; with quantization, its dequantized values (what the kernels compute with). */
  private get(kind: string, e: number, rows: number, cols: number): Float32Array {
    const key = `${kind}:${e}`;
    let w = this.cache.get(key);
    if (!w) {
      w = fillUniform(new Float32Array(rows * cols), `${this.seed}:${key}`, 1 / Math.sqrt(cols));
      if (this.quant !== null) {
        const q = quantize(w, rows, cols, this.quant, QUANT_GROUP);
        this.qcache.set(key, q);
        w = dequantize(q);
      }
      this.cache.set(key, w);
    }
    return w;
  }
  /** The packed form of an expert matrix (quantized layers only). */
  packed(kind: 'gate' | 'up' | 'down', e: number): QuantizedMatrix {
    this[kind](e);
    const q = this.qcache.get(`${kind}:${e}`);
    if (!q) throw new Error('packed() on an unquantized layer');
    return q;
  }
  gate(e: number): Float32Array {
    return this.get('gate', e, this.s.intermediate, this.s.hidden);
  }
  up(e: number): Float32Array {
    return this.get('up', e, this.s.intermediate, this.s.hidden);
  }
  down(e: number): Float32Array {
    return this.get('down', e, this.s.hidden, this.s.intermediate);
  }
}

/** The selected experts' matrices stacked in `order`: f32 weights, or packed words, scales and biases. */
function stackExperts(order: number[], quant: QuantBits | null, get: (e: number) => Float32Array | QuantizedMatrix): Record<string, TypedArray> {
  const parts = order.map(get);
  const cat = <A extends TypedArray>(xs: A[], make: (len: number) => A): A => {
    const out = make(xs.reduce((a, b) => a + b.length, 0));
    let off = 0;
    for (const a of xs) {
      out.set(a as never, off);
      off += a.length;
    }
    return out;
  };
  if (quant === null) return { w: cat(parts as Float32Array[], (n) => new Float32Array(n)) };
  const qs = parts as QuantizedMatrix[];
  return {
    w: cat(qs.map((q) => q.w), (n) => new Uint32Array(n)),
    scales: cat(qs.map((q) => q.scales), (n) => new Uint16Array(n)),
    biases: cat(qs.map((q) => q.biases), (n) => new Uint16Array(n)),
  };
}

interface Recorder {
  ns: Map<string, number>;
  dispatches: Map<string, number>;
  kernels: Map<string, Set<string>>;
}

async function dispatch(r: StageRunner, rec: Recorder, stage: string, ours: KernelSpec, params: Params, given: Record<string, TypedArray>): Promise<void> {
  const why = ours.validate(params);
  if (why !== null) throw new UsageError(`${stage}: ${ours.name}: ${why}`);
  const { spec, tensors } = stageBinding(r, ours, params, given);
  let t: Float64Array;
  try {
    const p = await pipelineFor(r, spec);
    const { buffers, names } = bindTensors(spec, params, tensors);
    // One timed dispatch: it is the run (results copied back) and its device time.
    t = await r.backend.time(p, buffers, spec.launch(params), { ...r.runOptions, bufferNames: names, warmup: 0, iterations: 1 });
  } catch (e) {
    throw new StageError(stage, spec.entry, e as Error);
  }
  rec.ns.set(stage, (rec.ns.get(stage) ?? 0) + (t[0] as number));
  rec.dispatches.set(stage, (rec.dispatches.get(stage) ?? 0) + 1);
  const ks = rec.kernels.get(stage) ?? new Set<string>();
  ks.add(spec.entry);
  rec.kernels.set(stage, ks);
}

interface Produced {
  logits: Float32Array;
  ids: Uint32Array;
  weights: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  hidden: Float32Array;
  expertOut: Float32Array;
  sharedOut: Float32Array;
  sharedGate: Float32Array;
  out: Float32Array;
}

export async function runLayer(backend: Backend, o: LayerOptions): Promise<LayerReport> {
  const s = o.shape;
  const { tokens: T, hidden: H, intermediate: I, experts: E, topK: K, sharedIntermediate: IS } = s;
  if (K > E) throw new UsageError(`top-k ${K} must not exceed the number of experts ${E}`);
  const rng = makeRng(`${o.seed}:moe-layer:x`);
  const x = Float32Array.from({ length: T * H }, () => rng.normal());
  const quant = o.quant ?? null;
  if (quant !== null) {
    for (const [what, d] of [['hidden', H], ['intermediate', I]] as const) {
      if (d % QUANT_GROUP !== 0) throw new UsageError(`--quant needs --${what} (${d}) to be a multiple of the group size ${QUANT_GROUP}`);
    }
  }
  const w = new Weights(s, o.seed, quant);
  const runner = makeRunner(backend, o.shaderFile, o.runOptions);
  if (o.manifest) useManifest(runner, o.manifest);
  const rec: Recorder = { ns: new Map(), dispatches: new Map(), kernels: new Map() };
  /** Stages none of whose dispatches is still to come. */
  const done = new Set<string>();
  const finish = (...stages: string[]): void => {
    for (const st of stages) done.add(st);
  };
  const P: Produced = {
    logits: new Float32Array(T * E),
    ids: new Uint32Array(T * K),
    weights: new Float32Array(T * K),
    gate: new Float32Array(T * K * I),
    up: new Float32Array(T * K * I),
    hidden: new Float32Array(T * K * I),
    expertOut: new Float32Array(T * K * H),
    sharedOut: new Float32Array(T * H),
    sharedGate: new Float32Array(T),
    out: new Float32Array(T * H),
  };

  if (o.progress) o.progress.finished = () => (done.size === 0 ? [] : stageReports(compareStages(moeLayerRef(s, x, w), done)));

  if (o.strategy === 'loop') await loopStrategy();
  else if (o.strategy === 'fused') await fusedStrategy();
  else await batchedStrategy();

  // ---- the reference, and stage-by-stage comparison
  const ref = moeLayerRef(s, x, w);
  const reports = stageReports(compareStages(ref));
  const totalNs = [...rec.ns.values()].reduce((a, b) => a + b, 0);
  const selected = new Set<number>(P.ids);
  // packed: bits/8 bytes per weight, plus a bf16 scale and bias per group
  const perExpert = quant === null ? 4 * 3 * I * H : 3 * ((I * H * quant) / 8 + 2 * 2 * ((I * H) / QUANT_GROUP));
  const packedBytes = quant === null ? 0 : selected.size * perExpert;
  const weightBytes = selected.size * perExpert + 4 * (E * H + (IS > 0 ? 3 * IS * H + (s.sharedGate ? H : 0) : 0));
  const final = reports[reports.length - 1]!.comparisons[0]!;
  const first = reports.find((r) => !r.pass);
  return {
    shape: s,
    strategy: o.strategy,
    seed: o.seed,
    stages: reports,
    totalNs,
    tokensPerSecond: totalNs > 0 ? T / (totalNs / 1e9) : 0,
    weightBytes,
    packedBytes,
    quant,
    effectiveGBs: totalNs > 0 ? weightBytes / totalNs : 0,
    firstDivergence: first ? first.stage : null,
    final,
    pass: reports.every((r) => r.pass),
    output: P.out,
  };

  /** Stage comparisons with what the recorder saw of each stage: kernels, dispatches, time and its share of the stages reported. */
  function stageReports(stages: ReturnType<typeof compareStages>): StageReport[] {
    const ns = (stage: string): number => rec.ns.get(stage) ?? 0;
    const total = stages.reduce((a, st) => a + ns(st.stage), 0);
    return stages.map((st) => ({
      ...st,
      kernels: [...(rec.kernels.get(st.stage) ?? [])],
      sources: [...(rec.kernels.get(st.stage) ?? [])].map((e) => runner.sources.get(e) ?? { entry: e, from: 'ours' as const, file: '' }),
      dispatches: rec.dispatches.get(st.stage) ?? 0,
      ns: ns(st.stage),
      share: total > 0 ? ns(st.stage) / total : 0,
    }));
  }

  async function routing(): Promise<void> {
    await dispatch(runner, rec, 'routing', softmaxTopk, { n_tokens: T, n_experts: E, top_k: K }, { logits: P.logits, ids: P.ids, weights: P.weights });
    finish('routing');
  }

  /** One expert projection y = W_kind[e] · x: f32 naive mat-vec, or the tiled dequantizing one. */
  async function project(stage: string, kind: 'gate' | 'up' | 'down', e: number, rows: number, cols: number, xin: Float32Array, yout: Float32Array): Promise<void> {
    if (quant === null) {
      await dispatch(runner, rec, stage, matvec, { n: rows, k: cols }, { weight: w[kind](e), input: xin, output: yout });
      return;
    }
    const q = w.packed(kind, e);
    await dispatch(runner, rec, stage, quant === 4 ? qmv4Tiled : qmv8Tiled, { out_dim: rows, in_dim: cols, group_size: QUANT_GROUP }, { w: q.w, scales: q.scales, biases: q.biases, x: xin, y: yout });
  }

  async function loopStrategy(): Promise<void> {
    const row = (a: Float32Array, i: number, n: number): Float32Array => a.subarray(i * n, (i + 1) * n);
    for (let t = 0; t < T; t++) {
      await dispatch(runner, rec, 'router', matvec, { n: E, k: H }, { weight: w.router, input: row(x, t, H), output: row(P.logits, t, E) });
    }
    finish('router');
    await routing();
    const g = new Float32Array(I);
    const u = new Float32Array(I);
    const y = new Float32Array(H);
    for (let t = 0; t < T; t++) {
      const acc = row(P.out, t, H);
      await dispatch(runner, rec, 'combine', zeroBuffer, { n_elements: H }, { buffer: acc });
      for (let k = 0; k < K; k++) {
        const e = P.ids[t * K + k] as number;
        if (e >= E) throw new Error(`routing produced expert id ${e} (n_experts ${E}); it was checked above`);
        const q = t * K + k;
        await project('expert gate/up', 'gate', e, I, H, row(x, t, H), g);
        await project('expert gate/up', 'up', e, I, H, row(x, t, H), u);
        P.gate.set(g, q * I);
        P.up.set(u, q * I);
        await dispatch(runner, rec, 'GELU·up', geluMul, { n_elements: I }, { gate_out: g, up_out: u, output: row(P.hidden, q, I) });
        await project('expert down', 'down', e, H, I, row(P.hidden, q, I), y);
        P.expertOut.set(y, q * H);
        await dispatch(runner, rec, 'combine', accumulate, { n_elements: H, routing_weight: P.weights[q] as number }, { accumulator: acc, expert_output: y });
      }
      if (IS > 0 && w.sharedGate && w.sharedUp && w.sharedDown) {
        const sg = new Float32Array(IS);
        const su = new Float32Array(IS);
        const sh = new Float32Array(IS);
        await dispatch(runner, rec, 'shared expert', matvec, { n: IS, k: H }, { weight: w.sharedGate, input: row(x, t, H), output: sg });
        await dispatch(runner, rec, 'shared expert', matvec, { n: IS, k: H }, { weight: w.sharedUp, input: row(x, t, H), output: su });
        await dispatch(runner, rec, 'shared expert', geluMul, { n_elements: IS }, { gate_out: sg, up_out: su, output: sh });
        await dispatch(runner, rec, 'shared expert', matvec, { n: H, k: IS }, { weight: w.sharedDown, input: sh, output: row(P.sharedOut, t, H) });
        const gate = new Float32Array([1]);
        if (s.sharedGate && w.sharedGateVec) {
          const logit = new Float32Array(1);
          await dispatch(runner, rec, 'shared gate', matvec, { n: 1, k: H }, { weight: w.sharedGateVec, input: row(x, t, H), output: logit });
          // sigmoid_gate multiplies in place by sigmoid(gate): applied to 1 it yields sigmoid(logit)
          await dispatch(runner, rec, 'shared gate', sigmoidGate, { n_elements: 1 }, { x: gate, gate: logit });
        }
        P.sharedGate[t] = gate[0] as number;
        // the host reads the gate back and accumulates, as the seed's Stage 1 did
        await dispatch(runner, rec, 'combine', accumulate, { n_elements: H, routing_weight: gate[0] as number }, { accumulator: acc, expert_output: row(P.sharedOut, t, H) });
      }
      await dispatch(runner, rec, 'combine', accumulate, { n_elements: H, routing_weight: 1 }, { accumulator: acc, expert_output: row(x, t, H) });
    }
    // every token's experts, shared expert and combine ran
    finish('expert gate/up', 'GELU·up', 'expert down', 'shared expert', 'shared gate', 'combine');
  }

  /**
   * Quantized batched experts: 4-bit through the expert-indexed kernel (the
   * top-k experts of one token per dispatch, gathered by id from a stack of
   * the selected experts); 8-bit through the tiled dense kernel per pair.
   */
  async function batchedQuantExperts(order: number[], lids: Uint32Array): Promise<void> {
    const row = (a: Float32Array, i: number, len: number): Float32Array => a.subarray(i * len, (i + 1) * len);
    if (quant === 4) {
      const stackQ = (kind: 'gate' | 'up' | 'down'): { w: Uint32Array; scales: Uint16Array; biases: Uint16Array } => {
        const parts = order.map((e) => w.packed(kind, e));
        const cat = <A extends Uint32Array | Uint16Array>(xs: A[], make: (len: number) => A): A => {
          const out = make(xs.reduce((a, b) => a + b.length, 0));
          let off = 0;
          for (const a of xs) {
            out.set(a, off);
            off += a.length;
          }
          return out;
        };
        return {
          w: cat(parts.map((q) => q.w), (len) => new Uint32Array(len)),
          scales: cat(parts.map((q) => q.scales), (len) => new Uint16Array(len)),
          biases: cat(parts.map((q) => q.biases), (len) => new Uint16Array(len)),
        };
      };
      const sg = stackQ('gate');
      const su = stackQ('up');
      const sd = stackQ('down');
      const n = order.length;
      for (let t = 0; t < T; t++) {
        const ids = lids.subarray(t * K, (t + 1) * K);
        const base = { n_experts: n, top_k: K, group_size: QUANT_GROUP };
        await dispatch(runner, rec, 'expert gate/up', qmv4Expert, { ...base, x_per_pair: 0, out_dim: I, in_dim: H }, { ...sg, x: row(x, t, H), ids, y: P.gate.subarray(t * K * I, (t + 1) * K * I) });
        await dispatch(runner, rec, 'expert gate/up', qmv4Expert, { ...base, x_per_pair: 0, out_dim: I, in_dim: H }, { ...su, x: row(x, t, H), ids, y: P.up.subarray(t * K * I, (t + 1) * K * I) });
      }
      finish('expert gate/up');
      await dispatch(runner, rec, 'GELU·up', geluMul, { n_elements: T * K * I }, { gate_out: P.gate, up_out: P.up, output: P.hidden });
      finish('GELU·up');
      for (let t = 0; t < T; t++) {
        const ids = lids.subarray(t * K, (t + 1) * K);
        await dispatch(runner, rec, 'expert down', qmv4Expert, { n_experts: n, top_k: K, group_size: QUANT_GROUP, x_per_pair: 1, out_dim: H, in_dim: I }, { ...sd, x: P.hidden.subarray(t * K * I, (t + 1) * K * I), ids, y: P.expertOut.subarray(t * K * H, (t + 1) * K * H) });
      }
      finish('expert down');
      return;
    }
    for (let q = 0; q < T * K; q++) {
      const e = P.ids[q] as number;
      const t = Math.floor(q / K);
      await project('expert gate/up', 'gate', e, I, H, row(x, t, H), row(P.gate, q, I));
      await project('expert gate/up', 'up', e, I, H, row(x, t, H), row(P.up, q, I));
    }
    finish('expert gate/up');
    await dispatch(runner, rec, 'GELU·up', geluMul, { n_elements: T * K * I }, { gate_out: P.gate, up_out: P.up, output: P.hidden });
    finish('GELU·up');
    for (let q = 0; q < T * K; q++) {
      await project('expert down', 'down', P.ids[q] as number, H, I, row(P.hidden, q, I), row(P.expertOut, q, H));
    }
    finish('expert down');
  }

  /** The selected experts in order of first use, and the ids as indices into that order (into stacks of their weights). */
  function localIds(): { order: number[]; lids: Uint32Array } {
    const order: number[] = [];
    const local = new Map<number, number>();
    const lids = new Uint32Array(T * K);
    for (let q = 0; q < T * K; q++) {
      const e = P.ids[q] as number;
      if (e >= E) throw new Error(`routing produced expert id ${e} (n_experts ${E})`);
      if (!local.has(e)) {
        local.set(e, order.length);
        order.push(e);
      }
      lids[q] = local.get(e) as number;
    }
    return { order, lids };
  }

  async function batchedRouter(): Promise<Uint32Array> {
    const allZero = new Uint32Array(T);
    await dispatch(runner, rec, 'router', expertMatvec, { n_tokens: T, n_experts: 1, top_k: 1, n_rows: E, k: H, x_per_pair: 0 }, { w: w.router, x, ids: allZero, y: P.logits });
    finish('router');
    await routing();
    return allZero;
  }

  async function batchedStrategy(): Promise<void> {
    const allZero = await batchedRouter();
    // stack the selected experts' weights; ids become local indices into the stack
    const { order, lids } = localIds();
    const stack = (get: (e: number) => Float32Array, n: number): Float32Array => {
      const a = new Float32Array(order.length * n);
      order.forEach((e, i) => a.set(get(e), i * n));
      return a;
    };
    const n = order.length;
    const g = P.gate;
    const u = P.up;
    if (quant !== null) {
      await batchedQuantExperts(order, lids);
    } else {
    const gp = { n_tokens: T, n_experts: n, top_k: K, n_rows: I, k: H, x_per_pair: 0 };
    await dispatch(runner, rec, 'expert gate/up', expertMatvec, gp, { w: stack((e) => w.gate(e), I * H), x, ids: lids, y: g });
    await dispatch(runner, rec, 'expert gate/up', expertMatvec, gp, { w: stack((e) => w.up(e), I * H), x, ids: lids, y: u });
    finish('expert gate/up');
    await dispatch(runner, rec, 'GELU·up', geluMul, { n_elements: T * K * I }, { gate_out: g, up_out: u, output: P.hidden });
    finish('GELU·up');
    await dispatch(runner, rec, 'expert down', expertMatvec, { n_tokens: T, n_experts: n, top_k: K, n_rows: H, k: I, x_per_pair: 1 }, { w: stack((e) => w.down(e), H * I), x: P.hidden, ids: lids, y: P.expertOut });
    finish('expert down');
    }
    await sharedExpert(allZero);
    await dispatch(runner, rec, 'combine', weightedReduce, { n_tokens: T, top_k: K, hidden: H, add_residual: 1 }, {
      expert_w: P.weights,
      y_expert: P.expertOut,
      sh_gate: P.sharedGate,
      y_shared: P.sharedOut,
      residual: x,
      output: P.out,
    });
    finish('combine');
  }

  /** The shared expert and its gate for every token (P.sharedOut, P.sharedGate), batched. */
  async function sharedExpert(allZero: Uint32Array): Promise<void> {
    if (IS > 0 && w.sharedGate && w.sharedUp && w.sharedDown) {
      const sg = new Float32Array(T * IS);
      const su = new Float32Array(T * IS);
      const sh = new Float32Array(T * IS);
      const one = { n_tokens: T, n_experts: 1, top_k: 1, x_per_pair: 0 };
      await dispatch(runner, rec, 'shared expert', expertMatvec, { ...one, n_rows: IS, k: H }, { w: w.sharedGate, x, ids: allZero, y: sg });
      await dispatch(runner, rec, 'shared expert', expertMatvec, { ...one, n_rows: IS, k: H }, { w: w.sharedUp, x, ids: allZero, y: su });
      await dispatch(runner, rec, 'shared expert', geluMul, { n_elements: T * IS }, { gate_out: sg, up_out: su, output: sh });
      await dispatch(runner, rec, 'shared expert', expertMatvec, { n_tokens: T, n_experts: 1, top_k: 1, x_per_pair: 1, n_rows: H, k: IS }, { w: w.sharedDown, x: sh, ids: allZero, y: P.sharedOut });
      P.sharedGate.fill(1);
      if (s.sharedGate && w.sharedGateVec) {
        const logits = new Float32Array(T);
        await dispatch(runner, rec, 'shared gate', expertMatvec, { ...one, n_rows: 1, k: H }, { w: w.sharedGateVec, x, ids: allZero, y: logits });
        await dispatch(runner, rec, 'shared gate', sigmoidGate, { n_elements: T }, { x: P.sharedGate, gate: logits });
      }
    }
    finish('shared expert', 'shared gate');
  }

  /**
   * Per token, the whole expert stage in two dispatches over stacks of the
   * selected experts: gate, up and the activation of the top-k slots into
   * P.hidden, then the down projections weighted by routing and summed, with
   * the shared expert and the residual, into P.out.
   */
  async function fusedStrategy(): Promise<void> {
    const allZero = await batchedRouter();
    const { order, lids } = localIds();
    await sharedExpert(allZero);
    const kinds = ['gate', 'up', 'down'] as const;
    const stacks = Object.fromEntries(kinds.map((k) => [k, stackExperts(order, quant, (e) => (quant === null ? w[k](e) : w.packed(k, e)))])) as Record<(typeof kinds)[number], Record<string, TypedArray>>;
    const fmt = quant === 4 ? 'q4' : quant === 8 ? 'q8' : 'f32';
    const gateUp = { q4: qffnGateUpQ4, q8: qffnGateUpQ8, f32: qffnGateUpF32 }[fmt];
    const down = { q4: qffnDownAccumQ4, q8: qffnDownAccumQ8, f32: qffnDownAccumF32 }[fmt];
    const base: Params = { n_experts: order.length, top_k: K, ...(quant === null ? {} : { group_size: QUANT_GROUP }) };
    const act = s.activation === 'silu' ? 0 : 1;
    const prefixed = (t: Record<string, TypedArray>, pre: string): Record<string, TypedArray> => Object.fromEntries(Object.entries(t).map(([k, v]) => [`${pre}${k}`, v]));
    for (let t = 0; t < T; t++) {
      const ids = lids.subarray(t * K, (t + 1) * K);
      const h = P.hidden.subarray(t * K * I, (t + 1) * K * I);
      await dispatch(runner, rec, FUSED_STAGES.gateUp, gateUp, { ...base, out_dim: I, in_dim: H, act }, { ...prefixed(stacks.gate, 'gate_'), ...prefixed(stacks.up, 'up_'), x: x.subarray(t * H, (t + 1) * H), h, ids });
      await dispatch(runner, rec, FUSED_STAGES.down, down, { ...base, out_dim: H, in_dim: I, add_shared: IS > 0 ? 1 : 0, add_residual: 1 }, {
        ...stacks.down,
        h,
        out: P.out.subarray(t * H, (t + 1) * H),
        ids,
        route_w: P.weights.subarray(t * K, (t + 1) * K),
        shared: P.sharedOut.subarray(t * H, (t + 1) * H),
        shared_gate: P.sharedGate.subarray(t, t + 1),
        residual: x.subarray(t * H, (t + 1) * H),
      });
    }
    finish(FUSED_STAGES.gateUp, FUSED_STAGES.down);
  }

  /** Each stage's outputs against the reference, in the layer's order; with `only`, those stages alone. */
  function compareStages(ref: LayerStages, only?: Set<string>): Omit<StageReport, 'kernels' | 'sources' | 'dispatches' | 'ns' | 'share'>[] {
    const cmp = (name: string, got: Float32Array, expected: Float64Array): OutputComparison => compareOutput(name, got, expected, LAYER_RULE);
    const out: Omit<StageReport, 'kernels' | 'sources' | 'dispatches' | 'ns' | 'share'>[] = [];
    const push = (stage: string, compare: () => OutputComparison[]): void => {
      if (only && !only.has(stage)) return;
      const comparisons = compare();
      out.push({ stage, comparisons, pass: comparisons.every((c) => c.pass) });
    };
    push('router', () => [cmp('logits', P.logits, ref.logits)]);
    const idsCmp = (): OutputComparison =>
      compareOutput('ids', P.ids, ref.ids, {
        kind: 'exact',
        reason: 'expert ids; tied probabilities may swap',
        tieOk: (i, got, exp) => {
          const t = Math.floor(i / K);
          return got < E && probsTie(ref.probs[t * E + got] as number, ref.probs[t * E + exp] as number);
        },
      });
    push('routing', () => [idsCmp(), cmp('weights', P.weights, ref.weights)]);
    if (o.strategy === 'fused') {
      // no separate projections or expert outputs: the activated intermediate, then the layer output
      if (IS > 0) {
        push('shared expert', () => [cmp('shared output', P.sharedOut, ref.sharedOut)]);
        if (s.sharedGate) push('shared gate', () => [cmp('sigmoid gate', P.sharedGate, ref.sharedGate)]);
      }
      push(FUSED_STAGES.gateUp, () => [cmp('hidden', P.hidden, ref.hidden)]);
      push(FUSED_STAGES.down, () => [cmp('layer output', P.out, ref.out)]);
      return out;
    }
    push('expert gate/up', () => [cmp('gate projections', P.gate, ref.gateOut), cmp('up projections', P.up, ref.upOut)]);
    push('GELU·up', () => [cmp('hidden', P.hidden, ref.hidden)]);
    push('expert down', () => [cmp('expert outputs', P.expertOut, ref.expertOut)]);
    if (IS > 0) {
      push('shared expert', () => [cmp('shared output', P.sharedOut, ref.sharedOut)]);
      if (s.sharedGate) push('shared gate', () => [cmp('sigmoid gate', P.sharedGate, ref.sharedGate)]);
    }
    push('combine', () => [cmp('layer output', P.out, ref.out)]);
    return out;
  }
}
