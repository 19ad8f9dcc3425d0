/**
 * Specs that exist for `moe bench` itself: the empty kernel (the measurement
 * floor) and the copy kernel (measured peak bandwidth). They are not part of
 * the verified catalog, though copy has a real reference.
 */
import type { KernelSpec, Params } from '../kernels/spec.js';

const n4 = (p: Params): number => Math.ceil((p.n_elements as number) / 4);

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
  params: [{ name: 'n_elements', flag: 'elements', description: 'floats copied (rounded up to a multiple of 4)', min: 4 }],
  defaults: { n_elements: 16 * 1024 * 1024 },
  inputSets: [{ name: 'normal', description: 'uniform floats' }],
  buffers: [
    { index: 0, name: 'src', kind: 'array', mslType: 'float4', dtype: 'f32', access: 'read', length: (p) => n4(p) * 4 },
    { index: 1, name: 'dst', kind: 'array', mslType: 'float4', dtype: 'f32', access: 'write', length: (p) => n4(p) * 4 },
    { index: 2, name: 'n4', kind: 'scalar', mslType: 'uint', value: n4 },
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
