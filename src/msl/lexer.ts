/**
 * MSL lexer. Tokens carry their source offsets, so the emitters rewrite the
 * original text in place (comments and spacing kept). Comments and whitespace
 * make no tokens; a preprocessor line is one `pp` token, kept verbatim (its
 * body can be lexed again with lexDirectiveBody for macro rewriting).
 */
import { MslError } from './errors.js';

export type TokenKind = 'ident' | 'number' | 'string' | 'char' | 'punct';

export interface Token {
  kind: TokenKind;
  text: string;
  /** Offsets in the source: [start, end). */
  start: number;
  end: number;
  /** 1-based. */
  line: number;
  col: number;
  /** Set on number tokens: a `half` literal (1.0h), without its suffix ("1.0"). */
  half?: string;
  /** An unsuffixed floating literal: float in MSL (there is no double), so emitters add an f. */
  float?: string;
}

export interface PpLine {
  text: string;
  start: number;
  end: number;
  line: number;
  col: number;
  /** "include", "define", "pragma", ... ("" for a null directive). */
  directive: string;
  /** Offset, line and column just after the directive name. */
  bodyStart: number;
  bodyLine: number;
  bodyCol: number;
}

export interface Lexed {
  tokens: Token[];
  pp: PpLine[];
}

const PUNCT3 = new Set(['<<=', '>>=', '...', '->*']);
const PUNCT2 = new Set([
  '::', '->', '++', '--', '<<', '>>', '<=', '>=', '==', '!=', '&&', '||',
  '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '##', '.*',
]);
const PUNCT1 = '{}()[];,.<>=+-*/%&|^!~?:#';

const INT_LIT = /^(?:0[xX][0-9a-fA-F]+(?:'[0-9a-fA-F]+)*|0[bB][01]+(?:'[01]+)*|\d+(?:'\d+)*)(?:[uU](?:ll|LL|l|L)?|(?:ll|LL|l|L)[uU]?)?$/;
const DEC_FLOAT = /^((?:\d+(?:'\d+)*)?\.\d+(?:'\d+)*(?:[eE][+-]?\d+)?|\d+(?:'\d+)*\.(?:[eE][+-]?\d+)?|\d+(?:'\d+)*[eE][+-]?\d+)([fFhHlL]?)$/;
const HEX_FLOAT = /^0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+[fFhHlL]?$/;

const isIdStart = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_';
const isIdChar = (c: string): boolean => isIdStart(c) || (c >= '0' && c <= '9');
const isDigit = (c: string): boolean => c >= '0' && c <= '9';

class Lexer {
  pos: number;
  line: number;
  col: number;
  readonly tokens: Token[] = [];
  readonly pp: PpLine[] = [];

  constructor(
    readonly src: string,
    readonly file: string,
    start: number,
    readonly end: number,
    line: number,
    col: number,
    /** Lexing the body of a directive: `\`-newline is blank, no nested directives. */
    readonly directiveBody: boolean,
  ) {
    this.pos = start;
    this.line = line;
    this.col = col;
  }

  fail(msg: string, line = this.line, col = this.col): never {
    throw new MslError(this.file, line, col, msg);
  }

  ch(k = 0): string {
    const p = this.pos + k;
    return p < this.end ? this.src[p] : '';
  }

  advance(n: number): void {
    for (let k = 0; k < n && this.pos < this.end; k++) {
      if (this.src[this.pos] === '\n') {
        this.line++;
        this.col = 1;
      } else this.col++;
      this.pos++;
    }
  }

  /** Skips whitespace and comments; returns true when a newline was crossed. */
  skipBlank(): boolean {
    let newline = false;
    while (this.pos < this.end) {
      const c = this.ch();
      if (c === '\n') {
        newline = true;
        this.advance(1);
      } else if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') {
        this.advance(1);
      } else if (c === '\\' && (this.ch(1) === '\n' || (this.ch(1) === '\r' && this.ch(2) === '\n'))) {
        // a line splice (outside directives too)
        this.advance(this.ch(1) === '\r' ? 3 : 2);
      } else if (c === '/' && this.ch(1) === '/') {
        while (this.pos < this.end && this.ch() !== '\n') this.advance(1);
      } else if (c === '/' && this.ch(1) === '*') {
        const line = this.line;
        const col = this.col;
        const close = this.src.indexOf('*/', this.pos + 2);
        if (close < 0 || close + 2 > this.end) this.fail('unterminated /* comment', line, col);
        this.advance(close + 2 - this.pos);
      } else break;
    }
    return newline;
  }

  run(): void {
    let atLineStart = !this.directiveBody;
    // A directive must be the first thing on its line.
    if (atLineStart && this.pos > 0 && this.src[this.pos - 1] !== '\n') atLineStart = false;
    while (this.pos < this.end) {
      if (this.skipBlank()) atLineStart = !this.directiveBody;
      if (this.pos >= this.end) break;
      const c = this.ch();
      if (c === '#' && atLineStart) {
        this.directive();
        atLineStart = true;
        continue;
      }
      atLineStart = false;
      this.token();
    }
  }

  push(kind: TokenKind, len: number): Token {
    const t: Token = { kind, text: this.src.slice(this.pos, this.pos + len), start: this.pos, end: this.pos + len, line: this.line, col: this.col };
    this.advance(len);
    this.tokens.push(t);
    return t;
  }

  token(): void {
    const c = this.ch();
    if (isIdStart(c)) {
      let j = this.pos + 1;
      while (j < this.end && isIdChar(this.src[j])) j++;
      // u8"..", L'..' and friends: the prefix belongs to the literal
      const next = j < this.end ? this.src[j] : '';
      if ((next === '"' || next === "'") && /^(u8|u|U|L)$/.test(this.src.slice(this.pos, j))) {
        this.quoted(next, j - this.pos);
        return;
      }
      this.push('ident', j - this.pos);
      return;
    }
    if (isDigit(c) || (c === '.' && isDigit(this.ch(1)))) {
      this.number();
      return;
    }
    if (c === '"' || c === "'") {
      this.quoted(c, 0);
      return;
    }
    const three = this.src.slice(this.pos, Math.min(this.pos + 3, this.end));
    if (PUNCT3.has(three)) {
      this.push('punct', 3);
      return;
    }
    if (PUNCT2.has(three.slice(0, 2))) {
      this.push('punct', 2);
      return;
    }
    if (PUNCT1.includes(c)) {
      this.push('punct', 1);
      return;
    }
    if (c === '\\') this.fail("stray '\\' in program");
    this.fail(`unexpected character '${c}'`);
  }

  number(): void {
    let j = this.pos;
    while (j < this.end) {
      const d = this.src[j];
      if ((d === 'e' || d === 'E' || d === 'p' || d === 'P') && (this.src[j + 1] === '+' || this.src[j + 1] === '-')) {
        // an exponent sign, except inside a hex integer (0x1e+2 is 0x1e + 2)
        const sofar = this.src.slice(this.pos, j);
        const hex = /^0[xX]/.test(sofar);
        if (!hex || d === 'p' || d === 'P') {
          j += 2;
          continue;
        }
      }
      if (isIdChar(d) || d === '.' || (d === "'" && isIdChar(this.src[j + 1] ?? ''))) j++;
      else break;
    }
    const text = this.src.slice(this.pos, j);
    const t = this.push('number', j - this.pos);
    if (INT_LIT.test(text) || HEX_FLOAT.test(text)) return;
    const m = DEC_FLOAT.exec(text);
    if (!m) this.fail(`invalid numeric literal '${text}'`, t.line, t.col);
    if (m[2] === 'h' || m[2] === 'H') t.half = m[1];
    else if (m[2] === '') t.float = m[1];
  }

  quoted(q: string, prefix: number): void {
    const line = this.line;
    const col = this.col;
    let j = this.pos + prefix + 1;
    for (;;) {
      if (j >= this.end || this.src[j] === '\n') this.fail(`unterminated ${q === '"' ? 'string' : 'character'} literal`, line, col);
      if (this.src[j] === '\\') j += 2;
      else if (this.src[j] === q) break;
      else j++;
    }
    this.push(q === '"' ? 'string' : 'char', j + 1 - this.pos);
  }

  directive(): void {
    const start = this.pos;
    const line = this.line;
    const col = this.col;
    // to the end of the line, across `\`-newlines and block comments
    let j = this.pos;
    while (j < this.end) {
      const c = this.src[j];
      if (c === '\n') {
        if (this.src[j - 1] === '\\' || (this.src[j - 1] === '\r' && this.src[j - 2] === '\\')) {
          j++;
          continue;
        }
        break;
      }
      if (c === '/' && this.src[j + 1] === '*') {
        const close = this.src.indexOf('*/', j + 2);
        if (close < 0) this.fail('unterminated /* comment', this.lineAt(start, j), 1);
        j = close + 2;
        continue;
      }
      if (c === '/' && this.src[j + 1] === '/') {
        while (j < this.end && this.src[j] !== '\n') j++;
        break;
      }
      if (c === '"' || c === "'") {
        let k = j + 1;
        while (k < this.end && this.src[k] !== c && this.src[k] !== '\n') k += this.src[k] === '\\' ? 2 : 1;
        j = Math.min(k + 1, this.end);
        continue;
      }
      j++;
    }
    // directive name
    let k = start + 1;
    while (k < j && (this.src[k] === ' ' || this.src[k] === '\t')) k++;
    let e = k;
    while (e < j && isIdChar(this.src[e])) e++;
    const directive = this.src.slice(k, e);
    const bodyCol = col + (e - start);
    this.pp.push({ text: this.src.slice(start, j), start, end: j, line, col, directive, bodyStart: e, bodyLine: line, bodyCol });
    this.advance(j - this.pos);
  }

  lineAt(from: number, to: number): number {
    let l = this.line;
    for (let p = from; p < to; p++) if (this.src[p] === '\n') l++;
    return l;
  }
}

/** Lexes a whole source file. Throws MslError on malformed input. */
export function lex(source: string, file: string): Lexed {
  const lx = new Lexer(source, file, 0, source.length, 1, 1, false);
  lx.run();
  return { tokens: lx.tokens, pp: lx.pp };
}

/** The tokens of a directive's body (after `#define`, `#if` ...), with positions in the file. */
export function lexDirectiveBody(source: string, file: string, pp: PpLine): Token[] {
  const lx = new Lexer(source, file, pp.bodyStart, pp.end, pp.bodyLine, pp.bodyCol, true);
  lx.run();
  return lx.tokens;
}
