import { Args } from '@oclif/core';
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { MoeCommand, reportFlags } from '../cli/base.js';
import type { BenchReport } from '../report/bench.js';
import { benchVerdict } from '../report/bench.js';
import { mergedRenderers, mergeReports, type ShardFile } from '../report/merge.js';
import type { VerifyReport } from '../report/verify.js';

export default class Merge extends MoeCommand {
  static override summary = 'Combine the --json reports of the shares of a sharded run (--shard i/n) into one report';
  static override description = `Each job of a CI matrix runs one share of the cases with --shard i/n and saves its --json report; moe merge reads them all and writes the report of the whole run (table, --json, --junit FILE, --markdown), as verify or bench would have.

The reports must make one run: the same kind (verify or bench), moe-kernels version, backend, seed and case list (a fingerprint of every case of the unsharded run), each share once and none missing, the same shader sources. Otherwise merge says which file differs and exits 2.

Exit codes: 0 every case passed, 1 a case failed (verify) or a case regressed or timed impossibly (bench), 2 reports that do not make one run, or unreadable.`;

  static override examples = [
    '<%= config.bin %> merge shard-1.json shard-2.json shard-3.json',
    '<%= config.bin %> merge reports/*.json --junit merged.xml --markdown >> $GITHUB_STEP_SUMMARY',
  ];

  static override strict = false;

  static override args = {
    reports: Args.string({ description: 'the --json reports of the shares (moe verify or moe bench with --shard i/n)', required: true }),
  };

  static override flags = { ...reportFlags };

  async run(): Promise<VerifyReport | BenchReport> {
    const { argv, flags } = await this.parse(Merge);
    const inputs: ShardFile[] = (argv as string[]).map((file) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
      }
      try {
        return { file, doc: JSON.parse(text) as unknown };
      } catch (e) {
        throw new UsageError(`${file} is not JSON: ${(e as Error).message}`);
      }
    });
    const merged = mergeReports(inputs);
    for (const note of merged.notes) this.note(note);
    if (merged.kind === 'verify') {
      const s = merged.report.summary;
      if (s.failed + s.errors > 0) process.exitCode = 1;
    } else if (benchVerdict(merged.report) === 'FAIL') {
      process.exitCode = 1;
    }
    return this.emit<VerifyReport | BenchReport>(merged.report, mergedRenderers(merged.kind), flags);
  }
}
