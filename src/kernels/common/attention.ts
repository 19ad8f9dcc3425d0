/**
 * Shared pieces of the single-token (decode) attention kernels of moeflux's
 * `gpu_attn_fuse`: head shapes of the models, the parameters, their checks,
 * and the input helpers.
 *
 * Every size is a `constant uint&` (or `constant float&`) bound at its own
 * index. Scores rows are `seq_stride` floats apart and only [0, seq_len) of
 * each row belongs to the result: the rest is neither compared nor checked
 * for the canary (ReferenceResult.include), and inputs fill it with poison so
 * a kernel that reads past seq_len fails.
 */
import type { Rng } from '../../util/rng.js';
import type { BufferDecl, ParamDef, Params } from '../spec.js';
import { uintArg } from './buffers.js';
import { MAX_ELEMS, modelOf, type CaseRow } from './cases.js';
import { num, product } from './params.js';

export interface AttnShape {
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** Attention shape of a model in fixtures/models.json. */
export function attnOf(key: string): AttnShape {
  const m = modelOf(key);
  return { heads: m.heads, kvHeads: m.kv_heads, headDim: m.head_dim };
}

export const P_HEADS: ParamDef = { name: 'num_heads', flag: 'heads', description: 'query heads', min: 1 };
export const P_KV_HEADS: ParamDef = { name: 'num_kv_heads', flag: 'kv-heads', description: 'key/value heads (GQA: divides num_heads)', min: 1 };
export const P_HEAD_DIM: ParamDef = { name: 'head_dim', flag: 'head-dim', description: 'dimension of one head', min: 1 };
export const P_SEQ_LEN: ParamDef = { name: 'seq_len', flag: 'seq-len', description: 'cached positions attended to', min: 1 };
export const P_SEQ_STRIDE: ParamDef = {
  name: 'seq_stride',
  flag: 'seq-stride',
  description: 'floats between scores rows (KV-cache capacity), at least seq_len',
  min: 1,
};
export const P_SCALE_DIM: ParamDef = {
  name: 'scale_dim',
  flag: 'scale-dim',
  description: 'scale = 1/sqrt(scale_dim), passed as float (head_dim: the usual 1/√head_dim; 1: no scaling)',
  min: 1,
};

/** The float32 scale the host passes at buffer(7). */
export function attnScale(p: Params): number {
  return Math.fround(1 / Math.sqrt(num(p, 'scale_dim')));
}

export function validateHeads(p: Params): string | null {
  const h = num(p, 'num_heads');
  const kv = num(p, 'num_kv_heads');
  if (h % kv !== 0) return `num_heads = ${h} must be a multiple of num_kv_heads = ${kv} (GQA: head h reads kv head h / (num_heads / num_kv_heads))`;
  if (h * num(p, 'head_dim') > MAX_ELEMS) return `num_heads × head_dim = ${h * num(p, 'head_dim')} is too large (at most ${MAX_ELEMS})`;
  return null;
}

export function validateSeq(p: Params, withKv: boolean): string | null {
  const s = num(p, 'seq_len');
  const st = num(p, 'seq_stride');
  if (st < s) return `seq_stride = ${st} must be at least seq_len = ${s} (scores rows are seq_stride floats apart; set --seq-stride)`;
  if (num(p, 'num_heads') * st > MAX_ELEMS) return `num_heads × seq_stride = ${num(p, 'num_heads') * st} scores is too large (at most ${MAX_ELEMS})`;
  if (withKv && s * num(p, 'num_kv_heads') * num(p, 'head_dim') > MAX_ELEMS) {
    return `seq_len × num_kv_heads × head_dim = ${s * num(p, 'num_kv_heads') * num(p, 'head_dim')} cache floats is too large (at most ${MAX_ELEMS})`;
  }
  return null;
}

export function normals(n: number, rng: Rng, sigma = 1, mean = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = mean + sigma * rng.normal();
  return a;
}

/** "Only [0, seq_len) of each seq_stride row": the elements a scores-writing kernel is specified to write. */
export function rowPrefix(seqLen: number, seqStride: number): (i: number) => boolean {
  return (i) => i % seqStride < seqLen;
}

/** Buffers 3..6 of attn_scores_batched and attn_values_batched: head_dim, kv_dim, seq_len, seq_stride. */
export function cacheArgs(): BufferDecl[] {
  return [uintArg(3, 'head_dim'), uintArg(4, 'kv_dim', product('num_kv_heads', 'head_dim')), uintArg(5, 'seq_len'), uintArg(6, 'seq_stride')];
}

/** The `heads_per_kv` scalar (GQA group size) at `index`. */
export const headsPerKv = (index: number): BufferDecl => uintArg(index, 'heads_per_kv', (p) => num(p, 'num_heads') / num(p, 'num_kv_heads'));

/** The params of a case of the cache kernels: the head layout and the cache shape. */
export function cacheParams(a: AttnShape, seqLen: number, seqStride: number): Params {
  return { num_heads: a.heads, num_kv_heads: a.kvHeads, head_dim: a.headDim, seq_len: seqLen, seq_stride: seqStride };
}

/** The cache shapes of real models that the scores and values kernels sweep: [model, seq_len, seq_stride]. */
const DECODE_SHAPES: [key: string, seqLen: number, seqStride: number][] = [
  ['qwen3-30b-a3b', 1, 1],
  ['qwen3-30b-a3b', 7, 64],
  ['qwen3-30b-a3b', 100, 128],
  ['qwen3-30b-a3b', 257, 300],
  ['gemma-4-26b-a4b', 7, 16],
  ['gemma-4-26b-a4b', 100, 128],
  ['mixtral-8x7b', 5, 8],
  ['qwen1.5-moe-a2.7b', 3, 3],
];

/** The sweep rows of DECODE_SHAPES, with the input sets of each row (`sets[i]` for row i). */
export function decodeRows(toParams: (a: AttnShape, seqLen: number, seqStride: number) => Params, sets: string[][]): CaseRow[] {
  return DECODE_SHAPES.map(([key, seqLen, seqStride], i) => [key, toParams(attnOf(key), seqLen, seqStride), sets[i] as string[]]);
}

/** The sizes the cache kernels compute with: heads H, head_dim D, seq_len S and the kv row width kvd = num_kv_heads·D. */
export function cacheDims(p: Params): { H: number; D: number; S: number; kvd: number } {
  const D = num(p, 'head_dim');
  return { H: num(p, 'num_heads'), D, S: num(p, 'seq_len'), kvd: num(p, 'num_kv_heads') * D };
}
