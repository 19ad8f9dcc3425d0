/**
 * What every command's report shares: the renderers a command hands to
 * emit() (table, Markdown, JUnit; --json is the report itself), number
 * formatting, and one JUnit XML writer.
 */

import type { DeviceInfo } from '../backend/types.js';
import { toolVersion } from '../util/env.js';

/** The first fields of every report: which document, which tool, where it ran. */
export interface ReportHead<S extends string> {
  schema: S;
  tool: { name: 'moe-kernels'; version: string };
  backend: string;
  device: DeviceInfo;
}

export function reportHead<S extends string>(schema: S, backend: string, device: DeviceInfo): ReportHead<S> {
  return { schema, tool: { name: 'moe-kernels', version: toolVersion() }, backend, device };
}

/** The renderers of one command's report. */
export interface Renderers<R> {
  /** The human report (tables), coloured when `color`. */
  table(report: R, color: boolean): string;
  /** Markdown for CI step summaries. */
  markdown(report: R): string;
  /** JUnit XML for CI test views. */
  junit(report: R): string;
}

/** A figure with 4 significant digits, or in exponent form when tiny or huge; '-' for none. */
export const fmt = (v: number | null, digits = 3): string => {
  if (v === null) return '-';
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  if (Math.abs(v) >= 1e-3 && Math.abs(v) < 1e4) return v.toPrecision(digits + 1);
  return v.toExponential(digits - 1);
};

/** Microseconds from nanoseconds, two decimals under 10 µs. */
export const us = (ns: number): string => (ns / 1000).toFixed(ns < 10_000 ? 2 : 1);

/** Text safe inside Markdown inline code and list items. */
export const mdText = (s: string): string => s.replace(/`/g, "'");

const xmlEscape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

export interface JunitOutcome {
  message: string;
  type: string;
  text: string;
}

export interface JunitCase {
  name: string;
  seconds: number;
  failure?: JunitOutcome;
  error?: JunitOutcome;
  /** Why the case did not run. */
  skipped?: string;
}

export interface JunitSuite {
  name: string;
  properties: [string, string | number][];
  cases: JunitCase[];
}

/** JUnit XML: a testsuite per suite (testcases classed `moe.<suite>`), counts summed from the cases. */
export function renderJunitXml(name: string, seconds: number, suites: JunitSuite[]): string {
  const count = (cs: JunitCase[]) => ({
    tests: cs.length,
    failures: cs.filter((c) => c.failure).length,
    errors: cs.filter((c) => c.error).length,
    skipped: cs.filter((c) => c.skipped !== undefined).length,
  });
  const attrs = (n: ReturnType<typeof count>, s: number): string =>
    `tests="${n.tests}" failures="${n.failures}" errors="${n.errors}" skipped="${n.skipped}" time="${s.toFixed(3)}"`;
  const all = count(suites.flatMap((s) => s.cases));
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', `<testsuites name="${xmlEscape(name)}" ${attrs(all, seconds)}>`];
  for (const suite of suites) {
    const t = suite.cases.reduce((a, c) => a + c.seconds, 0);
    lines.push(`  <testsuite name="${xmlEscape(suite.name)}" ${attrs(count(suite.cases), t)}>`);
    lines.push('    <properties>');
    for (const [k, v] of suite.properties) lines.push(`      <property name="${xmlEscape(k)}" value="${xmlEscape(String(v))}"/>`);
    lines.push('    </properties>');
    for (const c of suite.cases) {
      lines.push(`    <testcase classname="moe.${xmlEscape(suite.name)}" name="${xmlEscape(c.name)}" time="${c.seconds.toFixed(3)}">`);
      for (const [tag, o] of [['failure', c.failure], ['error', c.error]] as const) {
        if (o) lines.push(`      <${tag} message="${xmlEscape(o.message)}" type="${xmlEscape(o.type)}">${xmlEscape(o.text)}</${tag}>`);
      }
      if (c.skipped !== undefined) lines.push(`      <skipped message="${xmlEscape(c.skipped)}"/>`);
      lines.push('    </testcase>');
    }
    lines.push('  </testsuite>');
  }
  lines.push('</testsuites>');
  return lines.join('\n') + '\n';
}
