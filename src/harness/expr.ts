/**
 * Arithmetic expressions of a manifest (`ceil(out_dim / 8)`, `n_rows * hidden`,
 * `params.dim`): parsed by jsep into a syntax tree and evaluated here over a
 * closed set of operators and functions. Nothing is ever handed to eval or
 * Function: names resolve only in the scope given (the spec's params and the
 * values of its scalar and struct buffers).
 */
import jsep from 'jsep';

/** Integer division (truncating toward zero, as MSL's uint/int division): `a // b`. */
jsep.addBinaryOp('//', 10);

export type Scope = Record<string, number | Record<string, number>>;

const FUNCTIONS: Record<string, { arity: [number, number]; f: (...a: number[]) => number }> = {
  ceil: { arity: [1, 1], f: Math.ceil },
  floor: { arity: [1, 1], f: Math.floor },
  round: { arity: [1, 1], f: Math.round },
  abs: { arity: [1, 1], f: Math.abs },
  min: { arity: [1, 16], f: Math.min },
  max: { arity: [1, 16], f: Math.max },
  /** Integer division, like `a // b`. */
  div: { arity: [2, 2], f: (a, b) => Math.trunc(a / b) },
  /** ceil(a / b) for whole numbers: the number of b-sized tiles covering a. */
  ceildiv: { arity: [2, 2], f: (a, b) => Math.ceil(a / b) },
  log2: { arity: [1, 1], f: Math.log2 },
};

export const EXPRESSION_FUNCTIONS = Object.keys(FUNCTIONS);

export class ExprError extends Error {}

export interface Expr {
  text: string;
  /** Names the expression reads (params, or buffer names for `buffer.field`). */
  names: string[];
  evaluate(scope: Scope): number;
}

function binary(op: string, a: number, b: number): number {
  switch (op) {
    case '+': return a + b;
    case '-': return a - b;
    case '*': return a * b;
    case '/': return a / b;
    case '//': return Math.trunc(a / b);
    case '%': return a % b;
    case '==': return a === b ? 1 : 0;
    case '!=': return a !== b ? 1 : 0;
    case '<': return a < b ? 1 : 0;
    case '<=': return a <= b ? 1 : 0;
    case '>': return a > b ? 1 : 0;
    case '>=': return a >= b ? 1 : 0;
    case '&&': return a !== 0 && b !== 0 ? 1 : 0;
    case '||': return a !== 0 || b !== 0 ? 1 : 0;
    default: throw new ExprError(`operator '${op}' is not supported`);
  }
}

type Node = jsep.Expression;

function check(node: Node, names: Set<string>): void {
  switch (node.type) {
    case 'Literal':
      if (typeof node.value !== 'number') throw new ExprError(`only numbers are allowed, not ${JSON.stringify(node.value)}`);
      return;
    case 'Identifier':
      names.add(node.name as string);
      return;
    case 'MemberExpression': {
      const obj = node.object as Node;
      const prop = node.property as Node;
      if (obj.type !== 'Identifier' || prop.type !== 'Identifier' || node.computed) throw new ExprError('only buffer.field references are allowed');
      names.add(obj.name as string);
      return;
    }
    case 'UnaryExpression':
      if (node.operator !== '-' && node.operator !== '+' && node.operator !== '!') throw new ExprError(`operator '${String(node.operator)}' is not supported`);
      check(node.argument as Node, names);
      return;
    case 'BinaryExpression':
      binary(node.operator as string, 1, 1);
      check(node.left as Node, names);
      check(node.right as Node, names);
      return;
    case 'ConditionalExpression':
      check(node.test as Node, names);
      check(node.consequent as Node, names);
      check(node.alternate as Node, names);
      return;
    case 'CallExpression': {
      const callee = node.callee as Node;
      const fn = callee.type === 'Identifier' ? FUNCTIONS[callee.name as string] : undefined;
      if (!fn || !Object.hasOwn(FUNCTIONS, callee.name as string)) {
        throw new ExprError(`unknown function${callee.type === 'Identifier' ? ` '${String(callee.name)}'` : ''} (known: ${EXPRESSION_FUNCTIONS.join(', ')})`);
      }
      const args = node.arguments as Node[];
      if (args.length < fn.arity[0] || args.length > fn.arity[1]) throw new ExprError(`${String(callee.name)}() takes ${fn.arity[0] === fn.arity[1] ? fn.arity[0] : `${fn.arity[0]} to ${fn.arity[1]}`} argument(s), got ${args.length}`);
      for (const a of args) check(a, names);
      return;
    }
    default:
      throw new ExprError(`${node.type} is not allowed in an expression`);
  }
}

function evaluate(node: Node, scope: Scope, text: string): number {
  switch (node.type) {
    case 'Literal':
      return node.value as number;
    case 'Identifier': {
      const name = node.name as string;
      const v = Object.hasOwn(scope, name) ? scope[name] : undefined;
      if (typeof v !== 'number') throw new ExprError(`'${text}': unknown name '${name}' (known: ${Object.keys(scope).filter((k) => typeof scope[k] === 'number').join(', ')})`);
      return v;
    }
    case 'MemberExpression': {
      const obj = (node.object as Node).name as string;
      const field = (node.property as Node).name as string;
      const s = Object.hasOwn(scope, obj) ? scope[obj] : undefined;
      if (typeof s !== 'object') throw new ExprError(`'${text}': '${obj}' is not a struct buffer of the spec`);
      const v = Object.hasOwn(s, field) ? s[field] : undefined;
      if (typeof v !== 'number') throw new ExprError(`'${text}': ${obj} has no field '${field}' (fields: ${Object.keys(s).join(', ')})`);
      return v;
    }
    case 'UnaryExpression': {
      const a = evaluate(node.argument as Node, scope, text);
      return node.operator === '-' ? -a : node.operator === '!' ? (a === 0 ? 1 : 0) : a;
    }
    case 'BinaryExpression':
      return binary(node.operator as string, evaluate(node.left as Node, scope, text), evaluate(node.right as Node, scope, text));
    case 'ConditionalExpression':
      return evaluate(node.test as Node, scope, text) !== 0 ? evaluate(node.consequent as Node, scope, text) : evaluate(node.alternate as Node, scope, text);
    case 'CallExpression': {
      const fn = FUNCTIONS[(node.callee as Node).name as string] as (typeof FUNCTIONS)[string];
      return fn.f(...(node.arguments as Node[]).map((a) => evaluate(a, scope, text)));
    }
    default:
      throw new ExprError(`'${text}': ${node.type} is not allowed`);
  }
}

/** Parse an expression (a number is an expression too); ExprError says what is wrong. */
export function parseExpr(src: string | number): Expr {
  const text = String(src);
  let tree: Node;
  try {
    tree = jsep(text);
  } catch (e) {
    throw new ExprError(`'${text}' does not parse: ${(e as Error).message}`);
  }
  const names = new Set<string>();
  try {
    check(tree, names);
  } catch (e) {
    throw new ExprError(`'${text}': ${(e as Error).message}`);
  }
  return {
    text,
    names: [...names],
    evaluate(scope: Scope): number {
      const v = evaluate(tree, scope, text);
      if (!Number.isFinite(v)) throw new ExprError(`'${text}' evaluates to ${v}`);
      return v;
    },
  };
}
