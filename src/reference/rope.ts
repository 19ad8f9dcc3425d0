/**
 * Rotary position embedding in f64: the standard form (Su et al. 2021,
 * RoFormer, θ_i = pos · base^(−2i/rot_dim)) and YaRN (Peng et al. 2023,
 * "YaRN: Efficient Context Window Extension of Large Language Models"), with
 * NeoX pairing (i, i + rot_dim/2) — Hugging Face's rotate_half — or
 * interleaved pairing (2i, 2i+1) — GPT-J, llama.cpp's "normal" mode.
 */

export interface RopeShape {
  n_tokens: number;
  n_heads: number;
  head_dim: number;
  rot_dim: number;
  /** 1: NeoX pairing (i, i + rot_dim/2); 0: interleaved (2i, 2i+1). */
  neox: number;
  theta: number;
}

export interface YarnScaling {
  /** Context extension factor s (> 0; 1 = none). */
  factor: number;
  /** Context length the model was trained with. */
  orig_ctx: number;
  beta_fast: number;
  beta_slow: number;
}

/** Host-side YaRN constants: freq_scale = 1/s, the ramp's pair range, mscale. */
export interface YarnConstants {
  freqScale: number;
  low: number;
  high: number;
  mscale: number;
}

/**
 * The pair index whose wavelength fits `rotations` turns into orig_ctx
 * positions: rot_dim · ln(orig_ctx / (rotations · 2π)) / (2 ln base) (YaRN
 * §3.2; llama.cpp's ggml_rope_yarn_corr_dim, Hugging Face's
 * find_correction_dim).
 */
function corrDim(rotations: number, rotDim: number, base: number, origCtx: number): number {
  return (rotDim * Math.log(origCtx / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
}

/**
 * The correction range [floor(corr(beta_fast)), ceil(corr(beta_slow))]
 * clamped to [0, rot_dim − 1], and mscale = 0.1·ln(s) + 1 for s > 1 (YaRN
 * §3.4, "√(1/t) = 0.1 ln s + 1"; Hugging Face's get_mscale), else 1.
 */
export function yarnConstants(rotDim: number, base: number, y: YarnScaling): YarnConstants {
  const low = Math.max(0, Math.floor(corrDim(y.beta_fast, rotDim, base, y.orig_ctx)));
  const high = Math.min(rotDim - 1, Math.ceil(corrDim(y.beta_slow, rotDim, base, y.orig_ctx)));
  return { freqScale: 1 / y.factor, low, high, mscale: y.factor > 1 ? 0.1 * Math.log(y.factor) + 1 : 1 };
}

/** Inverse frequency of pair i: standard, or YaRN's ramp between interpolation and extrapolation. */
export function ropeInvFreq(i: number, rotDim: number, base: number, yarn: YarnConstants | null): number {
  const extrap = base ** ((-2 * i) / rotDim);
  if (yarn === null) return extrap;
  const ramp = Math.min(1, Math.max(0, (i - yarn.low) / Math.max(0.001, yarn.high - yarn.low)));
  return yarn.freqScale * extrap * ramp + extrap * (1 - ramp);
}

export interface RopeResult {
  values: Float64Array;
  /** Per element: mscale·(|a| + |b|) of its pair (the scale of any rounding in it); |x| for pass-through. */
  amp: Float64Array;
  /** Per element: the rotation angle |θ| of its pair (0 for pass-through). */
  angle: Float64Array;
}

/** Element indices (j0, j1) of pair i inside a head. */
export function ropePair(i: number, rotDim: number, neox: number): [number, number] {
  return neox !== 0 ? [i, i + rotDim / 2] : [2 * i, 2 * i + 1];
}

/** x: [n_tokens, n_heads, head_dim]; pos: one position per token. */
export function ropeRef(x: ArrayLike<number>, pos: ArrayLike<number>, s: RopeShape, yarn: YarnConstants | null): RopeResult {
  const n = s.n_tokens * s.n_heads * s.head_dim;
  if (x.length !== n || pos.length !== s.n_tokens) throw new Error(`ropeRef: x has ${x.length} elements (expected ${n}), pos ${pos.length} (expected ${s.n_tokens})`);
  const values = new Float64Array(n);
  const amp = new Float64Array(n);
  const angle = new Float64Array(n);
  const m = yarn?.mscale ?? 1;
  for (let t = 0; t < s.n_tokens; t++) {
    for (let h = 0; h < s.n_heads; h++) {
      const head = (t * s.n_heads + h) * s.head_dim;
      for (let j = s.rot_dim; j < s.head_dim; j++) {
        values[head + j] = x[head + j] as number;
        amp[head + j] = Math.abs(x[head + j] as number);
      }
      for (let i = 0; i < s.rot_dim / 2; i++) {
        const [j0, j1] = ropePair(i, s.rot_dim, s.neox);
        const th = (pos[t] as number) * ropeInvFreq(i, s.rot_dim, s.theta, yarn);
        const a = x[head + j0] as number;
        const b = x[head + j1] as number;
        const c = Math.cos(th) * m;
        const sn = Math.sin(th) * m;
        values[head + j0] = a * c - b * sn;
        values[head + j1] = a * sn + b * c;
        amp[head + j0] = amp[head + j1] = m * (Math.abs(a) + Math.abs(b));
        angle[head + j0] = angle[head + j1] = Math.abs(th);
      }
    }
  }
  return { values, amp, angle };
}
