/**
 * `moe bench --html`: the roofline page rendered by a real browser (headless
 * Chromium), its points read back from the DOM the page's script built and
 * checked against the numbers of the same run's --json report, through the
 * axes' own ticks; and the screenshot's pixel at each point has the point's
 * colour. Skips with one line where Chromium is absent, except under CI=true.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { moe, tmp } from './helpers.js';

function findChromium(): string | null {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return null;
}

function chromium(bin: string, args: string[]): { stdout: string; stderr: string; status: number | null } {
  const profile = tmp('chromium-profile');
  const r = spawnSync(
    bin,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      `--user-data-dir=${profile}`,
      '--force-device-scale-factor=1',
      '--hide-scrollbars',
      ...args,
    ],
    { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 2 ** 20 },
  );
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

/** RGBA of every pixel of an 8-bit, non-interlaced RGB or RGBA PNG. */
function decodePng(buf: Buffer): { width: number; height: number; rgba: (x: number, y: number) => [number, number, number] } {
  assert.equal(buf.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'a PNG');
  let at = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (at < buf.length) {
    const len = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    const data = buf.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      assert.equal(data[8], 8, 'bit depth 8');
      channels = data[9] === 6 ? 4 : data[9] === 2 ? 3 : 0;
      assert.ok(channels > 0, `colour type ${String(data[9])}`);
      assert.equal(data[12], 0, 'not interlaced');
    } else if (type === 'IDAT') idat.push(data);
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)] as number;
    for (let i = 0; i < stride; i++) {
      const v = raw[y * (stride + 1) + 1 + i] as number;
      const a = i >= channels ? (px[y * stride + i - channels] as number) : 0;
      const b = y > 0 ? (px[(y - 1) * stride + i] as number) : 0;
      const c = y > 0 && i >= channels ? (px[(y - 1) * stride + i - channels] as number) : 0;
      let pred = 0;
      if (filter === 1) pred = a;
      else if (filter === 2) pred = b;
      else if (filter === 3) pred = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      px[y * stride + i] = (v + pred) & 0xff;
    }
  }
  return {
    width,
    height,
    rgba: (x, y) => [px[y * stride + x * channels] as number, px[y * stride + x * channels + 1] as number, px[y * stride + x * channels + 2] as number],
  };
}

interface Tick {
  at: number;
  value: number;
}

/** The ticks of one axis group of the dumped DOM: position along the axis and the value its label says. */
function ticks(dom: string, axis: 'x-axis' | 'y-axis'): Tick[] {
  const start = dom.indexOf(`class="${axis}"`);
  assert.ok(start >= 0, `${axis} drawn`);
  const end = dom.indexOf('</g></g>', start);
  const group = dom.slice(start, end > 0 ? end : undefined);
  const out: Tick[] = [];
  const re = /<g class="tick"[^>]*transform="translate\(([-\d.e]+),([-\d.e]+)\)"[^>]*>[\s\S]*?<text[^>]*>([^<]*)<\/text>/g;
  for (const m of group.matchAll(re)) {
    out.push({ at: Number(axis === 'x-axis' ? m[1] : m[2]), value: Number(m[3]) });
  }
  return out;
}

/** Where an axis puts a value, from two of its ticks (log scale: linear in log10). */
function place(t: Tick[], value: number): number {
  assert.ok(t.length >= 2, 'at least two labelled ticks');
  const a = t[0] as Tick;
  const b = t[t.length - 1] as Tick;
  return a.at + ((b.at - a.at) * (Math.log10(value) - Math.log10(a.value))) / (Math.log10(b.value) - Math.log10(a.value));
}

test('moe bench --html: Chromium draws one point per case where its numbers say, under the ceilings', (t) => {
  const bin = findChromium();
  if (!bin) {
    if (process.env.CI === 'true') assert.fail('chromium is not installed, and CI=true makes the browser test mandatory (.ci/run installs it)');
    console.log('# SKIP roofline browser test: chromium not found (apt-get install chromium)');
    t.skip('chromium not found');
    return;
  }
  const dir = tmp('roofline');
  const html = join(dir, 'roof.html');
  const r = moe(['bench', '--backend', 'cpu', '--kernel', 'weighted-sum', '--hidden', '4096,16384', '--top-k', '2,8', '--max-time', '0.05', '--min-samples', '3', '--warmup', '1', '--json', '--html', html]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { cases: { kernel: string; shape: string; bytes: number; flops: number; gflops: number }[] };
  assert.equal(report.cases.length, 4);
  const page = readFileSync(html, 'utf8');
  assert.doesNotMatch(page, /<(script|link|img)[^>]+(src|href)=/i, 'nothing loaded from elsewhere');

  const dump = chromium(bin, ['--dump-dom', `file://${html}`]);
  assert.equal(dump.status, 0, dump.stderr);
  const dom = dump.stdout;
  const circles = [...dom.matchAll(/<circle class="point[^"]*" data-index="(\d+)" cx="([-\d.e]+)" cy="([-\d.e]+)"/g)].map((m) => ({ index: Number(m[1]), cx: Number(m[2]), cy: Number(m[3]) }));
  assert.equal(circles.length, report.cases.length, 'one point per case');
  const xt = ticks(dom, 'x-axis');
  const yt = ticks(dom, 'y-axis');
  // d3's axis moves its ticks half a pixel for crisp lines: within a pixel, less than a point's radius.
  for (const c of circles) {
    const want = report.cases[c.index];
    assert.ok(want, `point ${c.index} has a case`);
    assert.ok(Math.abs(c.cx - place(xt, want.flops / want.bytes)) <= 1, `${want.shape}: x ${c.cx} vs ${place(xt, want.flops / want.bytes)}`);
    assert.ok(Math.abs(c.cy - place(yt, want.gflops)) <= 1, `${want.shape}: y ${c.cy} vs ${place(yt, want.gflops)}`);
    assert.ok(dom.includes(`${want.kernel} ${want.shape}</text>`), `${want.shape} labelled`);
  }
  assert.match(dom, /class="ceiling bandwidth"/);
  assert.match(dom, /class="ceiling compute"/);
  assert.match(dom, /host bound \d+ GB\/s/);

  const transform = /class="plot" transform="translate\(([-\d.]+),([-\d.]+)\)"/.exec(dom);
  assert.ok(transform, 'the plot group');
  const png = join(dir, 'roof.png');
  const shot = chromium(bin, ['--window-size=1000,700', `--screenshot=${png}`, `file://${html}`]);
  assert.equal(shot.status, 0, shot.stderr);
  const img = decodePng(readFileSync(png));
  for (const c of circles) {
    const x = Math.round(Number(transform[1]) + c.cx);
    const y = Math.round(Number(transform[2]) + c.cy);
    const [red, green, blue] = img.rgba(x, y);
    // circle.point is #0969da
    assert.ok(Math.abs(red - 0x09) < 24 && Math.abs(green - 0x69) < 24 && Math.abs(blue - 0xda) < 24, `pixel at point ${c.index} (${x},${y}) is ${red},${green},${blue}`);
  }
});
