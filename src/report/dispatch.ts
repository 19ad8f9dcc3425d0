/** Reports of `moe dispatch`: table, JSON document (docs/dispatch-report.schema.json), JUnit XML, Markdown. */
import Table from 'cli-table3';
import { FUSED_STAGES, type LayerReport, type StageReport } from '../dispatch/layer.js';
import type { OutputComparison } from '../verify/compare.js';
import { fmt, mdText, renderJunitXml, type JunitCase, type Renderers, type ReportHead } from './common.js';

export const DISPATCH_SCHEMA = 'moe-kernels/dispatch-report@1';

export interface DispatchReport extends Omit<LayerReport, 'output'>, ReportHead<typeof DISPATCH_SCHEMA> {
  preset: string | null;
  activation: string;
  /** The binding manifest (--manifest) whose entries replaced our kernels, and its shader. */
  manifest?: { file: string; shader: string };
}

/** The worst cosine and rel_max_abs of a stage's float outputs (null when it has none). */
function stageFigures(st: StageReport): { cos: number | null; rel: number | null } {
  const f = st.comparisons.filter((c) => c.kind === 'float');
  return {
    cos: f.length ? Math.min(...f.map((c) => c.cosine ?? 0)) : null,
    rel: f.length ? Math.max(...f.map((c) => c.relMaxAbs ?? 0)) : null,
  };
}

/** "comparison: failure; worst at [i]: got g, expected e". */
function failureText(c: OutputComparison): string {
  const w = c.worst ?? c.firstViolation;
  return `${c.name}: ${c.failure}${w ? `; worst at [${w.index}]: got ${w.got}, expected ${w.expected}` : ''}`;
}

/** The layer in one line: shape, activation, strategy, backend, seed. */
function layerLine(r: DispatchReport): string {
  const s = r.shape;
  return (
    `MoE layer${r.preset ? ` ${r.preset}` : ''}: tokens ${s.tokens}, hidden ${s.hidden}, intermediate ${s.intermediate}, experts ${s.experts}, top-k ${s.topK}` +
    (s.sharedIntermediate > 0 ? `, shared expert ${s.sharedIntermediate}${s.sharedGate ? ' (sigmoid-gated)' : ''}` : '') +
    `; activation ${r.activation}; strategy ${r.strategy}; backend ${r.backend} (${r.device.name}); seed ${r.seed}`
  );
}

export function renderDispatch(r: DispatchReport): string {
  const lines = [layerLine(r)];
  if (r.manifest) lines.push(`manifest: ${r.manifest.file} (shader ${r.manifest.shader})`);
  const t = new Table({ head: ['stage', 'kernels', 'dispatches', 'time µs', 'share %', 'cosine', 'rel_max_abs', 'status'], style: { head: [], border: [] } });
  for (const st of r.stages) {
    const { cos, rel } = stageFigures(st);
    t.push([st.stage, st.kernels.join(', '), st.dispatches, (st.ns / 1000).toFixed(1), (100 * st.share).toFixed(1), cos === null ? '-' : cos.toFixed(6), fmt(rel), st.pass ? 'PASS' : 'FAIL']);
  }
  lines.push(t.toString());
  lines.push(
    `layer: ${(r.totalNs / 1000).toFixed(1)} µs device time, ${r.tokensPerSecond.toFixed(1)} tokens/s; expert and router weights read ${(r.weightBytes / 2 ** 20).toFixed(1)} MiB → ${r.effectiveGBs.toFixed(2)} GB/s effective`,
  );
  if (r.quant !== null) {
    const expertNs = r.stages.filter((x) => ['expert gate/up', 'expert down', FUSED_STAGES.gateUp, FUSED_STAGES.down].includes(x.stage)).reduce((a, x) => a + x.ns, 0);
    lines.push(
      `quantized experts (${r.quant}-bit, group ${64}): packed weights + scales + biases read ${(r.packedBytes / 2 ** 20).toFixed(1)} MiB in ${(expertNs / 1000).toFixed(1)} µs of expert projections → ${(expertNs > 0 ? r.packedBytes / expertNs : 0).toFixed(2)} GB/s effective`,
    );
  }
  const fc = r.final;
  lines.push(`final hidden state: cosine ${fc.cosine?.toFixed(7)}, max_abs ${fmt(fc.maxAbs)}, rel_max_abs ${fmt(fc.relMaxAbs)} — ${r.pass ? 'PASS' : 'FAIL'}`);
  if (r.firstDivergence) {
    const st = r.stages.find((x) => x.stage === r.firstDivergence);
    const bad = st?.comparisons.find((c) => !c.pass);
    lines.push(`first divergence: stage '${r.firstDivergence}' (${st?.kernels.join(', ')}): ${bad ? failureText(bad) : 'no failing output'}`);
  }
  return lines.join('\n');
}

/** Markdown for CI step summaries: the verdict, the layer, a row per stage, the first divergence. */
export function renderDispatchMarkdown(r: DispatchReport): string {
  const lines = [
    `## moe dispatch: ${r.pass ? '✅ PASS' : '❌ FAIL'}`,
    '',
    `${mdText(layerLine(r))}; moe-kernels ${r.tool.version}.`,
    '',
    ...(r.manifest ? [mdText(`manifest: ${r.manifest.file} (shader ${r.manifest.shader})`), ''] : []),
    '| stage | kernels | dispatches | time µs | share % | cosine | rel_max_abs | status |',
    '|---|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const st of r.stages) {
    const { cos, rel } = stageFigures(st);
    const kernels = st.kernels.map((k) => `\`${k}\``).join(', ');
    lines.push(
      `| ${st.stage} | ${kernels} | ${st.dispatches} | ${(st.ns / 1000).toFixed(1)} | ${(100 * st.share).toFixed(1)} | ${cos === null ? '-' : cos.toFixed(6)} | ${fmt(rel)} | ${st.pass ? '✅' : '❌'} |`,
    );
  }
  lines.push('', `Final hidden state: cosine ${r.final.cosine?.toFixed(7)}, rel_max_abs ${fmt(r.final.relMaxAbs)}; ${(r.totalNs / 1000).toFixed(1)} µs device time, ${r.tokensPerSecond.toFixed(1)} tokens/s.`);
  const failing = r.stages.filter((st) => !st.pass);
  if (failing.length > 0 || !r.final.pass) {
    lines.push('', '### Failures', '');
    for (const st of failing) {
      for (const c of st.comparisons.filter((x) => !x.pass)) lines.push(`- **${st.stage}** (${st.kernels.join(', ')}): \`${mdText(failureText(c))}\``);
    }
    if (!r.final.pass) lines.push(`- **final hidden state**: \`${mdText(failureText(r.final))}\``);
  }
  return lines.join('\n') + '\n';
}

/** JUnit XML: one testsuite for the layer, a testcase per stage and one for the final hidden state. */
export function renderDispatchJunit(r: DispatchReport): string {
  const outcome = (cs: OutputComparison[]): JunitCase['failure'] => {
    const bad = cs.filter((c) => !c.pass);
    if (bad.length === 0) return undefined;
    return { message: bad.map((c) => `${c.name}: ${c.failure}`).join('; '), type: 'tolerance', text: bad.map(failureText).join('\n') };
  };
  const cases: JunitCase[] = r.stages.map((st) => {
    const c: JunitCase = { name: `${st.stage} (${st.kernels.join(', ')})`, seconds: st.ns / 1e9 };
    const failure = outcome(st.comparisons);
    if (failure) c.failure = failure;
    return c;
  });
  const final: JunitCase = { name: 'final hidden state', seconds: 0 };
  const failure = outcome([r.final]);
  if (failure) final.failure = failure;
  cases.push(final);
  const s = r.shape;
  const properties: [string, string | number][] = [
    ['backend', r.backend],
    ['device', r.device.name],
    ['seed', r.seed],
    ['strategy', r.strategy],
    ['shape', `tokens ${s.tokens}, hidden ${s.hidden}, intermediate ${s.intermediate}, experts ${s.experts}, top-k ${s.topK}, shared ${s.sharedIntermediate}`],
  ];
  return renderJunitXml('moe dispatch', r.totalNs / 1e9, [{ name: `dispatch ${r.preset ?? 'layer'} ${r.strategy}`, properties, cases }]);
}

export const dispatchRenderers: Renderers<DispatchReport> = { table: (r) => renderDispatch(r), markdown: renderDispatchMarkdown, junit: renderDispatchJunit };
