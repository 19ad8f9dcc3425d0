export { lex, type Token } from './lexer.js';
export { parseMsl, MslError, BUILTINS, type AddressSpace, type MslParam, type MslKernel, type MslStruct, type ParsedMsl } from './parser.js';
export { emitCpp, rewriteSource, type EmitResult } from './emit.js';
