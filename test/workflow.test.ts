import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

const wf = readFileSync(join(ROOT, '.github', 'workflows', 'apple-silicon.yml'), 'utf8');
/** The text of one job: from its key to the next job key. */
function job(name: string): string {
  const m = new RegExp(`^  ${name}:\\n([\\s\\S]*?)(?=^  [\\w-]+:\\n|(?![\\s\\S]))`, 'm').exec(wf);
  assert.ok(m, `job ${name} missing`);
  return m[1] as string;
}

test('Apple Silicon workflow: verify and bench on the self-hosted Mac, with the issue\'s steps in order', () => {
  const verify = job('metal-verify');
  assert.match(verify, /runs-on: \[self-hosted, macOS, ARM64\]/);
  const steps = ['npm ci', 'npx moe backends', 'npx moe verify --backend metal --junit results.xml --markdown >> "$GITHUB_STEP_SUMMARY"', 'actions/upload-artifact'];
  let at = 0;
  for (const s of steps) {
    const i = verify.indexOf(s, at);
    assert.ok(i >= at, `metal-verify: '${s}' missing or out of order`);
    at = i;
  }
  assert.match(verify, /path: results\.xml/);
  assert.match(verify, /if: always\(\)/);
  assert.match(verify, /head\.repo\.full_name == github\.repository/, 'no self-hosted runs for pull requests from forks');
  const bench = job('metal-bench');
  assert.match(bench, /needs: metal-verify/);
  assert.match(bench, /runs-on: \[self-hosted, macOS, ARM64\]/);
  assert.match(bench, /npx moe bench --backend metal --baseline bench\/baselines\/metal\.json/);
});

test('Apple Silicon workflow: a missing baseline is said plainly, never compared against invented numbers', () => {
  const bench = job('metal-bench');
  assert.match(bench, /if \[ -f bench\/baselines\/metal\.json \]/);
  assert.match(bench, /::warning title=no Metal baseline::/);
  assert.match(bench, /no regression gate/);
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

test('Apple Silicon workflow: the hosted macos-14 job verifies on the CPU and shows the self-test verdict; Linux runs npm test', () => {
  const hosted = job('hosted-macos');
  assert.match(hosted, /runs-on: macos-14/);
  assert.match(hosted, /npx moe backends/);
  assert.match(hosted, /npx moe verify --backend cpu/);
  const linux = job('linux');
  assert.match(linux, /runs-on: ubuntu-latest/);
  assert.match(linux, /- run: npm test/);
});

test('Apple Silicon workflow: the hosted macos-14 job builds the addon first, as a named step, and checks its Metal backend', () => {
  const hosted = job('hosted-macos');
  const steps = [...hosted.matchAll(/^ {6}- (?:name: (.*)|uses: (.*)|run: (.*))$/gm)].map((m) => m[0].trim());
  const firstOwn = steps.findIndex((s) => !s.startsWith('- uses: actions/'));
  assert.ok(firstOwn >= 0, 'the job has steps of its own');
  assert.match(steps[firstOwn] as string, /^- name: build the native addon/, 'the first step after checkout and setup-node builds the addon, by name');
  const build = hosted.slice(hosted.indexOf(steps[firstOwn] as string));
  const body = build.slice(0, build.indexOf('\n      - ', 1));
  assert.match(body, /npm ci/, 'the build step is npm ci (what a user runs)');
  assert.match(body, /moe_native\.node/, 'the build step loads the addon');
  assert.match(body, /a\.metal/, 'the build step checks that the Metal backend was built');
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
