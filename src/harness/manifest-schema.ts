/**
 * The JSON Schema of a binding manifest (published as docs/manifest.schema.json;
 * a test keeps the two identical). Expressions are strings or numbers; what
 * they may contain is checked when the manifest is loaded (expr.ts).
 */
const expr = { description: 'an arithmetic expression of the spec\'s params (e.g. "ceil(out_dim / 8)"), or a number', oneOf: [{ type: 'string', minLength: 1 }, { type: 'number' }] };
const dim3 = { type: 'array', minItems: 1, maxItems: 3, items: { $ref: '#/$defs/expr' } };
const scalarType = { enum: ['uint', 'int', 'float'] };

export const MANIFEST_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://github.com/moe-kernels/moe-kernels/docs/manifest.schema.json',
  title: 'moe-kernels binding manifest',
  description: "Maps each entry point of one shader file to a catalog spec and says how the engine binds and launches it. The spec stays the source of inputs, reference and comparison rules.",
  type: 'object',
  required: ['shader', 'kernels'],
  additionalProperties: false,
  properties: {
    $schema: { type: 'string' },
    description: { type: 'string' },
    shader: { type: 'string', minLength: 1, description: 'the .metal file, relative to the manifest' },
    kernels: {
      type: 'object',
      minProperties: 1,
      description: 'one entry per kernel function (or host_name) of the shader',
      additionalProperties: { $ref: '#/$defs/kernel' },
    },
  },
  $defs: {
    expr,
    kernel: {
      type: 'object',
      additionalProperties: false,
      properties: {
        spec: { description: 'catalog spec name or entry (moe kernels); null or absent: compiled only', type: ['string', 'null'] },
        note: { type: 'string' },
        requires: { type: 'array', items: { type: 'string', minLength: 1 }, description: 'conditions on the params (e.g. "hidden % 4 == 0"); cases that fail one are skipped with the reason' },
        omit: { type: 'array', items: { type: 'string' }, description: "the spec's scalar or struct buffers the kernel does not take (their values reach it as other buffers' expressions)" },
        buffers: {
          type: 'object',
          description: 'by [[buffer(n)]] index; absent: the spec\'s own indices',
          propertyNames: { pattern: '^(0|[1-9][0-9]?)$' },
          additionalProperties: { $ref: '#/$defs/binding' },
        },
        launch: { $ref: '#/$defs/launch' },
      },
    },
    binding: {
      oneOf: [
        { type: 'string', minLength: 1, description: "the spec's buffer of this name" },
        {
          type: 'object',
          required: ['buffer'],
          additionalProperties: false,
          properties: { buffer: { type: 'string', minLength: 1 }, note: { type: 'string', description: 'why the layout differs (required for half/bfloat data taken as ushort)' } },
        },
        {
          type: 'object',
          required: ['value'],
          additionalProperties: false,
          properties: { value: { $ref: '#/$defs/expr' }, type: scalarType, note: { type: 'string' } },
        },
        {
          type: 'object',
          required: ['struct'],
          additionalProperties: false,
          properties: { struct: { type: 'object', minProperties: 1, additionalProperties: { $ref: '#/$defs/expr' } }, note: { type: 'string' } },
        },
        {
          type: 'object',
          required: ['input', 'length', 'fill'],
          additionalProperties: false,
          properties: {
            input: { type: 'string', minLength: 1, description: 'name of an input the spec does not have (the reference never reads it)' },
            type: { enum: ['uint', 'int', 'float'] },
            length: { $ref: '#/$defs/expr' },
            fill: {
              oneOf: [
                { enum: ['zeros', 'iota'] },
                { type: 'object', required: ['constant'], additionalProperties: false, properties: { constant: { type: 'number' } } },
                { type: 'object', required: ['expr'], additionalProperties: false, properties: { expr: { type: 'string', minLength: 1, description: 'value of element i, e.g. "i * in_dim"' } } },
              ],
            },
            note: { type: 'string' },
          },
        },
      ],
    },
    launch: {
      type: 'object',
      required: ['mode', 'grid', 'threadgroup'],
      additionalProperties: false,
      properties: {
        mode: { enum: ['threads', 'threadgroups'], description: 'threads: grid counts threads (dispatchThreads); threadgroups: grid counts threadgroups (dispatchThreadgroups)' },
        grid: dim3,
        threadgroup: dim3,
        threadgroupMemory: {
          type: 'object',
          description: 'bytes of [[threadgroup(n)]] memory, by index',
          propertyNames: { pattern: '^(0|[1-9][0-9]?)$' },
          additionalProperties: { $ref: '#/$defs/expr' },
        },
      },
    },
  },
} as const;
