/**
 * The package as npm ships it: `npm pack`'s tarball, extracted into a
 * project's node_modules without running its install script (as
 * `npm install --ignore-scripts` leaves it), exports the public API with
 * types, and its missing-addon hint names the command that builds it there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tmp } from './helpers.js';

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

/** A project dir whose node_modules holds the extracted tarball as moe-kernels, and the repo's dependencies beside it. */
function installedProject(): { proj: string; files: string[] } {
  const dir = tmp('pack');
  // The dist/ of the last build (npm test builds first); --ignore-scripts so packing does not rebuild it.
  const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(pack.status, 0, pack.stderr);
  const info = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  const tarball = join(dir, info[0]?.filename ?? '');
  const tar = spawnSync('tar', ['-xzf', tarball, '-C', dir], { encoding: 'utf8' });
  assert.equal(tar.status, 0, tar.stderr);
  const proj = join(dir, 'proj');
  const nm = join(proj, 'node_modules');
  mkdirSync(nm, { recursive: true });
  renameSync(join(dir, 'package'), join(nm, 'moe-kernels'));
  for (const e of readdirSync(join(ROOT, 'node_modules'))) {
    if (e.startsWith('.') || e === 'moe-kernels') continue;
    symlinkSync(join(ROOT, 'node_modules', e), join(nm, e));
  }
  writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'engine-kernels', private: true, type: 'module' }));
  return { proj, files: (info[0]?.files ?? []).map((f) => f.path) };
}

const CHECK_TS = `import { defineSpec, f32In, f32Out, floatRule, threads, makeRng, type KernelSpec, type Tensors } from 'moe-kernels';

export const scale: KernelSpec = defineSpec({
  name: 'engine-scale',
  entry: 'engine_scale',
  shader: './scale.metal',
  description: 'y = 2x',
  math: 'y[i] = 2·x[i]',
  params: [{ name: 'n', flag: 'elements', description: 'elements' }],
  defaults: { n: 64 },
  inputSets: [{ name: 'normal', description: 'x ~ N(0, 1)' }],
  buffers: [f32In(0, 'x', (p) => p.n as number), f32Out(1, 'y', (p) => p.n as number)],
  validate: () => null,
  inputs: (p, _set, rng): Tensors => ({ x: Float32Array.from({ length: p.n as number }, () => rng.normal()) }),
  launch: (p) => threads(p.n as number),
  reference: (_p, inputs) => ({ outputs: { y: (inputs.x as Float32Array).map((v) => 2 * v) }, rules: { y: floatRule(0, 0, 0, 'exact') } }),
  cost: (p) => ({ bytes: 8 * (p.n as number), flops: p.n as number }),
});
export const first: number = makeRng('seed').next();
`;

test('npm pack: the tarball has the public API with types; a TypeScript file importing defineSpec typechecks against it, a wrong one does not', () => {
  const { proj, files } = installedProject();
  for (const f of ['dist/index.js', 'dist/index.d.ts', 'examples/rms-norm-spec/spec.ts', 'examples/rms-norm-spec/rms_norm.metal']) assert.ok(files.includes(f), `${f} is in the tarball`);
  assert.ok(!files.some((f) => f.startsWith('test/')), 'no tests in the tarball');

  const tsconfig = { compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, types: ['node'] } };
  writeFileSync(join(proj, 'tsconfig.json'), JSON.stringify({ ...tsconfig, files: ['check.ts'] }));
  writeFileSync(join(proj, 'check.ts'), CHECK_TS);
  const ok = spawnSync(process.execPath, [TSC, '-p', proj], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);

  // The same file with a launch mode that does not exist must not typecheck: the types are the contract's.
  writeFileSync(join(proj, 'check.ts'), CHECK_TS.replace("launch: (p) => threads(p.n as number)", "launch: (p) => ({ ...threads(p.n as number), mode: 'warps' })"));
  const bad = spawnSync(process.execPath, [TSC, '-p', proj], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0, 'a wrong launch mode is a type error');
  assert.match(bad.stdout, /check\.ts\(\d+,\d+\): error TS\d+: Type '"warps"' is not assignable/);

  // At run time the package's entry point is the public API.
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', "import * as m from 'moe-kernels'; console.log(typeof m.defineSpec, typeof m.packStruct, typeof m.f32ToBf16Bits)"], { cwd: proj, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'function function function');
});

test('installed without its install script: the missing-addon hint names npm rebuild moe-kernels', () => {
  const { proj } = installedProject();
  const pkg = join(proj, 'node_modules', 'moe-kernels');
  assert.ok(!existsSync(join(pkg, 'build')), 'the tarball carries no built addon');
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1' };
  delete env.MOE_NATIVE_ADDON;
  const r = spawnSync(process.execPath, [join(pkg, 'bin', 'run.js'), 'verify', '--kernel', 'gelu-mul', '--backend', 'cpu'], { cwd: proj, encoding: 'utf8', env });
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /native addon not built .*npm rebuild moe-kernels/);
  assert.doesNotMatch(r.stderr, /build:native/);
});
