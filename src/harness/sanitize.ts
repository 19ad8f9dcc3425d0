/**
 * `moe verify --sanitize TOOL` on the CUDA backend: the command re-runs itself
 * under NVIDIA's compute-sanitizer (memcheck, racecheck, synccheck,
 * initcheck), reads what the tool prints, and fails each case it reports on
 * with the tool's finding, located in the .metal file (the emitted CUDA keeps
 * the .metal lines under #line directives, and NVRTC compiles with
 * -lineinfo: see nvrtcOptions) and with the buffer it hit named where the
 * tool's allocation size identifies it.
 *
 * The plumbing, parent side: find the tool (MOE_COMPUTE_SANITIZER, PATH,
 * $CUDA_HOME/bin, $CUDA_PATH/bin, /usr/local/cuda/bin), spawn
 * `compute-sanitizer --tool TOOL ... node moe verify ARGS` with
 * MOE_SANITIZE_CHILD set, collect its stdout and stderr, read the child's
 * report (a JSON file), and put the tool's findings on its cases. Child
 * side: the backend is wrapped so that each dispatch prints a marker line
 * with the buffers' names and sizes, and each finished case prints one; the
 * tool's reports come out on the same stdout, in order, so the reports
 * between two case markers are that case's. (That the tool prints a kernel's
 * findings before the child's wait for that kernel returns is checked on the
 * GPU by test/cuda.test.ts; a report that comes later still goes to the case
 * that dispatched last, or, when it names another .metal file, to the last
 * case of that file.)
 *
 * compute-sanitizer's options and report formats follow NVIDIA's Compute
 * Sanitizer documentation (docs.nvidia.com/compute-sanitizer/ComputeSanitizer/index.html:
 * "Command Line Options" for --tool, --show-backtrace, --print-limit,
 * --error-exitcode and --racecheck-report; "Understanding Memcheck Errors",
 * the racecheck and synccheck chapters for the text it prints). The text
 * format is what we parse: it is the one the manual documents line by line.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, join } from 'node:path';
import type { NativeLaunch, NativeRunOptions, NativeTimeOptions } from '../backend/addon-types.js';
import type { Backend, Buffers, Pipeline } from '../backend/types.js';
import { UsageError } from '../errors.js';

export const SANITIZE_TOOLS = ['memcheck', 'racecheck', 'synccheck', 'initcheck'] as const;
export type SanitizeTool = (typeof SANITIZE_TOOLS)[number];

/** Set in the child's environment: the tool it runs under. */
export const CHILD_ENV = 'MOE_SANITIZE_CHILD';
/** Set in the child's environment: where it writes its JSON report. */
export const REPORT_ENV = 'MOE_SANITIZE_REPORT';
/** Marker lines the child prints on stdout. */
export const MARK = '@@moe-sanitize';

// ------------------------------------------------------------------ finding the tool

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** compute-sanitizer's path, or null: MOE_COMPUTE_SANITIZER, then PATH, $CUDA_HOME/bin, $CUDA_PATH/bin, /usr/local/cuda/bin. */
export function findComputeSanitizer(env: NodeJS.ProcessEnv = process.env): string | null {
  const override = env.MOE_COMPUTE_SANITIZER?.trim();
  if (override) return executable(override) ? override : null;
  const dirs = (env.PATH ?? '').split(delimiter).filter((d) => d !== '');
  for (const home of [env.CUDA_HOME, env.CUDA_PATH, '/usr/local/cuda']) if (home) dirs.push(join(home, 'bin'));
  for (const d of dirs) {
    const p = join(d, 'compute-sanitizer');
    if (executable(p)) return p;
  }
  return null;
}

/** The tool's options: device frames only (no wall of host frames), reports on stdout, its exit code left to the child. */
export function sanitizerArgs(tool: SanitizeTool): string[] {
  const args = ['--tool', tool, '--show-backtrace', 'device', '--print-limit', '200', '--error-exitcode', '0'];
  // racecheck: one report per pair of racing source lines (its "analysis" mode), not one per hazard.
  if (tool === 'racecheck') args.push('--racecheck-report', 'analysis');
  return args;
}

// ------------------------------------------------------------------ parsing

/** One finding of the tool. */
export interface SanitizerFinding {
  /** The headline, e.g. "Invalid __global__ write of size 4 bytes", "Race reported between Write access ... and Read access ...". */
  what: string;
  /** The function the tool names (the generated entry, or the kernel or helper it inlined). */
  kernel: string | null;
  /** The .metal file (base name) and line of the access, when the tool gives it. */
  file: string | null;
  line: number | null;
  /** Other locations (racecheck: the other access of the pair). */
  otherLocations: string[];
  thread: string | null;
  block: string | null;
  address: string | null;
  /** "and is 4 bytes after the nearest allocation at 0x... of size 8192 bytes": */
  relation: { bytes: number; side: 'after' | 'before' | 'inside'; allocationSize: number } | null;
  /** racecheck's "[N hazards]". */
  hazards: number | null;
}

/** A dispatch the child ran, from its marker line: the buffers it bound. */
export interface RunMarker {
  entry: string;
  file: string;
  buffers: { index: number; name: string | null; bytes: number }[];
}

/** The child's stdout (and stderr) read back: findings per case, in order. */
export interface ParsedSanitizerOutput {
  /**
   * byCase.get(i): the findings reported while case i ran (i counts the
   * child's case markers), or after it ended and before the next dispatch;
   * each with the dispatch it came from.
   */
  byCase: Map<number, { finding: SanitizerFinding; run: RunMarker | null }[]>;
  /** Findings before any case's dispatch (e.g. in the device self-test), or of a dispatch whose case never ended. */
  unattributed: SanitizerFinding[];
  /** Lines where the tool says it could not work (attach, unsupported device...). */
  toolErrors: string[];
  /** How many case markers were seen. */
  cases: number;
  /** "ERROR SUMMARY: N errors" (memcheck) and the like, when printed. */
  summary: string | null;
  /** The tool's "COMPUTE-SANITIZER" banner was seen: it did start. */
  banner: boolean;
}

const PREFIX = /^=+ ?/;
const num = (s: string): number => Number(s.replace(/,/g, ''));

/**
 * A location as the tool prints it: "at NAME(ARGS)+0x1b0 in /path/file.metal:6"
 * (the function, possibly with its parameter list, then the source file and
 * line the #line directives gave), or "at 0x70 in /path/file.cu:11:NAME" (older).
 */
function location(text: string): { kernel: string | null; file: string | null; line: number | null } {
  const files = [...text.matchAll(/\sin\s+(\S+?\.[A-Za-z]\w*):(\d+)/g)];
  const last = files[files.length - 1];
  const k = /\bat\s+([A-Za-z_][\w:~]*)/.exec(text);
  return { kernel: k ? k[1]! : null, file: last ? basename(last[1]!) : null, line: last ? Number(last[2]) : null };
}

/** The text before the first location ("Invalid __global__ write of size 4 bytes", "Race reported between Write access"). */
function withoutLocation(text: string): string {
  return text.replace(/\s+at\s+\S.*?\sin\s+\S+:\d+\S*/, '').replace(/\s*\[\d[\d,]* hazards?\]/, '').trim();
}

function emptyFinding(what: string): SanitizerFinding {
  return { what, kernel: null, file: null, line: null, otherLocations: [], thread: null, block: null, address: null, relation: null, hazards: null };
}

/** Headlines of a finding (level-one lines of the tool's output). */
const HEADLINE =
  /^(Invalid .+|Uninitialized .+|Barrier error.+|Error: (?:Race reported|Potential \w+ hazard|Barrier|Divergent|Invalid).+|ERROR: Potential .+|Warning: .+hazard.+|Misaligned .+|Out-of-range .+|Malformed .+|Illegal .+|Cuda Error: .+|Race reported .+)$/;
/** What the tool says when it cannot do its work. */
const TOOL_ERROR =
  /(unable to|could not|cannot|failed to) (attach|connect|initialize|launch|inject|find)|not supported|Internal Sanitizer Error|Target application terminated before first instrumented API call|no CUDA-capable device|Error: Device not supported/i;

/**
 * Reads the child's output: the tool's lines (prefixed "========="), the
 * child's marker lines, anything else ignored. Host frames and saved host
 * backtraces are dropped; device frames only supply a location when the
 * headline lacks one.
 */
export function parseSanitizerOutput(text: string): ParsedSanitizerOutput {
  const out: ParsedSanitizerOutput = { byCase: new Map(), unattributed: [], toolErrors: [], cases: 0, summary: null, banner: false };
  let caseIndex = 0;
  let run: RunMarker | null = null;
  let cur: SanitizerFinding | null = null;
  // The case that ran the last dispatch, once it has ended: a report that
  // comes after its end marker, before any other dispatch, is still its own.
  let ended: { index: number; run: RunMarker } | null = null;
  // Every dispatch so far, with its case: a report whose .metal file is not
  // the one of the dispatch in flight came late from an earlier kernel.
  const history: { index: number; run: RunMarker }[] = [];
  const flush = (): void => {
    if (!cur) return;
    let owner = run ? { index: caseIndex, run } : ended;
    const file = cur.file;
    if (owner && file && basename(owner.run.file) !== file) {
      const earlier = [...history].reverse().find((h) => basename(h.run.file) === file);
      if (earlier) owner = earlier;
    }
    if (!owner) {
      // Before any case's dispatch (the device self-test, the tool's start-up).
      out.unattributed.push(cur);
    } else {
      const list = out.byCase.get(owner.index) ?? [];
      list.push({ finding: cur, run: owner.run });
      out.byCase.set(owner.index, list);
    }
    cur = null;
  };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.startsWith(`${MARK} `)) {
      flush();
      const rest = line.slice(MARK.length + 1);
      if (rest.startsWith('run ')) {
        try {
          run = JSON.parse(rest.slice(4)) as RunMarker;
          history.push({ index: caseIndex, run });
        } catch {
          run = null;
        }
      } else if (rest.startsWith('case-done')) {
        ended = run ? { index: caseIndex, run } : null;
        caseIndex++;
        out.cases = caseIndex;
        run = null;
      }
      continue;
    }
    if (!PREFIX.test(line) || !line.startsWith('=')) continue;
    const body = line.replace(PREFIX, '');
    const indent = /^\s*/.exec(body)![0].length;
    const t = body.trim();
    if (t === '') continue;
    if (indent === 0) {
      flush();
      if (t === 'COMPUTE-SANITIZER') {
        out.banner = true;
        continue;
      }
      if (/^(ERROR|RACECHECK|LEAK|SYNCCHECK|INITCHECK) SUMMARY:/.test(t)) {
        out.summary = out.summary ? `${out.summary}; ${t}` : t;
        continue;
      }
      if (TOOL_ERROR.test(t)) {
        out.toolErrors.push(t);
        continue;
      }
      if (HEADLINE.test(t)) {
        cur = emptyFinding(withoutLocation(t.replace(/^(Error|ERROR|Warning): /, '')));
        const loc = location(t);
        if (loc.file) Object.assign(cur, loc);
        else if (/\bat\s+__shared__|\bat\s+__global__/.test(t)) cur.address = /(0x[0-9a-f]+)/i.exec(t)?.[1] ?? null;
        const hz = /\[(\d[\d,]*) hazards?\]/.exec(t);
        if (hz) cur.hazards = num(hz[1]!);
        const blk = /in block \((\d+,\d+,\d+)\)/.exec(t);
        if (blk) cur.block = blk[1]!;
      }
      // Other level-one lines ("Program hit cudaError... on CUDA API call", the banner, "Target application
      // returned an error") are the host side of a finding already reported, or chatter.
      continue;
    }
    if (!cur) continue;
    if (/Host Frame|Saved host backtrace|^=+$/.test(t)) continue;
    if (/^and (\w+ )?(Read|Write|access)/i.test(t) || /^(Read|Write) Thread/.test(t)) {
      const loc = location(t);
      if (loc.file) cur.otherLocations.push(`${withoutLocation(t)} at ${loc.file}:${loc.line}`);
      const hz = /\[(\d[\d,]*) hazards?\]/.exec(t);
      if (hz) cur.hazards = num(hz[1]!);
      if (!cur.file && loc.file) Object.assign(cur, loc);
      const th = /Thread \((\d+,\d+,\d+)\)/.exec(t);
      if (th && !cur.thread) cur.thread = th[1]!;
      continue;
    }
    if (/^at\s/.test(t) || /^Device Frame:/.test(t)) {
      const loc = location(t.replace(/^Device Frame:\s*/, 'at '));
      if (!cur.file && loc.file) Object.assign(cur, loc);
      else if (!cur.kernel && loc.kernel) cur.kernel = loc.kernel;
      continue;
    }
    const th = /by thread \((\d+,\d+,\d+)\) in block \((\d+,\d+,\d+)\)/.exec(t);
    if (th) {
      cur.thread = th[1]!;
      cur.block = th[2]!;
      continue;
    }
    const ad = /^Address (0x[0-9a-f]+)/i.exec(t);
    if (ad) {
      cur.address = ad[1]!;
      continue;
    }
    const rel = /and is ([\d,]+) bytes (after|before) the nearest allocation at (0x[0-9a-f]+) of size ([\d,]+) bytes/i.exec(t);
    if (rel) {
      cur.relation = { bytes: num(rel[1]!), side: rel[2]!.toLowerCase() as 'after' | 'before', allocationSize: num(rel[4]!) };
      continue;
    }
    const inside = /and is inside the nearest allocation at (0x[0-9a-f]+) of size ([\d,]+) bytes/i.exec(t);
    if (inside) cur.relation = { bytes: 0, side: 'inside', allocationSize: num(inside[2]!) };
  }
  flush();
  return out;
}

/** The buffer(s) of the dispatch whose size is the allocation's, by name. */
function bufferOf(run: RunMarker | null, size: number): string | null {
  if (!run) return null;
  const hits = run.buffers.filter((b) => b.bytes === size || (b.bytes === 0 && size === 1));
  if (hits.length === 0) return null;
  return hits.map((b) => (b.name ? `buffer(${b.index}) '${b.name}'` : `buffer(${b.index})`)).join(' or ');
}

/** One line for a finding, e.g. "Invalid __global__ write of size 4 bytes at oob_write.metal:13 (in zero_buffer), thread (0,0,0) of block (8,0,0): 0 bytes past the end of buffer(0) 'buffer' (8192 bytes)". */
export function describeFinding(f: SanitizerFinding, run: RunMarker | null): string {
  const parts: string[] = [f.what];
  if (f.file) parts.push(`at ${f.file}:${f.line}`);
  if (f.otherLocations.length > 0) parts.push([...new Set(f.otherLocations)].join(', '));
  if (f.kernel) parts.push(`(in ${f.kernel})`);
  let s = parts.join(' ');
  if (f.thread || f.block) s += `, thread (${f.thread ?? '?'}) of threadgroup (${f.block ?? '?'})`;
  if (f.hazards !== null) s += `, ${f.hazards} hazard${f.hazards === 1 ? '' : 's'}`;
  if (f.relation) {
    const buf = bufferOf(run, f.relation.allocationSize) ?? 'the nearest buffer';
    const size = `${f.relation.allocationSize} bytes`;
    if (f.relation.side === 'after') s += `: ${f.relation.bytes} bytes past the end of ${buf} (${size})`;
    else if (f.relation.side === 'before') s += `: ${f.relation.bytes} bytes before the start of ${buf} (${size})`;
    else s += `: inside ${buf} (${size})`;
  } else if (f.address) {
    s += `: address ${f.address}`;
  }
  return s;
}

/** The text a case fails with: its findings, the same ones (file, line, headline) counted once. */
export function caseMessage(tool: SanitizeTool, findings: { finding: SanitizerFinding; run: RunMarker | null }[]): string {
  const groups = new Map<string, { text: string; count: number }>();
  for (const { finding, run } of findings) {
    const key = `${finding.what.split(' at ')[0]}|${finding.file}:${finding.line}`;
    const g = groups.get(key);
    if (g) g.count++;
    else groups.set(key, { text: describeFinding(finding, run), count: 1 });
  }
  const lines = [...groups.values()].map((g) => (g.count > 1 ? `${g.text} (and ${g.count - 1} more like it)` : g.text));
  const shown = lines.slice(0, 5);
  if (lines.length > 5) shown.push(`(${lines.length - 5} more kinds of report)`);
  return `compute-sanitizer ${tool}: ${shown.join('; ')}`;
}

// ------------------------------------------------------------------ child side

export function sanitizeChildTool(env: NodeJS.ProcessEnv = process.env): SanitizeTool | null {
  const t = env[CHILD_ENV];
  return t && (SANITIZE_TOOLS as readonly string[]).includes(t) ? (t as SanitizeTool) : null;
}

function writeMarker(line: string): void {
  // Synchronous, on the stdout the tool also prints to: the order is kept.
  writeFileSync(1, `${MARK} ${line}\n`);
}

/** (child) Prints the marker that ends a case. */
export function markCaseDone(): void {
  writeMarker('case-done');
}

/** (child) The backend, printing a marker with each dispatch's buffers before running it. */
export function markingBackend(inner: Backend): Backend {
  const mark = (p: Pipeline, buffers: Buffers, names?: (string | null)[]): void => {
    const m: RunMarker = {
      entry: p.entry,
      file: p.file,
      buffers: buffers.flatMap((b, index) => (b ? [{ index, name: names?.[index] ?? null, bytes: b.byteLength }] : [])),
    };
    writeMarker(`run ${JSON.stringify(m)}`);
  };
  return {
    name: inner.name,
    clock: inner.clock,
    device: () => inner.device(),
    compile: (source, file, entry) => inner.compile(source, file, entry),
    run: (p: Pipeline, buffers: Buffers, launch: NativeLaunch, options?: NativeRunOptions) => {
      mark(p, buffers, options?.bufferNames);
      return inner.run(p, buffers, launch, options);
    },
    time: (p: Pipeline, buffers: Buffers, launch: NativeLaunch, options: NativeTimeOptions) => {
      mark(p, buffers, options.bufferNames);
      return inner.time(p, buffers, launch, options);
    },
  };
}

/** (child) Writes the report where the parent reads it. */
export function writeChildReport(report: unknown, env: NodeJS.ProcessEnv = process.env): void {
  const path = env[REPORT_ENV];
  if (path) writeFileSync(path, JSON.stringify(report));
}

// ------------------------------------------------------------------ parent side

/** The flags the child must not get: the tool flag itself and the report outputs (the parent writes those). */
export function childArgv(argv: string[]): string[] {
  const out: string[] = [];
  const dropWithValue = new Set(['--sanitize', '--junit']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (dropWithValue.has(name)) {
      if (eq < 0) i++;
      continue;
    }
    if (name === '--json' || name === '--markdown') continue;
    out.push(a);
  }
  if (!out.some((a) => a === '--backend' || a.startsWith('--backend='))) out.push('--backend', 'cuda');
  // Kernels run many times slower under the tool: unless told otherwise, the
  // watchdog waits longer than its default (at least 10 s, scaled to the work).
  if (!out.some((a) => a === '--timeout' || a.startsWith('--timeout='))) out.push('--timeout', '300s');
  return out;
}

export interface ChildOutcome<R> {
  report: R;
  parsed: ParsedSanitizerOutput;
  code: number | null;
}

/**
 * Runs `moe verify` again under compute-sanitizer and returns the child's
 * report with the tool's output parsed. UsageError (exit 2, one line) when
 * the tool is absent or could not run the child.
 */
export async function runUnderSanitizer<R>(tool: SanitizeTool, argv: string[], opts: { env?: NodeJS.ProcessEnv; script?: string } = {}): Promise<ChildOutcome<R>> {
  const env = opts.env ?? process.env;
  const exe = findComputeSanitizer(env);
  if (!exe) {
    throw new UsageError(
      `--sanitize ${tool}: compute-sanitizer was not found (looked in MOE_COMPUTE_SANITIZER, PATH, $CUDA_HOME/bin, $CUDA_PATH/bin, /usr/local/cuda/bin); install the CUDA toolkit or put it on PATH`,
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'moe-sanitize-'));
  const reportPath = join(dir, 'report.json');
  const script = opts.script ?? process.argv[1] ?? '';
  const args = [...sanitizerArgs(tool), process.execPath, ...process.execArgv, script, 'verify', ...childArgv(argv)];
  try {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      // The child's redzones are off: a guard is memory the tool sees as the
      // buffer's, so an access past the buffer into it would go unreported.
      const child = spawn(exe, args, {
        env: { ...env, [CHILD_ENV]: tool, [REPORT_ENV]: reportPath, MOE_GPU_REDZONES: '0', NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', reject);
      const stop = (): void => {
        child.kill('SIGTERM');
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      child.on('close', (c) => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve({ code: c, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
      });
    }).catch((e: Error) => {
      throw new UsageError(`--sanitize ${tool}: cannot run ${exe}: ${e.message}`);
    });
    const parsed = parseSanitizerOutput(`${stdout}\n${stderr}`);
    if (parsed.toolErrors.length > 0 || (existsSync(reportPath) && !parsed.banner)) {
      // It ran the verification without its checks, or not at all: no verdict of ours can stand for its.
      const why = parsed.toolErrors[0] ?? 'its banner never appeared, so its checks did not run';
      throw new UsageError(`--sanitize ${tool}: compute-sanitizer (${exe}) cannot attach here: ${why}`);
    }
    if (!existsSync(reportPath)) {
      const why =
        parsed.toolErrors[0] ??
        stderr
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l !== '')
          .pop() ??
        `it exited with code ${code}`;
      // The child's own usage errors (exit 2) are the user's: pass its message on.
      throw new UsageError(`--sanitize ${tool}: compute-sanitizer could not run the verification under it: ${why.replace(/^=+\s*/, '')}`);
    }
    const report = JSON.parse(readFileSync(reportPath, 'utf8')) as R;
    return { report, parsed, code };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The case fields applySanitizerFindings reads and writes. */
interface CaseLike {
  status: string;
  error: string | null;
}

/**
 * Puts the findings on the cases (in the child's order): a case the tool
 * reported on becomes an ERROR with the tool's report (its own runtime error,
 * if any, kept after it); findings no case can own are returned.
 */
export function applySanitizerFindings(tool: SanitizeTool, cases: CaseLike[], parsed: ParsedSanitizerOutput): string[] {
  const orphans = parsed.unattributed.map((f) => describeFinding(f, null));
  for (const [i, list] of parsed.byCase) {
    const c = cases[i];
    if (!c) {
      orphans.push(...list.map((x) => describeFinding(x.finding, x.run)));
      continue;
    }
    if (list.length === 0) continue;
    const msg = caseMessage(tool, list);
    const prior = c.status === 'ERROR' && c.error ? ` (the dispatch itself: ${c.error.split('\n')[0]})` : '';
    c.status = 'ERROR';
    c.error = `${msg}${prior}`;
  }
  return orphans;
}
