/**
 * The package as npm publishes it: `npm pack`, installed into an empty project
 * offline (the tarball, and its dependencies from the local npm cache that
 * `npm ci` filled), then `moe` run from there. It catches files missing from
 * the package's `files`, an addon that does not build from the published
 * sources, and shaders or d3 builds not found from an installed copy.
 *
 * The empty project gets a lockfile: the production entries of ours, with the
 * registry address of each tarball written in (this repository's lockfile
 * omits them), so npm needs no package metadata and fetches nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tmp } from './helpers.js';

interface LockEntry {
  version?: string;
  resolved?: string;
  dev?: boolean;
  devOptional?: boolean;
  [k: string]: unknown;
}

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env }, timeout: 600_000, maxBuffer: 64 * 2 ** 20 });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

test('the packed tarball installs offline into an empty project, builds its addon and runs', () => {
  const started = Date.now();
  assert.ok(existsSync(join(ROOT, 'dist', 'commands', 'verify.js')), 'dist/ is built (npm test builds it first)');
  const dir = tmp('pack');
  // dist/ is fresh: no prepare script (tsc) again.
  const pack = run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], ROOT);
  assert.equal(pack.code, 0, pack.out);
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  assert.ok(tgz, pack.out);
  const tarball = join(dir, tgz);

  const registry = run('npm', ['config', 'get', 'registry'], dir).out.trim().split('\n')[0]?.replace(/\/$/, '') ?? 'https://registry.npmjs.org';
  const ours = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const me = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; dependencies: Record<string, string>; bin: Record<string, string>; license: string };
  const spec = `file:${tarball}`;
  const packages: Record<string, LockEntry> = {
    '': { name: 'moe-pack-check', version: '1.0.0', dependencies: { [me.name]: spec } },
    [`node_modules/${me.name}`]: { version: me.version, resolved: spec, hasInstallScript: true, license: me.license, dependencies: me.dependencies, bin: me.bin },
  };
  for (const [path, entry] of Object.entries(ours.packages)) {
    if (path === '' || entry.dev === true || entry.devOptional === true) continue;
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const base = name.split('/').pop() as string;
    packages[path] = { ...entry, resolved: entry.resolved ?? `${registry}/${name}/-/${base}-${String(entry.version)}.tgz` };
  }
  const proj = join(dir, 'project');
  mkdirSync(proj);
  writeFileSync(
    join(proj, 'package.json'),
    // npm blocks a dependency's install scripts unless allowed: ours builds the native addon.
    JSON.stringify({ name: 'moe-pack-check', version: '1.0.0', private: true, dependencies: { [me.name]: spec }, allowScripts: { [me.name]: true, [spec]: true } }, null, 2),
  );
  writeFileSync(join(proj, 'package-lock.json'), JSON.stringify({ name: 'moe-pack-check', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2));

  const install = run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], proj, { JOBS: 'max' });
  assert.equal(install.code, 0, install.out);
  const installed = join(proj, 'node_modules', me.name);
  assert.ok(existsSync(join(installed, 'build', 'Release', 'moe_native.node')), `the addon built from the published sources:\n${install.out}`);
  const built = Date.now();
  // The package's "main" and "types" ship once the public API (src/index.ts) exists.
  if (existsSync(join(ROOT, 'src', 'index.ts'))) {
    const pj = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { main: string; types: string };
    for (const f of [pj.main, pj.types]) assert.ok(existsSync(join(installed, f)), `${f} is in the package`);
  }

  const offline = { npm_config_offline: 'true' };
  const verify = run('npx', ['moe', 'verify', '--kernel', 'softmax-topk'], proj, offline);
  assert.equal(verify.code, 0, verify.out);
  assert.match(verify.out, /PASS: \d+ passed, 0 failed/);
  const kernels = run('npx', ['moe', 'kernels'], proj, offline);
  assert.equal(kernels.code, 0, kernels.out);
  assert.match(kernels.out, /moe_softmax_topk_f32/);
  // the roofline inlines d3 resolved from wherever npm put it
  const html = join(dir, 'roof.html');
  const bench = run('npx', ['moe', 'bench', '--backend', 'cpu', '--kernel', 'weighted-sum', '--max-time', '0.05', '--min-samples', '3', '--html', html], proj, offline);
  assert.equal(bench.code, 0, bench.out);
  assert.match(readFileSync(html, 'utf8'), /d3js\.org\/d3-axis/);
  console.log(`# packaging check: pack + offline install with the addon build ${((built - started) / 1000).toFixed(1)} s, commands ${((Date.now() - built) / 1000).toFixed(1)} s`);
});
