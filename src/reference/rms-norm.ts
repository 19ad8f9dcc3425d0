/**
 * RMS norm in f64 (Zhang & Sennrich 2019, "Root Mean Square Layer
 * Normalization"; the form of Hugging Face's LlamaRMSNorm and llama.cpp's
 * rms_norm): out[r, j] = x[r, j] / √(Σ_j x[r, j]² / dim + eps) · w[j].
 */
export function rmsNormRef(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, dim: number, eps: number): Float64Array {
  if (x.length !== rows * dim || w.length !== dim) throw new Error(`rmsNormRef: x has ${x.length} elements, w ${w.length}; expected ${rows}×${dim} and ${dim}`);
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += (x[r * dim + j] as number) ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) out[r * dim + j] = (x[r * dim + j] as number) * inv * (w[j] as number);
  }
  return out;
}
