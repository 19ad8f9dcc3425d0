/**
 * The composite GitHub Action (action.yml): its inputs against the README's
 * workflows, the repository's workflow using it, and its script run for real.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { ROOT, shader, tmp } from './helpers.js';

interface Step {
  uses?: string;
  run?: string;
  id?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
interface Job {
  'runs-on': string | string[];
  steps: Step[];
  strategy?: { matrix: Record<string, unknown> };
}
interface Action {
  runs: { using: string; steps: Step[] };
  inputs: Record<string, { description: string; default?: string }>;
  outputs: Record<string, { value: string }>;
}

const action = yaml.load(readFileSync(join(ROOT, 'action.yml'), 'utf8')) as Action;
const INPUTS = ['shader', 'manifest', 'kernels', 'backend', 'baseline', 'shard', 'args'];

/** The README's YAML blocks that use the action. */
function readmeWorkflows(): { jobs: Record<string, Job> }[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1] as string)
    .filter((b) => /moe-kernels@/.test(b))
    .map((b) => yaml.load(b) as { jobs: Record<string, Job> });
}

test('action.yml: a composite action with the inputs of the issue; every input reaches the script', () => {
  assert.equal(action.runs.using, 'composite');
  for (const i of INPUTS) assert.ok(action.inputs[i], `input ${i}`);
  for (const [name, spec] of Object.entries(action.inputs)) assert.ok(spec.description, `${name} described`);
  assert.ok(action.outputs.junit?.value.includes('steps.run.outputs.junit'));
  const run = action.runs.steps.find((s) => s.id === 'run');
  assert.ok(run?.env && run.run?.includes('scripts/action-run.sh'));
  const script = readFileSync(join(ROOT, 'scripts', 'action-run.sh'), 'utf8');
  for (const name of Object.keys(action.inputs).filter((n) => n !== 'node-version')) {
    const v = `MOE_ACTION_${name.toUpperCase().replace(/-/g, '_')}`;
    assert.equal(run.env[v], `\${{ inputs.${name} }}`, `${v} carries the input ${name}`);
    assert.ok(script.includes(v), `the script reads ${v}`);
  }
});

test('README: the workflows use only the action\'s inputs and outputs, on a self-hosted Mac (metal), hosted Linux (cpu) and a sharded matrix', () => {
  const flows = readmeWorkflows();
  assert.ok(flows.length >= 2, 'the engine workflow and the matrix example');
  const seen = { metal: false, cpu: false, matrix: false };
  for (const wf of flows) {
    for (const [name, job] of Object.entries(wf.jobs)) {
      const uses = job.steps.filter((s) => /moe-kernels@/.test(s.uses ?? ''));
      assert.equal(uses.length, 1, `${name}: the action once`);
      const w = uses[0]?.with ?? {};
      for (const k of Object.keys(w)) assert.ok(action.inputs[k], `${name}: '${k}' is an input of action.yml`);
      const runsOn = ([] as string[]).concat(job['runs-on']);
      if (w.backend === 'metal' && runsOn.includes('self-hosted') && runsOn.includes('macOS')) seen.metal = true;
      if (w.backend === 'cpu' && runsOn.includes('ubuntu-latest') && !job.strategy) seen.cpu = true;
      if (job.strategy && typeof w.shard === 'string' && w.shard.includes('matrix.shard')) seen.matrix = true;
      for (const s of job.steps) {
        for (const m of JSON.stringify(s.with ?? {}).matchAll(/steps\.(\w+)\.outputs\.([\w-]+)/g)) {
          assert.equal(m[1], uses[0]?.id, `${name}: outputs of the action's step`);
          assert.ok(action.outputs[m[2] as string], `${name}: output ${m[2]} exists`);
        }
      }
    }
  }
  assert.deepEqual(seen, { metal: true, cpu: true, matrix: true });
  const engine = readFileSync(join(ROOT, 'README.md'), 'utf8').match(/```yaml\n(on: [\s\S]*?)```/)?.[1] ?? '';
  assert.ok(engine.trim().split('\n').length <= 16, 'the engine workflow stays short');
});

test('the repository\'s workflows run verify and bench only through the action', () => {
  const dir = join(ROOT, '.github', 'workflows');
  const wf = yaml.load(readFileSync(join(dir, 'apple-silicon.yml'), 'utf8')) as { jobs: Record<string, Job> };
  let uses = 0;
  for (const [name, job] of Object.entries(wf.jobs)) {
    for (const s of job.steps) {
      assert.doesNotMatch(s.run ?? '', /moe (verify|bench)/, `${name}: a hand-written moe step`);
      if (s.uses === './') {
        uses++;
        for (const k of Object.keys(s.with ?? {})) assert.ok(action.inputs[k], `${name}: ${k}`);
      }
    }
  }
  assert.ok(uses >= 2);
});

function runAction(env: Record<string, string>): { code: number | null; stdout: string; summary: string; outputs: Record<string, string> } {
  const dir = tmp('action');
  const r = spawnSync('bash', [join(ROOT, 'scripts', 'action-run.sh')], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', GITHUB_STEP_SUMMARY: join(dir, 'summary.md'), GITHUB_OUTPUT: join(dir, 'outputs'), RUNNER_TEMP: dir, ...env },
    timeout: 300_000,
  });
  const read = (f: string): string => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
  const outputs = Object.fromEntries(read('outputs').split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  return { code: r.status, stdout: r.stdout + r.stderr, summary: read('summary.md'), outputs };
}

test('the action\'s script: summary, JUnit output, the tool\'s exit code; unset inputs pass no flag', () => {
  const ok = runAction({ MOE_ACTION_BACKEND: 'cpu', MOE_ACTION_KERNELS: 'softmax-topk', MOE_ACTION_ARGS: '--seed 7' });
  assert.equal(ok.code, 0, ok.stdout);
  assert.match(ok.summary, /## moe verify: ✅ PASS/);
  assert.ok(ok.outputs.junit && existsSync(ok.outputs.junit), 'JUnit file named in the outputs');
  assert.match(readFileSync(ok.outputs.junit, 'utf8'), /<testsuites/);
  assert.equal(ok.outputs['exit-code'], '0');
  assert.match(ok.stdout, /\+ moe verify --backend cpu --kernel softmax-topk --seed 7 --junit/);
  assert.doesNotMatch(ok.stdout, /--shard|--manifest|--shader/);

  const bad = runAction({ MOE_ACTION_BACKEND: 'cpu', MOE_ACTION_KERNELS: 'weighted-sum', MOE_ACTION_SHADER: shader('weighted-sum', 'skip_last.metal') });
  assert.equal(bad.code, 1, bad.stdout);
  assert.equal(bad.outputs['exit-code'], '1');
  assert.match(bad.summary, /FAIL/);
});

test('the action\'s script: a baseline not there yet records a bench report without a gate; --shard and --manifest when set', () => {
  const dir = tmp('action-baseline');
  const r = runAction({
    MOE_ACTION_BACKEND: 'cpu',
    MOE_ACTION_KERNELS: 'weighted-sum',
    MOE_ACTION_BASELINE: join(dir, 'none.json'),
    MOE_ACTION_BENCH_ARGS: '--max-time 0.05 --min-samples 3 --warmup 1',
  });
  assert.equal(r.code, 0, r.stdout);
  assert.match(r.stdout, /::warning title=no bench baseline::/);
  assert.match(r.summary, /No bench baseline yet/);
  const report = JSON.parse(readFileSync(r.outputs['bench-report'] as string, 'utf8')) as { schema: string };
  assert.equal(report.schema, 'moe-kernels/bench-report@1');
  // Whether the flags exist in this build or not, the command line carries them.
  const sharded = runAction({ MOE_ACTION_BACKEND: 'cpu', MOE_ACTION_KERNELS: 'softmax-topk', MOE_ACTION_SHARD: '2/3', MOE_ACTION_MANIFEST: 'm.json' });
  assert.match(sharded.stdout, /\+ moe verify --backend cpu --kernel softmax-topk --manifest m\.json --shard 2\/3\s+--junit \S*moe-verify-2-of-3\.xml/);
});
