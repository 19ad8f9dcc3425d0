/** Lossless MSL lexer: every character of the source belongs to exactly one token. */

export type TokenKind = 'ident' | 'number' | 'string' | 'char' | 'punct' | 'pp' | 'ws' | 'comment';

export interface Token {
  kind: TokenKind;
  text: string;
  line: number;
  column: number;
}

const PUNCT3 = ['<<=', '>>=', '...', '->*'];
const PUNCT2 = ['::', '->', '++', '--', '<<', '>>', '<=', '>=', '==', '!=', '&&', '||', '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^='];

export class LexError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(message);
  }
}

export function lex(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let line = 1;
  let col = 1;
  let atLineStart = true;
  const push = (kind: TokenKind, text: string): void => {
    out.push({ kind, text, line, column: col });
    for (const ch of text) {
      if (ch === '\n') {
        line++;
        col = 1;
      } else col++;
    }
    i += text.length;
  };
  while (i < src.length) {
    const c = src[i] as string;
    const rest = (n: number): string => src.slice(i, i + n);
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n' || c === '\f' || c === '\v') {
      let j = i;
      while (j < src.length && /[ \t\r\n\f\v]/.test(src[j] as string)) j++;
      const text = src.slice(i, j);
      if (text.includes('\n')) atLineStart = true;
      push('ws', text);
      continue;
    }
    if (rest(2) === '//') {
      let j = src.indexOf('\n', i);
      if (j < 0) j = src.length;
      push('comment', src.slice(i, j));
      continue;
    }
    if (rest(2) === '/*') {
      const j = src.indexOf('*/', i + 2);
      if (j < 0) throw new LexError('unterminated /* comment', line, col);
      push('comment', src.slice(i, j + 2));
      continue;
    }
    if (c === '#' && atLineStart) {
      // a preprocessor line, with backslash continuations
      let j = i;
      for (;;) {
        let k = src.indexOf('\n', j);
        if (k < 0) k = src.length;
        if (src[k - 1] === '\\' && k < src.length) {
          j = k + 1;
          continue;
        }
        j = k;
        break;
      }
      push('pp', src.slice(i, j));
      continue;
    }
    atLineStart = false;
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < src.length && /[A-Za-z0-9_]/.test(src[j] as string)) j++;
      push('ident', src.slice(i, j));
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      let j = i;
      if (/^0[xX]/.test(rest(2))) {
        j += 2;
        while (j < src.length && /[0-9A-Fa-f']/.test(src[j] as string)) j++;
      } else {
        while (j < src.length && /[0-9.']/.test(src[j] as string)) j++;
        if (/[eE]/.test(src[j] ?? '')) {
          j++;
          if (/[+-]/.test(src[j] ?? '')) j++;
          while (j < src.length && /[0-9]/.test(src[j] as string)) j++;
        }
      }
      while (j < src.length && /[A-Za-z_]/.test(src[j] as string)) j++; // suffixes: u, f, h, ul...
      push('number', src.slice(i, j));
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\') j++;
        if (src[j] === '\n') throw new LexError(`unterminated ${c === '"' ? 'string' : 'character'} literal`, line, col);
        j++;
      }
      if (j >= src.length) throw new LexError(`unterminated ${c === '"' ? 'string' : 'character'} literal`, line, col);
      push(c === '"' ? 'string' : 'char', src.slice(i, j + 1));
      continue;
    }
    const p3 = PUNCT3.find((p) => rest(3) === p);
    if (p3) {
      push('punct', p3);
      continue;
    }
    const p2 = PUNCT2.find((p) => rest(2) === p);
    if (p2) {
      push('punct', p2);
      continue;
    }
    if (/[{}()[\];,.<>=+\-*/%&|^!~?:#@\\]/.test(c)) {
      push('punct', c);
      continue;
    }
    throw new LexError(`unexpected character '${c}'`, line, col);
  }
  return out;
}
