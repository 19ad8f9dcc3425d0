/** zero_buffer (moe_dispatch.metal): zero an f32 buffer, the accumulator before the stage-1 expert loop. */
import { f32Out, paramStruct } from './common/buffers.js';
import { cross, modelOf, tooLarge, unknownSet, type CaseRow } from './common/cases.js';
import { threads } from './common/launch.js';
import { num, P_ELEMENTS, param } from './common/params.js';
import { defineKernel, type KernelCase, type Tensors } from './spec.js';

export const zeroBuffer = defineKernel({
  name: 'zero-buffer', entry: 'zero_buffer', shader: 'moe_dispatch.metal', group: 'ffn',
  description: 'Zero an f32 buffer (the accumulator before the stage-1 expert loop)',
  params: [P_ELEMENTS],
  buffers: [
    f32Out(0, 'buffer', param('n_elements')),
    paramStruct(1, 'ZeroParams', ['n_elements']),
  ],
  math: 'buffer[i] = 0 for i < n_elements',
  defaults: { n_elements: 2048 },
  bench: { n_elements: 1 << 22 },
  inputSets: [{ name: 'canary', description: 'the buffer starts as NaN (the canary, as pooled memory may hold): every element must be stored, not scaled' }],
  cases(): KernelCase[] {
    const rows: CaseRow[] = [];
    for (const key of ['qwen3-30b-a3b', 'gemma-4-26b-a4b', 'mixtral-8x7b']) rows.push([key, { n_elements: modelOf(key).hidden }, ['canary']]);
    rows.push(
      ['edge: 1 element', { n_elements: 1 }, ['canary']],
      ['edge: 257 (one thread past a threadgroup)', { n_elements: 257 }, ['canary']],
      ['edge: 1001 (odd, not a multiple of 4)', { n_elements: 1001 }, ['canary']],
    );
    return cross(rows);
  },
  validate: (p) => tooLarge('n_elements', num(p, 'n_elements')),
  inputs(_p, set): Tensors {
    if (set !== 'canary') unknownSet(set);
    return {};
  },
  launch: (p) => threads(num(p, 'n_elements')),
  reference(p) {
    return {
      outputs: { buffer: new Float32Array(num(p, 'n_elements')) },
      rules: { buffer: { kind: 'exact', reason: 'zero is exact (−0 compares equal)' } },
    };
  },
  // write n floats; no arithmetic
  cost: (p) => ({ bytes: 4 * num(p, 'n_elements'), flops: 0 }),
});
