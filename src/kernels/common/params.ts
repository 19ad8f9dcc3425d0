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
