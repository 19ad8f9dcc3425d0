// npm run test:mac-build: does the addon build on a Mac? Checked on Linux.
//  1. Generate binding.gyp's macOS build (node-gyp configure, OS=mac, gyp's
//     make generator in its mac flavour) and compile every C/C++ source of
//     every target with clang++ -fsyntax-only, with exactly the include
//     directories and defines of that generated build.
//  2. Compile every .mm with clang++ -fsyntax-only -x objective-c++
//     -fobjc-arc against GNUstep's Foundation headers and the Metal
//     declarations of native/test/mac/Metal/Metal.h.
//  3. Check every Objective-C selector the .mm sends and every Metal name it
//     uses (and every name Metal.h declares) against Apple's names
//     (native/test/mac/apple-metal-names.txt, from Apple's metal-cpp).
// Needs clang++ and GNUstep's headers (Debian: clang libgnustep-base-dev).
// Without them it prints one line and passes, unless MOE_REQUIRE_MAC_BUILD=1.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, copyFileSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const macTest = join(root, 'native', 'test', 'mac');
const gnustepHeaders = '/usr/include/GNUstep';

function have(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

const missing: string[] = [];
if (!have('clang++', ['--version'])) missing.push('clang++');
// GCC's Objective-C runtime headers, which Debian's GNUstep is built on.
if (!have('gcc', ['--version'])) missing.push('gcc');
if (!existsSync(join(gnustepHeaders, 'Foundation', 'Foundation.h'))) missing.push('GNUstep Foundation headers');
if (missing.length > 0) {
  const line = `test:mac-build skipped: ${missing.join(' and ')} not found (apt-get install clang gcc libgnustep-base-dev; MOE_REQUIRE_MAC_BUILD=1 makes this an error)`;
  if (process.env.MOE_REQUIRE_MAC_BUILD === '1') {
    console.error(line.replace('skipped', 'cannot run'));
    process.exit(1);
  }
  console.log(line);
  process.exit(0);
}

const failures: string[] = [];

// ---- 1. the generated macOS build ---------------------------------------
function nodeGyp(): string {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const c of candidates) if (c !== undefined && c !== '' && existsSync(c)) return c;
  throw new Error('node-gyp not found (run through npm, which provides it)');
}

const work = mkdtempSync(join(tmpdir(), 'moe-mac-build-'));
type Target = { name: string; vars: Map<string, string[]>; sources: string[] };
const targets: Target[] = [];
try {
  copyFileSync(join(root, 'binding.gyp'), join(work, 'binding.gyp'));
  copyFileSync(join(root, 'package.json'), join(work, 'package.json'));
  symlinkSync(join(root, 'native'), join(work, 'native'));
  symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'));
  // gyp's mac flavour asks xcodebuild for a version; nothing else of Xcode is used.
  const bin = join(work, 'fakebin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'xcodebuild'), '#!/bin/sh\necho "Xcode 15.0"\necho "Build version 15A240d"\n');
  chmodSync(join(bin, 'xcodebuild'), 0o755);
  // Node's headers: npm's nodedir, else those of the running Node where it
  // ships them (a system install), else node-gyp's own cache.
  const prefix = resolve(dirname(process.execPath), '..');
  const nodedir = process.env.npm_config_nodedir ?? (existsSync(join(prefix, 'include', 'node', 'common.gypi')) ? prefix : undefined);
  const gypArgs = [nodeGyp(), 'configure', ...(nodedir !== undefined ? [`--nodedir=${nodedir}`] : []), '--', '-DOS=mac', '-f', 'make-mac'];
  const gyp = spawnSync(process.execPath, gypArgs, {
    cwd: work,
    encoding: 'utf8',
    env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
  });
  if (gyp.status !== 0) {
    console.error(`${gyp.stdout}${gyp.stderr}`);
    throw new Error('node-gyp could not generate the macOS build of binding.gyp');
  }
  const buildDir = join(work, 'build');
  for (const mk of readdirSync(buildDir).filter((f) => f.endsWith('.target.mk'))) {
    const text = readFileSync(join(buildDir, mk), 'utf8').replace(/\\\n/g, ' ');
    const vars = new Map<string, string[]>();
    for (const m of text.matchAll(/^(\w+) := (.*)$/gm)) {
      const words = m[2]!.trim().split(/\s+/).filter((w) => w !== '').map((w) => w.replace(/^'(.*)'$/, '$1'));
      vars.set(m[1]!, words.map((w) => w.replace(/\$\(srcdir\)/g, work)));
    }
    const sources: string[] = [];
    for (const o of vars.get('OBJS') ?? []) {
      const rel = o.replace(/^\$\(obj\)\.target\/\$\(TARGET\)\//, '').replace(/\.o$/, '');
      const src = ['.cc', '.cpp', '.c', '.mm', '.m'].map((e) => rel + e).find((p) => existsSync(join(work, p)));
      if (src === undefined) failures.push(`${mk}: no source found for ${o}`);
      else sources.push(src);
    }
    targets.push({ name: vars.get('TARGET')?.[0] ?? mk, vars, sources });
  }
} catch (e) {
  rmSync(work, { recursive: true, force: true });
  throw e;
}

function clang(args: string[], label: string): boolean {
  const r = spawnSync('clang++', args, { cwd: work, encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`.trim();
  if (r.status !== 0 || /warning:/.test(out)) {
    failures.push(`${label}:\n${out.split('\n').slice(0, 40).join('\n')}`);
    return false;
  }
  return true;
}

// Flags of the generated build that only Apple's clang driver takes.
const appleOnly = (w: string): boolean => /^-(mmacosx-version-min|arch|stdlib)=?/.test(w) || w === 'x86_64' || w === 'arm64';
const gnustepRoot = join(macTest, 'shim');
const gccInclude = execFileSync('gcc', ['-print-file-name=include'], { encoding: 'utf8' }).trim();
let compiled = 0;
const mmFiles: string[] = [];
for (const t of targets) {
  const v = (k: string): string[] => (t.vars.get(k) ?? []).filter((w) => !appleOnly(w));
  const base = [...v('DEFS_Release'), ...v('INCS_Release')];
  for (const src of t.sources) {
    const file = join(work, src);
    if (src.endsWith('.mm') || src.endsWith('.m')) {
      mmFiles.push(src);
      // ---- 2. Objective-C++ against GNUstep + the Metal declarations -----
      const ok = clang([
        '-fsyntax-only', '-x', 'objective-c++', '-fobjc-arc', '-fblocks', '-fobjc-runtime=gnustep-2.0',
        ...base, ...v('CFLAGS_CC_Release').filter((w) => w !== '-fno-rtti'), ...v('CFLAGS_OBJCC_Release'),
        '-Wall', '-Wextra', '-Wno-nullability-completeness',
        '-DGNUSTEP', '-DGNUSTEP_BASE_LIBRARY=1', '-DGNU_RUNTIME=1', '-D__MAC_OS_X_VERSION_MAX_ALLOWED=150000',
        '-I', gnustepRoot, '-isystem', gnustepHeaders, '-idirafter', gccInclude,
        '-include', join(macTest, 'foundation_extras.h'), '-I', macTest,
        file,
      ], `${t.name}: ${src} (Objective-C++, GNUstep Foundation + native/test/mac/Metal/Metal.h)`);
      if (ok) compiled++;
    } else {
      const lang = src.endsWith('.c') ? ['-x', 'c', ...v('CFLAGS_C_Release')] : ['-x', 'c++', ...v('CFLAGS_CC_Release')];
      const ok = clang(['-fsyntax-only', ...base, ...v('CFLAGS_Release'), ...lang, file],
        `${t.name}: ${src} (the macOS build's includes and defines)`);
      if (ok) compiled++;
    }
  }
}

// ---- 3. every Metal name against Apple's -----------------------------------
const apple = { selector: new Set<string>(), type: new Set<string>(), constant: new Set<string>(), function: new Set<string>() };
for (const line of readFileSync(join(macTest, 'apple-metal-names.txt'), 'utf8').split('\n')) {
  const m = /^(selector|type|constant|function) (\S+)$/.exec(line);
  if (m) apple[m[1] as keyof typeof apple].add(m[2]!);
}
const appleName = (n: string): boolean => apple.type.has(n) || apple.constant.has(n) || apple.function.has(n);
const stripCode = (s: string): string =>
  s.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/.*$/gm, ' ').replace(/@?"(?:[^"\\\n]|\\.)*"/g, '""');

// Selectors of message sends `[receiver part: arg part: arg]` / `[receiver name]`.
function sentSelectors(code: string): string[] {
  const out: string[] = [];
  const stack: number[] = [];
  for (let i = 0; i < code.length; i++) {
    if (code[i] === '[') stack.push(i);
    else if (code[i] === ']' && stack.length > 0) {
      const start = stack.pop()!;
      const inner = code.slice(start + 1, i);
      // Blank nested brackets/parens so only this level's keywords remain.
      let flat = '';
      let depth = 0;
      for (const ch of inner) {
        if (ch === '[' || ch === '(' || ch === '{') depth++;
        if (depth === 0) flat += ch;
        else flat += ' ';
        if (ch === ']' || ch === ')' || ch === '}') depth--;
      }
      const keywords = [...flat.matchAll(/(?:^|[\s\]])([A-Za-z_]\w*)\s*:(?!:)/g)].map((m) => m[1]!);
      if (keywords.length > 0 && !/\?/.test(flat)) out.push(keywords.map((k) => `${k}:`).join(''));
      else {
        const unary = /^\s*(?:[\w.]+|\s+)\s+([A-Za-z_]\w*)\s*$/.exec(flat);
        if (unary && /^\s*[A-Za-z_]/.test(flat)) out.push(unary[1]!);
      }
    }
  }
  return out;
}

// Properties read or written with dot syntax on an Objective-C object: the
// receiver's static type comes from clang, so take them from Metal.h
// declarations used by the .mm: a `.name` that Metal.h declares as a
// property is a Metal property access (getter, or setX: when assigned).
const metalH = stripCode(readFileSync(join(macTest, 'Metal', 'Metal.h'), 'utf8'));
const declaredProps = new Set([...metalH.matchAll(/@property\s*(?:\([^)]*\))?[^;]*?\b(\w+)\s*(?:MOE_MTL_AVAILABLE\([^)]*\)\)?\s*)?;/g)].map((m) => m[1]!));
const declaredSelectors = new Set<string>();
for (const m of metalH.matchAll(/^[-+]\s*\([^;]*?;/gm)) {
  const decl = m[0].replace(/\([^()]*(?:\([^()]*\)[^()]*)*\)/g, ' ');
  const parts = [...decl.matchAll(/([A-Za-z_]\w*)\s*:/g)].map((p) => `${p[1]!}:`);
  declaredSelectors.add(parts.length > 0 ? parts.join('') : (/[-+]\s*(\w+)/.exec(decl)?.[1] ?? ''));
}

function setter(p: string): string {
  return `set${p[0]!.toUpperCase()}${p.slice(1)}:`;
}
let checked = 0;
const unknown = (what: string, where: string): void => {
  failures.push(`${where}: ${what} is not in Apple's Metal API (native/test/mac/apple-metal-names.txt)`);
};
// Metal.h itself: everything it declares must be Apple's.
for (const s of declaredSelectors) { checked++; if (!apple.selector.has(s)) unknown(`selector '${s}'`, 'native/test/mac/Metal/Metal.h'); }
for (const p of declaredProps) { checked++; if (!apple.selector.has(p)) unknown(`property '${p}'`, 'native/test/mac/Metal/Metal.h'); }
for (const m of metalH.matchAll(/\bMTL\w+\b/g)) { checked++; if (!appleName(m[0])) unknown(`'${m[0]}'`, 'native/test/mac/Metal/Metal.h'); }

for (const mm of mmFiles) {
  const code = stripCode(readFileSync(join(work, mm), 'utf8'));
  for (const sel of new Set(sentSelectors(code))) {
    if (!declaredSelectors.has(sel)) continue; // Foundation's (GNUstep checked it in step 2)
    checked++;
    if (!apple.selector.has(sel)) unknown(`selector '${sel}'`, mm);
  }
  for (const m of code.matchAll(/(?<![-\w>])\b(?:[A-Za-z_]\w*(?:\[[^\]]*\])?)\.([A-Za-z_]\w*)\b(\s*=(?!=))?/g)) {
    const prop = m[1]!;
    if (!declaredProps.has(prop)) continue;
    const sel = m[2] !== undefined ? setter(prop) : prop;
    checked++;
    if (!apple.selector.has(sel)) unknown(`property ${m[2] !== undefined ? 'setter' : 'getter'} '${sel}'`, mm);
  }
  for (const m of new Set([...code.matchAll(/\bMTL\w+\b/g)].map((x) => x[0]))) {
    checked++;
    if (!appleName(m)) unknown(`'${m}'`, mm);
  }
}
rmSync(work, { recursive: true, force: true });

if (failures.length > 0) {
  console.error(`test:mac-build FAILED (${failures.length}):\n\n${failures.join('\n\n')}`);
  process.exit(1);
}
console.log(`test:mac-build ok: ${compiled} sources of ${targets.length} macOS target(s) compiled (${mmFiles.length} Objective-C++), ${checked} Metal names checked against Apple's`);
