/** Reading a case's params, and the parameter definitions several kernels share. */
import type { ParamDef, Params } from '../spec.js';

/** The value of param `k` (every declared param is present once defaults are filled). */
export const num = (p: Params, k: string): number => p[k] as number;

/** A length or value function reading one param. */
export const param =
  (k: string) =>
  (p: Params): number =>
    num(p, k);

/** A length function: the product of the named params. */
export const product =
  (...ks: string[]) =>
  (p: Params): number =>
    ks.reduce((acc, k) => acc * num(p, k), 1);

export const P_ELEMENTS: ParamDef = { name: 'n_elements', flag: 'elements', description: 'elements (floats) processed', min: 1 };
export const P_TOKENS: ParamDef = { name: 'n_tokens', flag: 'tokens', description: 'tokens', min: 1 };
export const P_TOP_K: ParamDef = { name: 'top_k', flag: 'top-k', description: 'expert slots per token (top-k)', min: 1 };
export const P_HIDDEN: ParamDef = { name: 'hidden', flag: 'hidden', description: 'hidden size (model dimension)', min: 1 };
export const P_INTER: ParamDef = { name: 'intermediate', flag: 'intermediate', description: 'expert intermediate size (gate/up width)', min: 1 };
export const P_EXPERTS: ParamDef = { name: 'n_experts', flag: 'experts', description: 'experts', min: 1 };

/** A count: an integer param of at least 1. */
const count = (name: string, flag: string, description: string): ParamDef => ({ name, flag, description, min: 1 });

// Routing: softmax-topk's --tokens and --experts are the first the CLI describes.
export const P_LOGIT_TOKENS = count('n_tokens', 'tokens', 'tokens (rows of logits)');
export const P_LOGIT_EXPERTS = count('n_experts', 'experts', 'experts (logits per token)');

// Expert-indexed mat-vecs over stacked expert weights.
export const P_STACKED_EXPERTS = count('n_experts', 'experts', 'experts whose weights are stacked');
export const P_EXPERT_ROWS = count('n_rows', 'rows', 'output rows per expert');
export const P_EXPERT_COLS = count('k', 'cols', 'input length (columns)');

// The dense f32 mat-vec: weight [n, k].
export const P_MATVEC_ROWS = count('n', 'rows', 'output rows n (rows of the weight matrix)');
export const P_MATVEC_COLS = count('k', 'cols', 'inner dimension k (columns of the weight matrix, input length)');

// Flags of the expert-output combiners.
export const P_ROUTING_WEIGHT: ParamDef = {
  name: 'routing_weight',
  flag: 'routing-weight',
  description: 'routing weight of the expert (an f32 struct field; may be negative or 0)',
  kind: 'float',
};
export const P_ADD_RESIDUAL: ParamDef = {
  name: 'add_residual',
  flag: 'residual',
  description: 'add the residual: 1 yes, 0 no (the residual buffer is then a NaN-filled dummy)',
  min: 0,
  max: 1,
};
