import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { ROOT } from './helpers.js';

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  id?: string;
  if?: string;
  with?: Record<string, unknown>;
}
interface Job {
  if?: string;
  'runs-on': string | string[];
  steps: Step[];
}

const wf = yaml.load(readFileSync(join(ROOT, '.github', 'workflows', 'apple-silicon.yml'), 'utf8')) as { jobs: Record<string, Job> };
function job(name: string): Job {
  const j = wf.jobs[name];
  assert.ok(j, `job ${name} missing`);
  return j;
}
const action = (j: Job): Step => {
  const s = j.steps.find((x) => x.uses === './');
  assert.ok(s, 'the job uses the repository\'s action');
  return s;
};

test('Apple Silicon workflow: verify and bench on the self-hosted Mac through the action, JUnit uploaded always', () => {
  const metal = job('metal');
  assert.deepEqual(metal['runs-on'], ['self-hosted', 'macOS', 'ARM64']);
  assert.match(metal.if ?? '', /head\.repo\.full_name == github\.repository/, 'no self-hosted runs for pull requests from forks');
  const uses = metal.steps.map((s) => s.uses ?? s.run ?? '');
  assert.ok(uses.indexOf('actions/checkout@v4') < uses.indexOf('./') && uses.indexOf('./') < uses.indexOf('actions/upload-artifact@v4'), 'checkout, the action, the upload');
  const a = action(metal);
  assert.equal(a.with?.backend, 'metal');
  assert.equal(a.with?.baseline, 'bench/baselines/metal.json');
  const upload = metal.steps.find((s) => s.uses === 'actions/upload-artifact@v4');
  assert.equal(upload?.if, 'always()');
  assert.match(String(upload?.with?.path), new RegExp(`steps\\.${a.id}\\.outputs\\.junit`));
});

test('Apple Silicon workflow: a missing baseline is said plainly, never compared against invented numbers', () => {
  const script = readFileSync(join(ROOT, 'scripts', 'action-run.sh'), 'utf8');
  assert.match(script, /if \[ -f "\$MOE_ACTION_BASELINE" \]/);
  assert.match(script, /::warning title=no bench baseline::/);
  assert.match(script, /no regression gate/);
  const file = join(ROOT, 'bench', 'baselines', 'metal.json');
  if (existsSync(file)) {
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { schema: string; backend: string; device: { name: string } };
    assert.equal(doc.schema, 'moe-kernels/bench-report@1');
    assert.equal(doc.backend, 'metal', 'a Metal baseline must come from the metal backend');
    assert.doesNotMatch(doc.device.name, /moe_metal_fake|Paravirtual/, 'not from the fake or the paravirtual device');
  } else {
    assert.match(readFileSync(join(ROOT, 'bench', 'baselines', 'README.md'), 'utf8'), /not committed yet/);
  }
});

test('Apple Silicon workflow: the hosted macos-14 job verifies on the CPU (the action shows the self-test verdict); Linux runs npm test', () => {
  const hosted = job('hosted-macos');
  assert.equal(hosted['runs-on'], 'macos-14');
  assert.equal(action(hosted).with?.backend, 'cpu');
  assert.match(readFileSync(join(ROOT, 'scripts', 'action-run.sh'), 'utf8'), /moe backends/);
  const linux = job('linux');
  assert.equal(linux['runs-on'], 'ubuntu-latest');
  assert.ok(linux.steps.some((s) => s.run === 'npm test'));
});

test('Apple Silicon workflow: the hosted macos-14 job builds the addon first, as a named step, and checks its Metal backend', () => {
  const hosted = job('hosted-macos');
  const firstOwn = hosted.steps.findIndex((s) => !(s.uses ?? '').startsWith('actions/'));
  assert.ok(firstOwn >= 0, 'the job has steps of its own');
  const build = hosted.steps[firstOwn] as Step;
  assert.match(build.name ?? '', /^build the native addon/, 'the first step after checkout and setup-node builds the addon, by name');
  assert.match(build.run ?? '', /npm ci/, 'the build step is npm ci (what a user runs)');
  assert.match(build.run ?? '', /moe_native\.node/, 'the build step loads the addon');
  assert.match(build.run ?? '', /a\.metal/, 'the build step checks that the Metal backend was built');
  assert.ok(hosted.steps.findIndex((s) => s.uses === './') > firstOwn, 'the action runs after the build');
});

test('.ci/run installs clang and GNUstep and makes test:mac-build mandatory', () => {
  const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
  assert.match(ci, /apt-get update/);
  assert.match(ci, /apt-get install[^\n]*clang[^\n]*libgnustep-base-dev/);
  assert.match(ci, /MOE_REQUIRE_MAC_BUILD=1/);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; files: string[] };
  assert.match(pkg.scripts.test ?? '', /test:mac-build/);
  assert.ok(pkg.files.includes('!native/test'), 'the fake-Metal sources (native/test) are not published');
});
