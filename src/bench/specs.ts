/**
 * Specs that exist for `moe bench` itself: the empty kernel (the measurement
 * floor), the copy kernel (measured peak bandwidth) and the read kernel (the
 * time merely reading N bytes takes: the ceiling for a kernel that must). They are not part of
 * the verified catalog, though copy has a real reference.
 */
import type { KernelSpec, Params } from '../kernels/spec.js';

const n4 = (p: Params): number => Math.ceil((p.n_elements as number) / 4);

/**
 * What the copy and read kernels share: n_elements 32-bit words (16 Mi by
 * default) read as 4-vectors from `src` (index 0), their count in 4-vectors
 * bound at index 2.
 */
function wordStream(words: string, src: { mslType: 'float4' | 'uint4'; dtype: 'f32' | 'u32' }) {
  return {
    params: [{ name: 'n_elements', flag: 'elements', description: `${words} (rounded up to a multiple of 4)`, min: 4 }],
    defaults: { n_elements: 16 * 1024 * 1024 },
    src: { index: 0, name: 'src', kind: 'array', ...src, access: 'read', length: (p: Params) => n4(p) * 4 } as const,
    count: { index: 2, name: 'n4', kind: 'scalar', mslType: 'uint', value: n4 } as const,
  };
}

const copyWords = wordStream('floats copied', { mslType: 'float4', dtype: 'f32' });
const readWords = wordStream('32-bit words read', { mslType: 'uint4', dtype: 'u32' });

export const emptySpec: KernelSpec = {
  name: 'empty',
  entry: 'moe_empty',
  shader: 'bench.metal',
  group: 'bench',
  description: 'A kernel that does nothing: the time of one dispatch, the floor under every measurement',
  math: 'none',
  params: [{ name: 'n_threads', flag: 'threads', description: 'threads launched', min: 1 }],
  defaults: { n_threads: 32 },
  inputSets: [{ name: 'none', description: 'no inputs' }],
  buffers: [{ index: 0, name: 'sink', kind: 'array', mslType: 'float', dtype: 'f32', access: 'read', length: () => 1 }],
  threadgroup: [],
  cases: () => [{ params: { n_threads: 32 }, inputSet: 'none', origin: 'bench' }],
  validate: () => null,
  inputs: () => ({ sink: new Float32Array(1) }),
  launch: (p) => ({ mode: 'threads', grid: [p.n_threads as number, 1, 1], threadgroup: [Math.min(32, p.n_threads as number), 1, 1], threadgroupMemory: [] }),
  reference: () => ({ outputs: {}, rules: {} }),
  cost: () => ({ bytes: 0, flops: 0 }),
};

export const copySpec: KernelSpec = {
  name: 'copy',
  entry: 'moe_copy_f32',
  shader: 'bench.metal',
  group: 'bench',
  description: 'dst = src with float4 loads and stores: the bandwidth a streaming kernel can reach',
  math: 'dst[i] = src[i]',
  params: copyWords.params,
  defaults: copyWords.defaults,
  inputSets: [{ name: 'normal', description: 'uniform floats' }],
  buffers: [
    copyWords.src,
    { index: 1, name: 'dst', kind: 'array', mslType: 'float4', dtype: 'f32', access: 'write', length: (p) => n4(p) * 4 },
    copyWords.count,
  ],
  threadgroup: [],
  cases: () => [{ params: { n_elements: 1 << 20 }, inputSet: 'normal', origin: 'bench' }],
  validate: () => null,
  inputs: (p, _set, rng) => {
    const src = new Float32Array(n4(p) * 4);
    for (let i = 0; i < src.length; i++) src[i] = rng.uniform(-1, 1);
    return { src };
  },
  launch: (p) => ({ mode: 'threads', grid: [n4(p), 1, 1], threadgroup: [256, 1, 1], threadgroupMemory: [] }),
  reference: (_p, inputs) => ({
    outputs: { dst: inputs.src as Float32Array },
    rules: { dst: { kind: 'exact', reason: 'a copy is bit-exact' } },
  }),
  // read and write every byte once
  cost: (p) => ({ bytes: n4(p) * 16 * 2, flops: 0 }),
};

const RD_PER = 4; // uint4s per thread, as in shaders/bench.metal
const readThreads = (p: Params): number => Math.ceil(n4(p) / RD_PER);

export const readSpec: KernelSpec = {
  name: 'read',
  entry: 'moe_read_u32',
  shader: 'bench.metal',
  group: 'bench',
  description:
    'Reads n_elements 32-bit words once (uint4 loads, all independent) and folds them: what reading that many bytes costs in one dispatch, the ceiling for a kernel that must (e.g. a quantized mat-vec over as many packed weights)',
  math: 'out[g] = XOR of the words its SIMD-group read',
  params: readWords.params,
  defaults: readWords.defaults,
  inputSets: [{ name: 'normal', description: 'random words' }],
  buffers: [
    readWords.src,
    { index: 1, name: 'out', kind: 'array', mslType: 'uint', dtype: 'u32', access: 'write', length: (p) => Math.ceil(readThreads(p) / 32) },
    readWords.count,
  ],
  threadgroup: [],
  cases: () => [
    { params: { n_elements: 1 << 20 }, inputSet: 'normal', origin: 'bench' },
    { params: { n_elements: 1001 }, inputSet: 'normal', origin: 'edge: not a multiple of the threads\' reach' },
  ],
  validate: () => null,
  inputs: (p, _set, rng) => {
    const src = new Uint32Array(n4(p) * 4);
    for (let i = 0; i < src.length; i++) src[i] = rng.int(0, 2 ** 32);
    return { src };
  },
  launch: (p) => ({ mode: 'threads', grid: [readThreads(p), 1, 1], threadgroup: [256, 1, 1], threadgroupMemory: [] }),
  reference: (p, inputs) => {
    const src = inputs.src as Uint32Array;
    const N4 = n4(p);
    const T = readThreads(p);
    const out = new Uint32Array(Math.ceil(T / 32));
    for (let t = 0; t < T; t++) {
      let acc = 0;
      for (let k = 0; k < RD_PER; k++) {
        const i = t + k * T;
        if (i < N4) acc ^= (src[4 * i] as number) ^ (src[4 * i + 1] as number) ^ (src[4 * i + 2] as number) ^ (src[4 * i + 3] as number);
      }
      out[t >> 5] = ((out[t >> 5] as number) ^ acc) >>> 0;
    }
    return { outputs: { out }, rules: { out: { kind: 'exact', reason: 'an XOR of integers is exact' } } };
  },
  // every word read once, one word written per SIMD-group
  cost: (p) => ({ bytes: n4(p) * 16 + 4 * Math.ceil(readThreads(p) / 32), flops: 0 }),
};
