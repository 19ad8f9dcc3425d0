/** What a model of fixtures/models.json sets in a spec's params (`moe bench --preset`), by kind of kernel. */
import type { ModelShape } from '../models.js';
import type { Params } from '../spec.js';

/** Routers and expert gathers: the expert count and top-k. */
export const routingPreset = (m: ModelShape): Params => ({ n_experts: m.experts, top_k: m.top_k });

/** Weighted sums of expert outputs: the hidden size and top-k. */
export const hiddenPreset = (m: ModelShape): Params => ({ hidden: m.hidden, top_k: m.top_k });

/** GELU·up over the top-k slots: the expert intermediate size and top-k. */
export const intermediatePreset = (m: ModelShape): Params => ({ intermediate: m.expert_intermediate, top_k: m.top_k });

/** Attention over the cache: the head layout. */
export const headsPreset = (m: ModelShape): Params => ({ num_heads: m.heads, num_kv_heads: m.kv_heads, head_dim: m.head_dim });
