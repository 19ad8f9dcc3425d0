/** Reports of `moe dispatch`: table, JSON document (docs/dispatch-report.schema.json), JUnit XML, Markdown. */
import { basename } from 'node:path';
import { FUSED_STAGES, type LayerReport, type StageReport } from '../dispatch/layer.js';
import type { KernelSource } from '../dispatch/stage.js';
import type { OutputComparison } from '../verify/compare.js';
import { cosineCell, fittedTable, floatWorst, fmt, mdText, renderJunitXml, worstAt, wrapText, type Column, type JunitCase, type Renderers, type ReportHead, type TableView } from './common.js';

export const DISPATCH_SCHEMA = 'moe-kernels/dispatch-report@1';

export interface DispatchReport extends Omit<LayerReport, 'output'>, ReportHead<typeof DISPATCH_SCHEMA> {
  preset: string | null;
  activation: string;
  /** The binding manifest (--manifest) whose entries replaced our kernels, and its shader. */
  manifest?: { file: string; shader: string };
  /** The user's --shader (null: ours only). */
  userShader: string | null;
  /**
   * Why the layer is not a verdict on the kernels: a --shader none of whose
   * kernels ran, a stage whose kernel did not compile or match (exit 2), or
   * failed while running (exit 1). Empty when none.
   */
  errors: DispatchError[];
  /** The signal that ended the run early (SIGINT, SIGTERM): the report holds the stages that finished. */
  interrupted?: string;
}

export interface DispatchError {
  type: 'unused-shader' | 'compile' | 'signature' | 'runtime';
  /** The stage and kernel it concerns (null: the whole run). */
  stage: string | null;
  kernel: string | null;
  message: string;
}

/** "ours" or the user's file name: whose kernel ran. */
const fromText = (k: KernelSource): string => (k.from === 'ours' ? 'ours' : basename(k.file));

/** Whose kernels a stage ran: "ours", "mine.metal", or per kernel when they differ. */
export function stageFrom(st: StageReport): string {
  const from = [...new Set(st.sources.map(fromText))];
  if (from.length <= 1) return from[0] ?? '-';
  return st.sources.map((k) => `${k.entry}: ${fromText(k)}`).join(', ');
}

/** "comparison: failure; worst at [i]: got g, expected e". */
function failureText(c: OutputComparison): string {
  const at = worstAt(c);
  return `${c.name}: ${c.failure}${at ? `; ${at}` : ''}`;
}

/** The layer in one line: shape, activation, strategy, backend, seed. */
function layerLine(r: DispatchReport): string {
  const s = r.shape;
  return (
    `MoE layer${r.preset ? ` ${r.preset}` : ''}: tokens ${s.tokens}, hidden ${s.hidden}, intermediate ${s.intermediate}, experts ${s.experts}, top-k ${s.topK}` +
    (s.sharedIntermediate > 0 ? `, shared expert ${s.sharedIntermediate}${s.sharedGate ? ' (sigmoid-gated)' : ''}` : '') +
    `; activation ${r.activation}; strategy ${r.strategy}; backend ${r.backend} (${r.device.name}); seed ${r.seed}` +
    (r.userShader ? `; shader ${r.userShader}` : '')
  );
}

export function renderDispatch(r: DispatchReport, view: TableView): string {
  const lines = wrapText(layerLine(r), view.wrapWidth, '  ');
  if (r.manifest) lines.push(`manifest: ${r.manifest.file} (shader ${r.manifest.shader})`);
  const columns: Column[] = [
    { head: 'stage', drop: 0 },
    { head: 'kernels', drop: 3, wrap: true },
    { head: 'from', drop: 0, wrap: true },
    { head: 'dispatches', drop: 5, align: 'right' },
    { head: 'time µs', drop: 4, align: 'right' },
    { head: 'share %', drop: 6, align: 'right' },
    { head: 'cosine', drop: 2, align: 'right' },
    { head: 'rel_max_abs', drop: 1, align: 'right' },
    { head: 'status', drop: 0 },
  ];
  const rows = r.stages.map((st) => {
    const w = floatWorst(st.comparisons);
    return [st.stage, st.kernels.join(', '), stageFrom(st), String(st.dispatches), (st.ns / 1000).toFixed(1), (100 * st.share).toFixed(1), cosineCell(w.cosine), fmt(w.relMaxAbs), st.pass ? 'PASS' : 'FAIL'];
  });
  if (rows.length > 0) lines.push(...fittedTable(columns, rows, view));
  for (const e of r.errors) lines.push(...wrapText(`ERROR${e.stage ? ` in stage '${e.stage}'` : ''}${e.kernel ? ` (${e.kernel})` : ''}: ${e.message}`, view.wrapWidth, '    '));
  // the lines after the table wrap like the header
  const text = (line: string): void => {
    lines.push(...wrapText(line, view.wrapWidth, '  '));
  };
  if (r.interrupted) {
    // the stages that finished, then the verdict: no layer figures, no final state
    if (r.firstDivergence) text(divergenceLine(r));
    text(interruptedLine(r));
    return lines.join('\n');
  }
  if (r.errors.length > 0 && r.stages.length === 0) return lines.join('\n');
  text(
    `layer: ${(r.totalNs / 1000).toFixed(1)} µs device time, ${r.tokensPerSecond.toFixed(1)} tokens/s; expert and router weights read ${(r.weightBytes / 2 ** 20).toFixed(1)} MiB → ${r.effectiveGBs.toFixed(2)} GB/s effective`,
  );
  if (r.quant !== null) {
    const expertNs = r.stages.filter((x) => ['expert gate/up', 'expert down', FUSED_STAGES.gateUp, FUSED_STAGES.down].includes(x.stage)).reduce((a, x) => a + x.ns, 0);
    text(
      `quantized experts (${r.quant}-bit, group ${64}): packed weights + scales + biases read ${(r.packedBytes / 2 ** 20).toFixed(1)} MiB in ${(expertNs / 1000).toFixed(1)} µs of expert projections → ${(expertNs > 0 ? r.packedBytes / expertNs : 0).toFixed(2)} GB/s effective`,
    );
  }
  const fc = r.final;
  text(`final hidden state: cosine ${fc.cosine?.toFixed(7)}, max_abs ${fmt(fc.maxAbs)}, rel_max_abs ${fmt(fc.relMaxAbs)} — ${r.pass ? 'PASS' : 'FAIL'}`);
  if (r.firstDivergence) text(divergenceLine(r));
  return lines.join('\n');
}

/** "first divergence: stage 's' (kernels): what failed". */
function divergenceLine(r: DispatchReport): string {
  const st = r.stages.find((x) => x.stage === r.firstDivergence);
  const bad = st?.comparisons.find((c) => !c.pass);
  return `first divergence: stage '${r.firstDivergence}' (${st?.kernels.join(', ')}): ${bad ? failureText(bad) : 'no failing output'}`;
}

/** The closing line of a layer cut short by a signal. */
function interruptedLine(r: DispatchReport): string {
  return `INTERRUPTED (${r.interrupted}): ${r.stages.length} stage(s) finished before the layer stopped; the final hidden state was not reached`;
}

/** Markdown for CI step summaries: the verdict, the layer, a row per stage, the first divergence. */
export function renderDispatchMarkdown(r: DispatchReport): string {
  const lines: string[] = [
    `## moe dispatch: ${r.interrupted ? `⚠️ INTERRUPTED (${r.interrupted})` : r.errors.length > 0 ? '❌ ERROR' : r.pass ? '✅ PASS' : '❌ FAIL'}`,
    '',
    `${mdText(layerLine(r))}; moe-kernels ${r.tool.version}.`,
    '',
    ...(r.manifest ? [mdText(`manifest: ${r.manifest.file} (shader ${r.manifest.shader})`), ''] : []),
  ];
  if (r.stages.length > 0) {
    lines.push('| stage | kernels | dispatches | time µs | share % | cosine | rel_max_abs | status | kernel from |', '|---|---|---:|---:|---:|---:|---:|---|---|');
  }
  for (const st of r.stages) {
    const w = floatWorst(st.comparisons);
    const kernels = st.kernels.map((k) => `\`${k}\``).join(', ');
    lines.push(
      `| ${st.stage} | ${kernels} | ${st.dispatches} | ${(st.ns / 1000).toFixed(1)} | ${(100 * st.share).toFixed(1)} | ${cosineCell(w.cosine)} | ${fmt(w.relMaxAbs)} | ${st.pass ? '✅' : '❌'} | ${mdText(stageFrom(st))} |`,
    );
  }
  if (r.errors.length > 0) {
    lines.push('', '### Errors', '');
    for (const e of r.errors) lines.push(`- **${e.stage ?? 'layer'}**${e.kernel ? ` (\`${e.kernel}\`)` : ''}: ${e.type}`, ...e.message.split('\n').map((l) => `  - \`${mdText(l)}\``));
  }
  // a layer that stopped early has nothing more to show; one cut short by a signal, the failures of the stages that finished
  if (r.interrupted) lines.push('', mdText(interruptedLine(r)));
  if (r.stages.length === 0) return lines.join('\n') + '\n';
  if (!r.interrupted) lines.push('', `Final hidden state: cosine ${r.final.cosine?.toFixed(7)}, rel_max_abs ${fmt(r.final.relMaxAbs)}; ${(r.totalNs / 1000).toFixed(1)} µs device time, ${r.tokensPerSecond.toFixed(1)} tokens/s.`);
  const finalFailed = !r.final.pass && !r.interrupted;
  const failing = r.stages.filter((st) => !st.pass);
  if (failing.length > 0 || finalFailed) {
    lines.push('', '### Failures', '');
    for (const st of failing) {
      for (const c of st.comparisons.filter((x) => !x.pass)) lines.push(`- **${st.stage}** (${st.kernels.join(', ')}): \`${mdText(failureText(c))}\``);
    }
    if (finalFailed) lines.push(`- **final hidden state**: \`${mdText(failureText(r.final))}\``);
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
    c.output = st.sources.map((k) => `${k.entry}: ${k.from === 'ours' ? `ours (${k.file})` : `the --shader file's (${k.file})`}`).join('\n');
    const failure = outcome(st.comparisons);
    if (failure) c.failure = failure;
    return c;
  });
  for (const e of r.errors) {
    const name = e.type === 'unused-shader' ? `shader ${r.userShader ?? ''}` : `${e.stage ?? 'layer'}${e.kernel ? ` (${e.kernel})` : ''}: did not run`;
    cases.push({ name, seconds: 0, error: { message: e.message, type: e.type, text: e.message } });
  }
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

export const dispatchRenderers: Renderers<DispatchReport> = { table: renderDispatch, markdown: renderDispatchMarkdown, junit: renderDispatchJunit };
