/**
 * Bulk seeded fills for large weight tensors (a layer's experts are hundreds
 * of megabytes: seedrandom's generators are too slow for that). xoshiro128**
 * seeded through splitmix32 from a string hash; reproducible across runs.
 */
/** 32-bit FNV-1a hash of a string: the seed of a stream. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function splitmix32(a: number): () => number {
  return () => {
    a = (a + 0x9e3779b9) >>> 0;
    let z = a;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Fill `out` with uniform values in [-scale, scale) from `seed`. */
export function fillUniform(out: Float32Array, seed: string, scale: number): Float32Array {
  const sm = splitmix32(hashString(seed));
  let s0 = sm() | 1;
  let s1 = sm();
  let s2 = sm();
  let s3 = sm();
  const k = (2 * scale) / 4294967296;
  for (let i = 0; i < out.length; i++) {
    const r = Math.imul(((Math.imul(s1, 5) << 7) | (Math.imul(s1, 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 = (s2 ^ t) >>> 0;
    s3 = ((s3 << 11) | (s3 >>> 21)) >>> 0;
    out[i] = r * k - scale;
  }
  return out;
}
