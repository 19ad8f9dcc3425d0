import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPhysics } from '../src/bench/physics.js';
import { renderRoofline, rooflineChart, type RooflineInput } from '../src/report/roofline.js';

const kase = (kernel: string, bytes: number, flops: number, medianNs: number): RooflineInput['cases'][number] => ({ kernel, shape: `n=${bytes}`, medianNs, bytes, flops, gbps: bytes / medianNs, gflops: flops / medianNs });

test('roofline data: cases with FLOPs are points, the others rows only; the ceilings of the physics check, and a measured copy on the CPU as a reference', () => {
  const r: RooflineInput = {
    backend: 'cpu',
    clock: 'steady',
    device: { name: 'host' },
    peak: { bandwidthGBs: 9.5, source: 'measured: moe_copy_f32 over 64 MiB' },
    cases: [kase('weighted-sum', 1e6, 4e5, 1e5), kase('copy', 1e6, 0, 1e5), kase('skips', 1e9, 1e9, 1e3)],
  };
  r.physics = checkPhysics({ ...r, peak: r.peak ?? null, flags: {} }, 4);
  const c = rooflineChart(r);
  assert.deepEqual(c.points.map((p) => [p.index, p.ai, p.impossible]), [[0, 0.4, false], [2, 1, true]]);
  assert.deepEqual(c.bandwidth.map((b) => b.value), [4 * 192 * 6, 9.5]);
  assert.match(c.bandwidth[1]?.label ?? '', /measured copy 9\.50 GB\/s \(not a ceiling here\)/);
  assert.deepEqual(c.compute.map((b) => b.value), [4 * 64 * 6]);
  const html = renderRoofline(r);
  assert.match(html, /<tr data-index="1">.*not plotted: no FLOPs/);
  assert.match(html, /<tr data-index="2">.*class="text impossible">impossible: /);
  assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)=/i, 'self-contained');
  const data = /<script id="roofline-data" type="application\/json">(.*?)<\/script>/.exec(html);
  assert.deepEqual(JSON.parse(data?.[1] ?? 'null'), JSON.parse(JSON.stringify(c)));
});

test('roofline: names from the report cannot break out of the page', () => {
  const r: RooflineInput = { backend: 'cpu', clock: 'c', device: { name: '</script><b>x' }, cases: [{ ...kase('k', 8, 8, 1), shape: '<img src=x>' }] };
  const html = renderRoofline(r);
  assert.ok(!html.includes('<img src=x>') && !html.includes('</script><b>'));
});
