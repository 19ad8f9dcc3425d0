/**
 * `moe bench --html FILE`: one self-contained HTML file with a log-log
 * roofline of the bench cases (x: arithmetic intensity in FLOP per byte of the
 * cost model, y: achieved GFLOP/s) under the device's ceilings, and the numbers
 * in tables beneath. The chart is drawn in the browser by d3 (scale, axis,
 * selection), whose published UMD builds are inlined, so the file needs no
 * network when viewed. The tables are plain HTML, readable without scripts.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Ceiling, PhysicsVerdict } from '../bench/physics.js';

/** What the renderer reads: a bench report (or anything shaped like its parts used here). */
export interface RooflineInput {
  backend: string;
  clock: string;
  device: { name: string };
  /** The report's peak: a measured copy bandwidth is drawn even where it is no ceiling (the CPU). */
  peak?: { bandwidthGBs: number; source: string } | null;
  startedAt?: string;
  tool?: { version: string };
  cases: {
    kernel: string;
    shape: string;
    medianNs: number;
    bytes: number;
    flops: number;
    gbps: number;
    gflops: number;
  }[];
  physics?: PhysicsVerdict;
}

/** One point of the chart, as the page's script receives it. */
export interface RooflinePoint {
  /** Index of the case in the report (and the row in the table). */
  index: number;
  label: string;
  ai: number;
  gflops: number;
  gbps: number;
  impossible: boolean;
}

export interface RooflineChart {
  title: string;
  points: RooflinePoint[];
  bandwidth: { label: string; value: number }[];
  compute: { label: string; value: number }[];
}

/** The d3 modules the page needs, dependencies first (each UMD build adds itself to the global d3). */
const D3_MODULES = ['d3-array', 'd3-color', 'd3-interpolate', 'd3-format', 'd3-time', 'd3-time-format', 'd3-scale', 'd3-selection', 'd3-axis'];

let d3Cache: string | null = null;

/** The minified UMD builds of the d3 modules, each with its licence line, resolved wherever npm installed them. */
export function d3Bundle(): string {
  if (d3Cache !== null) return d3Cache;
  const require = createRequire(import.meta.url);
  d3Cache = D3_MODULES.map((m) => {
    // The package's "exports" resolve to dist/<name>.mjs; the UMD build sits beside it.
    const file = join(dirname(require.resolve(m)), `${m}.min.js`);
    return readFileSync(file, 'utf8');
  }).join('\n');
  return d3Cache;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/** JSON safe inside a <script> element. */
const scriptJson = (v: unknown): string => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
const num = (x: number): string => (x === 0 ? '0' : Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(3));

/** The chart's data: the cases that have FLOPs (a log axis has no zero), and the ceilings. */
export function rooflineChart(r: RooflineInput): RooflineChart {
  const bad = new Set((r.physics?.impossible ?? []).map((c) => `${c.kernel}\u0000${c.shape}`));
  const points: RooflinePoint[] = [];
  r.cases.forEach((c, index) => {
    if (!(c.flops > 0 && c.bytes > 0 && c.gflops > 0)) return;
    points.push({ index, label: `${c.kernel} ${c.shape}`, ai: c.flops / c.bytes, gflops: c.gflops, gbps: c.gbps, impossible: bad.has(`${c.kernel}\u0000${c.shape}`) });
  });
  const ceilings: Ceiling[] = r.physics?.ceilings ?? [];
  const bandwidth = ceilings.filter((k) => k.kind === 'bandwidth').map((k) => ({ label: `${k.label} ${num(k.value)} GB/s`, value: k.value }));
  if (r.peak?.source.startsWith('measured') && !ceilings.some((k) => k.label === 'measured copy')) {
    bandwidth.push({ label: `measured copy ${num(r.peak.bandwidthGBs)} GB/s (not a ceiling here)`, value: r.peak.bandwidthGBs });
  }
  return {
    title: `moe bench roofline: ${r.backend} (${r.device.name})`,
    points,
    bandwidth,
    compute: ceilings.filter((k) => k.kind === 'compute').map((k) => ({ label: `${k.label} ${num(k.value)} GFLOP/s`, value: k.value })),
  };
}

/** The page's own drawing code: plain browser JavaScript over the inlined d3. */
const DRAW = String.raw`
(function () {
  var data = JSON.parse(document.getElementById('roofline-data').textContent);
  var W = 960, H = 560, m = { top: 48, right: 40, bottom: 56, left: 80 };
  var w = W - m.left - m.right, h = H - m.top - m.bottom;
  var svg = d3.select('#roofline').attr('width', W).attr('height', H).attr('viewBox', '0 0 ' + W + ' ' + H);
  svg.append('text').attr('class', 'title').attr('x', m.left).attr('y', 24).text(data.title);
  var ais = data.points.map(function (p) { return p.ai; });
  var ys = data.points.map(function (p) { return p.gflops; });
  var bws = data.bandwidth.map(function (b) { return b.value; });
  var peaks = data.compute.map(function (c) { return c.value; });
  var top = peaks.length ? Math.max.apply(null, peaks) : null;
  var ridges = top === null ? [] : bws.map(function (b) { return top / b; });
  var xs = ais.concat(ridges);
  if (xs.length === 0) xs = [1];
  var xMin = Math.min.apply(null, xs) / 10, xMax = Math.max.apply(null, xs) * 10;
  var yc = ys.concat(peaks);
  if (top === null) bws.forEach(function (b) { yc.push(b * Math.max.apply(null, ais.length ? ais : [1])); });
  if (yc.length === 0) yc = [1];
  var yMin = (ys.length ? Math.min.apply(null, ys) : Math.min.apply(null, yc)) / 10, yMax = Math.max.apply(null, yc) * 3;
  var x = d3.scaleLog().domain([xMin, xMax]).range([0, w]);
  var y = d3.scaleLog().domain([yMin, yMax]).range([h, 0]);
  var decades = function (lo, hi) {
    var out = [];
    for (var e = Math.ceil(Math.log10(lo)); e <= Math.floor(Math.log10(hi)); e++) out.push(Math.pow(10, e));
    return out;
  };
  var fmt = d3.format('~g');
  var plot = svg.append('g').attr('class', 'plot').attr('transform', 'translate(' + m.left + ',' + m.top + ')');
  svg.append('defs').append('clipPath').attr('id', 'plot-area').append('rect').attr('width', w).attr('height', h);
  plot.append('g').attr('class', 'x-axis').attr('transform', 'translate(0,' + h + ')')
    .call(d3.axisBottom(x).tickValues(decades(xMin, xMax)).tickFormat(fmt).tickSizeInner(-h));
  plot.append('g').attr('class', 'y-axis')
    .call(d3.axisLeft(y).tickValues(decades(yMin, yMax)).tickFormat(fmt).tickSizeInner(-w));
  plot.append('text').attr('class', 'axis-label').attr('x', w / 2).attr('y', h + 44).attr('text-anchor', 'middle')
    .text('arithmetic intensity (FLOP per byte of the cost model)');
  plot.append('text').attr('class', 'axis-label').attr('transform', 'rotate(-90)').attr('x', -h / 2).attr('y', -60)
    .attr('text-anchor', 'middle').text('achieved GFLOP/s');
  var roofs = plot.append('g').attr('class', 'ceilings').attr('clip-path', 'url(#plot-area)');
  var colours = ['#8250df', '#bf8700', '#1a7f37', '#57606a'];
  data.bandwidth.forEach(function (b, i) {
    var xr = top === null ? xMax : Math.min(xMax, top / b.value);
    var pts = [[xMin, b.value * xMin], [xr, b.value * xr]];
    if (top !== null && xr < xMax) pts.push([xMax, top]);
    roofs.append('path').attr('class', 'ceiling bandwidth').attr('stroke', colours[i % colours.length])
      .attr('d', 'M' + pts.map(function (p) { return x(p[0]) + ',' + y(p[1]); }).join('L'));
    var lx = Math.max(xMin * 1.5, Math.min(xr / 30, xMax));
    plot.append('text').attr('class', 'ceiling-label').attr('fill', colours[i % colours.length])
      .attr('x', x(lx)).attr('y', Math.max(12, Math.min(h - 4, y(b.value * lx) - 8)))
      .text(b.label);
  });
  data.compute.forEach(function (c, i) {
    var bmax = bws.length ? Math.max.apply(null, bws) : null;
    var x0 = bmax === null ? xMin : Math.max(xMin, c.value / bmax);
    roofs.append('path').attr('class', 'ceiling compute').attr('stroke', '#cf222e').attr('stroke-dasharray', i === 0 ? null : '6,4')
      .attr('d', 'M' + x(x0) + ',' + y(c.value) + 'L' + x(xMax) + ',' + y(c.value));
    plot.append('text').attr('class', 'ceiling-label').attr('fill', '#cf222e').attr('text-anchor', 'end')
      .attr('x', w - 4).attr('y', Math.max(12, y(c.value) - 6)).text(c.label);
  });
  var pts = plot.append('g').attr('class', 'points');
  pts.selectAll('text.point-label').data(data.points).enter().append('text').attr('class', 'point-label')
    .attr('x', function (p) { return x(p.ai) + 9; }).attr('y', function (p) { return y(p.gflops) + 4; })
    .text(function (p) { return p.label + (p.impossible ? ' (impossible)' : ''); });
  pts.selectAll('circle').data(data.points).enter().append('circle')
    .attr('class', function (p) { return p.impossible ? 'point impossible' : 'point'; })
    .attr('data-index', function (p) { return p.index; })
    .attr('cx', function (p) { return x(p.ai); }).attr('cy', function (p) { return y(p.gflops); }).attr('r', 5)
    .append('title').text(function (p) { return p.label + ': ' + fmt(p.gbps) + ' GB/s, ' + fmt(p.gflops) + ' GFLOP/s'; });
  if (data.points.length === 0) {
    plot.append('text').attr('x', w / 2).attr('y', h / 2).attr('text-anchor', 'middle').text('no case with floating-point work to plot');
  }
})();
`;

const STYLE = `
body { margin: 0; font: 13px/1.4 system-ui, sans-serif; color: #1f2328; background: #fff; }
#roofline { display: block; }
.title { font-size: 16px; font-weight: 600; }
.tick line { stroke: #d0d7de; }
.tick text { font-size: 11px; }
.axis-label { font-size: 12px; }
.ceiling { fill: none; stroke-width: 2; }
.ceiling-label { font-size: 11px; }
circle.point { fill: #0969da; stroke: none; }
circle.point.impossible { fill: #cf222e; }
.point-label { font-size: 10px; fill: #1f2328; }
main { padding: 0 16px 24px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
td.impossible { color: #cf222e; font-weight: 600; }
`;

/** The whole page. */
export function renderRoofline(r: RooflineInput): string {
  const chart = rooflineChart(r);
  const bad = new Map((r.physics?.impossible ?? []).map((c) => [`${c.kernel}\u0000${c.shape}`, c.reasons.join('; ')]));
  const plotted = new Set(chart.points.map((p) => p.index));
  const bwCeilings = (r.physics?.ceilings ?? []).filter((k) => k.kind === 'bandwidth');
  const rows = r.cases.map((c, i) => {
    const why = bad.get(`${c.kernel}\u0000${c.shape}`);
    const bw = bwCeilings.length > 0 ? Math.min(...bwCeilings.map((k) => k.value)) : null;
    const verdict = why !== undefined ? `impossible: ${why}` : plotted.has(i) ? 'plotted' : 'not plotted: no FLOPs in the cost model (a log axis has no zero)';
    const cells = [
      `<td class="text">${esc(c.kernel)}</td>`,
      `<td class="text">${esc(c.shape)}</td>`,
      `<td>${num(c.medianNs / 1000)}</td>`,
      `<td>${c.bytes}</td>`,
      `<td>${c.flops}</td>`,
      `<td>${c.bytes > 0 ? num(c.flops / c.bytes) : '-'}</td>`,
      `<td>${num(c.gbps)}</td>`,
      `<td>${num(c.gflops)}</td>`,
      `<td>${bw === null ? '-' : num((100 * c.gbps) / bw)}</td>`,
      `<td class="text${why !== undefined ? ' impossible' : ''}">${esc(verdict)}</td>`,
    ];
    return `<tr data-index="${i}">${cells.join('')}</tr>`;
  });
  const ceilingRows = (r.physics?.ceilings ?? []).map(
    (k) => `<tr><td class="text">${esc(k.kind)}</td><td class="text">${esc(k.label)}</td><td>${num(k.value)} ${k.kind === 'bandwidth' ? 'GB/s' : 'GFLOP/s'}${k.margin > 0 ? ` (+${Math.round(100 * k.margin)}%)` : ''}</td><td class="text">${esc(k.source)}${k.minBytes > 0 ? esc(`; bounds cases over ${k.minBytes / 2 ** 20} MiB`) : ''}</td></tr>`,
  );
  const notes = (r.physics?.notes ?? []).map((n) => `<li>${esc(n)}</li>`).join('');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(chart.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<svg id="roofline" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="${esc(chart.title)}"></svg>
<main>
<p>${esc(r.backend)} · ${esc(r.device.name)} · clock: ${esc(r.clock)}${r.startedAt ? ` · ${esc(r.startedAt)}` : ''}${r.tool ? ` · moe-kernels ${esc(r.tool.version)}` : ''}</p>
<p>Each point is one case: x its FLOPs over its bytes by the spec's cost model, y its FLOPs over its median time. A point above a ceiling did not do the work the cost model says.</p>
<h2>Cases</h2>
<table id="cases">
<thead><tr><th>kernel</th><th>shape</th><th>median µs</th><th>bytes</th><th>FLOPs</th><th>FLOP/byte</th><th>GB/s</th><th>GFLOP/s</th><th>% BW ceiling</th><th>verdict</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
<h2>Ceilings</h2>
<table id="ceilings">
<thead><tr><th>kind</th><th>name</th><th>value</th><th>source</th></tr></thead>
<tbody>
${ceilingRows.join('\n')}
</tbody>
</table>
${notes ? `<ul id="notes">${notes}</ul>` : ''}
</main>
<script id="roofline-data" type="application/json">${scriptJson(chart)}</script>
<script>
${d3Bundle()}
</script>
<script>${DRAW}</script>
</body>
</html>
`;
}
