/** Real model shapes from fixtures/models.json. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../util/paths.js';

export interface ModelShape {
  key: string;
  name: string;
  hidden: number;
  expert_intermediate: number;
  experts: number;
  top_k: number;
  shared_intermediate: number | null;
  shared_gate: boolean;
  heads: number;
  kv_heads: number;
  head_dim: number;
  source: string;
}

let cache: ModelShape[] | null = null;

export function models(): ModelShape[] {
  if (cache === null) {
    const raw = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'fixtures', 'models.json'), 'utf8')) as {
      models: Record<string, Omit<ModelShape, 'key'>>;
    };
    cache = Object.entries(raw.models).map(([key, m]) => ({ key, ...m }));
  }
  return cache;
}

export function model(key: string): ModelShape | undefined {
  return models().find((m) => m.key === key.toLowerCase());
}
