/**
 * Limits on how deep a Cedar text may nest, checked before cedar-wasm sees
 * it. cedar-wasm parses and evaluates by recursion on a fixed WebAssembly
 * stack: about 140 nested parentheses overflow its parser, a chain of some
 * 400 `+`, `.` or `&&` its evaluator (at the first request, after the file
 * loaded), and a stack overflow inside the module leaves its memory broken,
 * so every later call (the decisions of the policy already in force, every
 * reload) fails with "memory access out of bounds" until the process
 * restarts. A bad file must never cost the last good policy, so such a text
 * is refused here, well below what overflows and far above what a policy
 * writes.
 */

/** Brackets of any kind, `(`, `[` and `{`, open at once: the parser's limit. */
export const MAX_NESTING = 32
/**
 * How deep one policy's expression tree may be, counted as below: the
 * evaluator's limit. A chain of `&&`, `||`, `+`, `-`, `*`, `.` or `if` is a
 * tree as deep as the chain, and about 400 of them break cedar-wasm at the
 * first request, after the file loaded.
 */
export const MAX_DEPTH = 192

export interface NestingProblem {
  /** Character index in the text where the limit was passed. */
  readonly index: number
  readonly message: string
}

const isWordChar = (c: string | undefined): boolean => c !== undefined && /[A-Za-z0-9_]/.test(c)

/** One bracket level: operators since its last comma, the deepest bracket inside them, the deepest item so far. */
interface Level {
  ops: number
  child: number
  best: number
}

const depthOf = (l: Level): number => Math.max(l.best, l.ops + l.child)

/**
 * The first place where a Cedar policy or schema text (or a JSON schema)
 * passes a limit, or undefined. Comments (`//`) and string literals are
 * skipped. The depth of an expression is bounded from above without parsing
 * it: every chain operator of a bracket level (between its commas) counts as
 * one level of the tree, plus the deepest bracket inside, plus one per
 * bracket. Relational operators cannot chain in Cedar and are not counted.
 */
export function nestingProblem(text: string): NestingProblem | undefined {
  const levels: Level[] = [{ ops: 0, child: 0, best: 0 }]
  const tooDeep = (index: number): NestingProblem => ({
    index,
    message: `an expression more than ${MAX_DEPTH} operators deep (&&, ||, +, -, *, ., if and brackets); split the policy, or test a set with .contains()`,
  })
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string
    if (c === '/' && text[i + 1] === '/') {
      const end = text.indexOf('\n', i)
      if (end === -1) break
      i = end
      continue
    }
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++
      continue
    }
    const top = levels[levels.length - 1] as Level
    switch (c) {
      case '(':
      case '[':
      case '{':
        if (levels.length > MAX_NESTING)
          return { index: i, message: `nested more than ${MAX_NESTING} brackets deep` }
        levels.push({ ops: 0, child: 0, best: 0 })
        break
      case ')':
      case ']':
      case '}': {
        if (levels.length === 1) break
        levels.pop()
        const d = depthOf(top) + 1
        if (d > MAX_DEPTH) return tooDeep(i)
        const parent = levels[levels.length - 1] as Level
        parent.child = Math.max(parent.child, d)
        break
      }
      case ',':
      case ';':
        top.best = depthOf(top)
        top.ops = 0
        top.child = 0
        if (c === ';' && levels.length === 1) top.best = 0
        break
      case '&':
      case '|':
        if (text[i + 1] === c) {
          top.ops++
          i++
        }
        break
      case '+':
      case '-':
      case '*':
      case '.':
        top.ops++
        break
      case 'i':
        if (text[i + 1] === 'f' && !isWordChar(text[i - 1]) && !isWordChar(text[i + 2])) top.ops++
        break
    }
    if (top.ops + top.child > MAX_DEPTH) return tooDeep(i)
  }
  return undefined
}
