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

/**
 * One bracket level, between its commas. Cedar's binary operators are left-associative, so a run of one
 * precedence is a tree as deep as the run; a lower-precedence operator starts new runs of the higher ones.
 * Precedence, low to high: `||`, `&&`, relations (`==`, `<`, `in`, `has`, `like`, `is`, which do not chain),
 * `+`/`-`, `*`, member access (`.`). Conditionals (`if`) count each.
 */
interface Level {
  or: number
  and: number
  andMax: number
  add: number
  addMax: number
  mul: number
  mulMax: number
  dot: number
  dotMax: number
  ifs: number
  /** The deepest bracket inside this item. */
  child: number
  /** The deepest item of this level so far (items are separated by commas). */
  best: number
}

const level = (): Level => ({
  or: 0,
  and: 0,
  andMax: 0,
  add: 0,
  addMax: 0,
  mul: 0,
  mulMax: 0,
  dot: 0,
  dotMax: 0,
  ifs: 0,
  child: 0,
  best: 0,
})

/** An upper bound on the depth of the current item's tree (without the brackets around it). */
const itemDepth = (l: Level): number => l.or + l.andMax + l.addMax + l.mulMax + l.dotMax + l.ifs + l.child + 1
const depthOf = (l: Level): number => Math.max(l.best, itemDepth(l))

/**
 * Ends the runs of the operators that bind tighter than one of precedence `rank`: 0 `||` (and then/else),
 * 1 `&&`, 2 a relation, 3 `+`/`-`, 4 `*`.
 */
function endRuns(l: Level, rank: number): void {
  if (rank < 1) l.and = 0
  if (rank < 3) l.add = 0
  if (rank < 4) l.mul = 0
  l.dot = 0
}

const RELATION_WORDS = new Set(['in', 'has', 'like', 'is'])

/**
 * The first place where a Cedar policy or schema text (or a JSON schema)
 * passes a limit, or undefined. Comments (`//`) and string literals are
 * skipped. The depth of an expression is bounded from above without parsing
 * it (Level says how), plus one per bracket.
 */
export function nestingProblem(text: string): NestingProblem | undefined {
  const levels: Level[] = [level()]
  const tooDeep = (index: number): NestingProblem => ({
    index,
    message: `an expression more than ${MAX_DEPTH} operators deep (a chain of &&, ||, +, -, *, . or if, and brackets); split the policy, or test a set with .contains()`,
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
    if (/[A-Za-z_]/.test(c) && !isWordChar(text[i - 1])) {
      let end = i + 1
      while (isWordChar(text[end])) end++
      const word = text.slice(i, end)
      if (word === 'if') top.ifs++
      else if (RELATION_WORDS.has(word)) endRuns(top, 2)
      else if (word === 'then' || word === 'else' || word === 'when' || word === 'unless') endRuns(top, 0)
      i = end - 1
    } else
      switch (c) {
        case '(':
        case '[':
        case '{':
          if (levels.length > MAX_NESTING)
            return { index: i, message: `nested more than ${MAX_NESTING} brackets deep` }
          levels.push(level())
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
        case ';': {
          const best = depthOf(top)
          Object.assign(top, level())
          if (c === ',' || levels.length > 1) top.best = best
          break
        }
        case '|':
        case '&':
          if (text[i + 1] === c) {
            i++
            if (c === '|') {
              top.or++
              endRuns(top, 0)
            } else {
              top.andMax = Math.max(top.andMax, ++top.and)
              endRuns(top, 1)
            }
          }
          break
        case '=':
        case '!':
        case '<':
        case '>':
          endRuns(top, 2)
          break
        case '+':
        case '-':
          top.addMax = Math.max(top.addMax, ++top.add)
          endRuns(top, 3)
          break
        case '*':
          top.mulMax = Math.max(top.mulMax, ++top.mul)
          endRuns(top, 4)
          break
        case '.':
          top.dotMax = Math.max(top.dotMax, ++top.dot)
          break
      }
    if (itemDepth(top) > MAX_DEPTH) return tooDeep(i)
  }
  return undefined
}
