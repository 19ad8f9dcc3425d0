/**
 * `npm run bench:gate`: how often the baseline gate of `moe bench` raises a
 * false alarm on unchanged code, and how often it catches a planted
 * slowdown, on this machine, as it is loaded right now (CPU backend).
 *
 * Each trial, in its own processes as CI would run them:
 *   1. record a baseline of weighted-sum: `moe bench --json` (one block, the
 *      plain recipe) and `moe bench --json --repeats 5`;
 *   2. gate the unchanged code against it, and the planted variant
 *      bench/shaders/weighted_sum_slow.metal (the same kernel doing about
 *      20% more work), in up to three ways (--modes, default saved-1,A/B):
 *        saved-1   `--baseline base.json` (a baseline of one block)
 *        saved-5   `--baseline base5.json` (a baseline that carries its spread)
 *        A/B       `--baseline base.json --baseline-shader shaders/moe_dispatch.metal`
 *
 * Targets: no SLOWER verdict on unchanged code in 20 trials, SLOWER on the
 * planted variant in 20 of 20. Printed beside them: what the first look
 * alone (the gate before it re-measured: one run against the file, in-run
 * noise only) would have said, the AMBIGUOUS verdicts (they fail only under
 * --strict, and the figures under --strict), the slowdown the variant
 * really causes, and the load average. A/B is the gate this tool recommends;
 * the saved modes show what a saved file alone can support: when the load of
 * the machine differs from that at the recording, they answer AMBIGUOUS
 * rather than guess.
 *
 *   npm run bench:gate [-- --trials N] [--modes saved-1,saved-5,A/B] [--verbose]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/util/paths.js';

interface Cmp {
  verdict: string;
  ratio: number;
  combinedNoise: number;
  method: string;
  firstLook: { ratio: number };
}
interface Doc {
  baseline?: { comparisons: Cmp[]; maxRegression: number };
}

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
const trials = Number(arg('trials', '20'));
const verbose = process.argv.includes('--verbose');
const BIN = join(PACKAGE_ROOT, 'bin', 'run.js');
const REAL = join(PACKAGE_ROOT, 'shaders', 'moe_dispatch.metal');
const SLOW = join(PACKAGE_ROOT, 'bench', 'shaders', 'weighted_sum_slow.metal');
const BASE = ['bench', '--kernel', 'weighted-sum', '--backend', 'cpu'];

function moe(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...BASE, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function record(file: string, extra: string[]): void {
  const r = moe(['--json', ...extra]);
  if (r.code !== 0) throw new Error(`recording the baseline failed (exit ${r.code}): ${r.stderr}`);
  writeFileSync(file, r.stdout);
}

/** --max-regression of the gated runs (the default), as the reports state it. */
let tolerance = 0.05;

function gate(args: string[]): { code: number; c: Cmp } {
  const r = moe([...args, '--json']);
  const doc = JSON.parse(r.stdout) as Doc;
  const c = doc.baseline?.comparisons[0];
  tolerance = doc.baseline?.maxRegression ?? tolerance;
  if (!c || (r.code !== 0 && r.code !== 1)) throw new Error(`moe bench ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  if ((c.verdict === 'slower') !== (r.code === 1)) throw new Error(`exit ${r.code} disagrees with the verdict ${c.verdict}`);
  return { code: r.code, c };
}

interface Tally {
  slower: number;
  ambiguous: number;
  firstLookAlarm: number;
  ratios: number[];
  confirmed: number;
}
const tally = (): Tally => ({ slower: 0, ambiguous: 0, firstLookAlarm: 0, ratios: [], confirmed: 0 });

const ALL_MODES = [
  { name: 'saved-1', args: (d: string) => ['--baseline', join(d, 'base1.json')] },
  { name: 'saved-5', args: (d: string) => ['--baseline', join(d, 'base5.json')] },
  { name: 'A/B', args: (d: string) => ['--baseline', join(d, 'base1.json'), '--baseline-shader', REAL] },
];
const wanted = arg('modes', 'saved-1,A/B').split(',');
const modes = ALL_MODES.filter((m) => wanted.includes(m.name));
if (modes.length !== wanted.length) throw new Error(`--modes: choose from ${ALL_MODES.map((m) => m.name).join(', ')}`);

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), 'moe-gate-'));
  const same = new Map(modes.map((m) => [m.name, tally()]));
  const planted = new Map(modes.map((m) => [m.name, tally()]));
  const loads: number[] = [];
  const t0 = performance.now();
  // Compile both shaders once so no trial pays for a compile.
  record(join(dir, 'warm.json'), []);
  record(join(dir, 'warm.json'), ['--shader', SLOW]);
  console.log(`baseline gate of moe bench --kernel weighted-sum --backend cpu: ${trials} trials, --max-regression 5%`);
  for (let t = 0; t < trials; t++) {
    loads.push(loadavg()[0] as number);
    record(join(dir, 'base1.json'), []);
    if (modes.some((m) => m.name === 'saved-5')) record(join(dir, 'base5.json'), ['--repeats', '5']);
    for (const m of modes) {
      // Alternate which of the two runs first, so neither always follows the recording.
      const order: [Map<string, Tally>, string[]][] = [
        [same, []],
        [planted, ['--shader', SLOW]],
      ];
      if (t % 2 === 1) order.reverse();
      for (const [where, extra] of order) {
        const { c } = gate([...m.args(dir), ...extra]);
        const s = where.get(m.name) as Tally;
        if (c.verdict === 'slower') s.slower++;
        if (c.verdict === 'ambiguous') s.ambiguous++;
        if (c.method !== 'first look') s.confirmed++;
        // The gate before this change: a regression when new/old − 1 exceeds the tolerance plus the in-run noise.
        if (c.firstLook.ratio - 1 - c.combinedNoise > tolerance) s.firstLookAlarm++;
        s.ratios.push(c.ratio);
        if (verbose) console.log(`  ${m.name} ${where === same ? 'unchanged' : 'planted'}: first look ${c.firstLook.ratio.toFixed(3)}, ${c.method} ${c.ratio.toFixed(3)} → ${c.verdict}`);
      }
    }
    process.stdout.write(`  trial ${t + 1}/${trials} (load ${(loads[t] as number).toFixed(2)})\r`);
  }
  loads.push(loadavg()[0] as number);
  const secs = (performance.now() - t0) / 1000;
  const med = (a: number[]): number => {
    const s = [...a].sort((x, y) => x - y);
    return s.length % 2 ? (s[s.length >> 1] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
  };
  const of = (n: number): string => `${n} of ${trials}`;
  console.log(`\n${'mode'.padEnd(9)} | unchanged code: false alarms  first look alone  ambiguous | planted 20%: detected  ambiguous  median new/old | --strict: false alarms  detected`);
  for (const m of modes) {
    const s = same.get(m.name) as Tally;
    const p = planted.get(m.name) as Tally;
    console.log(
      `${m.name.padEnd(9)} | ${of(s.slower).padEnd(29)} ${of(s.firstLookAlarm).padEnd(16)} ${String(s.ambiguous).padEnd(9)} | ` +
        `${of(p.slower).padEnd(21)} ${String(p.ambiguous).padEnd(10)} ${med(p.ratios).toFixed(3).padEnd(14)} | ${of(s.slower + s.ambiguous).padEnd(22)} ${of(p.slower + p.ambiguous)}`,
    );
  }
  const ab = planted.get('A/B');
  if (ab) console.log(`\nplanted slowdown as the interleaved A/B measured it: ${med(ab.ratios).toFixed(3)}x (median over ${trials} trials)`);
  console.log(`load average (1 min) during the run: min ${Math.min(...loads).toFixed(2)}, median ${med(loads).toFixed(2)}, max ${Math.max(...loads).toFixed(2)} on ${availableParallelism()} CPUs; ${secs.toFixed(0)} s`);
  for (const m of modes) {
    const fa = (same.get(m.name) as Tally).slower;
    const det = (planted.get(m.name) as Tally).slower;
    console.log(
      `${m.name}: false alarms ${of(fa)} (target 0: ${fa === 0 ? 'met' : 'MISSED'}); detection ${of(det)} (target ${trials}: ${det === trials ? 'met' : 'MISSED'})`,
    );
  }
}

main();
