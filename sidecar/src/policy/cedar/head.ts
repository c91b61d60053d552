/**
 * Reads the head of one Cedar policy that Cedar has already parsed: its
 * annotations, its effect, and the entities of `principal == ...` and
 * `action == ...` scope constraints. cedar-wasm can tell the same with
 * `policyToJson`, but each call costs about a quarter of a millisecond,
 * which for 10,000 policies is seconds of a blocked event loop. Anything
 * this reader does not recognise makes it give up (undefined), and the
 * caller asks Cedar instead; a test checks both agree.
 */

export interface PolicyHead {
  /** A value-less annotation (`@flag`) is null, as Cedar reports it. */
  readonly annotations: Readonly<Record<string, string | null>>
  readonly effect: 'permit' | 'forbid'
  /** `Type::"id"` text, as load.ts's entityKey writes it; undefined for any other constraint. */
  readonly principal: string | undefined
  readonly action: string | undefined
}

const IDENT = /[A-Za-z_][A-Za-z0-9_]*/y
const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  n: '\n',
  r: '\r',
  t: '\t',
  '\\': '\\',
  '0': '\0',
  "'": "'",
  '"': '"',
}

class Reader {
  readonly text: string
  pos = 0
  constructor(text: string) {
    this.text = text
  }

  /** Skips white space and `//` comments. */
  skip(): void {
    for (;;) {
      const c = this.text[this.pos]
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') this.pos++
      else if (c === '/' && this.text[this.pos + 1] === '/') {
        const nl = this.text.indexOf('\n', this.pos)
        this.pos = nl === -1 ? this.text.length : nl + 1
      } else return
    }
  }

  eat(token: string): boolean {
    this.skip()
    if (!this.text.startsWith(token, this.pos)) return false
    this.pos += token.length
    return true
  }

  ident(): string | undefined {
    this.skip()
    IDENT.lastIndex = this.pos
    const m = IDENT.exec(this.text)
    if (m === null) return undefined
    this.pos += m[0].length
    return m[0]
  }

  /** A string literal's value; undefined for an escape this reader does not decode. */
  string(): string | undefined {
    this.skip()
    if (this.text[this.pos] !== '"') return undefined
    let out = ''
    for (let i = this.pos + 1; i < this.text.length; i++) {
      const c = this.text[i] as string
      if (c === '"') {
        this.pos = i + 1
        return out
      }
      if (c !== '\\') {
        out += c
        continue
      }
      const e = this.text[i + 1] as string
      const simple = SIMPLE_ESCAPES[e]
      if (simple !== undefined) {
        out += simple
        i++
      } else if (e === 'u') {
        const m = /^\{([0-9A-Fa-f]{1,6})\}/.exec(this.text.slice(i + 2, i + 11))
        if (m === null) return undefined
        out += String.fromCodePoint(Number.parseInt(m[1] as string, 16))
        i += 1 + (m[0] as string).length
      } else return undefined
    }
    return undefined
  }

  /** `Path::To::Type::"id"` as `Path::To::Type::"id"` (the id re-encoded as JSON). */
  entity(): string | undefined {
    const names: string[] = []
    for (;;) {
      const id = this.ident()
      if (id === undefined || !this.eat('::')) return undefined
      names.push(id)
      this.skip()
      if (this.text[this.pos] === '"') {
        const value = this.string()
        return value === undefined ? undefined : `${names.join('::')}::${JSON.stringify(value)}`
      }
    }
  }
}

/**
 * One scope constraint: the entity for `var == Entity`, null for any other
 * constraint that this reader can skip to the following `,`/`)`, undefined
 * when it cannot tell.
 */
function constraint(r: Reader, variable: string): string | null | undefined {
  if (r.ident() !== variable) return undefined
  r.skip()
  if (r.text.startsWith('==', r.pos)) {
    r.pos += 2
    return r.entity()
  }
  // Other forms (`in`, `is`, lists) carry no slice key; skip to the separator outside strings and brackets.
  let depth = 0
  for (let i = r.pos; i < r.text.length; i++) {
    const c = r.text[i]
    if (c === '"') {
      r.pos = i
      if (r.string() === undefined) return undefined
      i = r.pos - 1
    } else if (c === '[' || c === '(') depth++
    else if ((c === ']' || c === ')') && depth > 0) depth--
    else if ((c === ',' || c === ')') && depth === 0) {
      r.pos = i
      return null
    } else if (c === '/' && r.text[i + 1] === '/') return undefined
  }
  return undefined
}

/** The head of a policy text, or undefined when it does not look as expected. */
export function readPolicyHead(text: string): PolicyHead | undefined {
  const r = new Reader(text)
  const annotations: Record<string, string | null> = {}
  while (r.eat('@')) {
    const name = r.ident()
    if (name === undefined) return undefined
    let value: string | null = null
    if (r.eat('(')) {
      const v = r.string()
      if (v === undefined || !r.eat(')')) return undefined
      value = v
    }
    if (Object.hasOwn(annotations, name)) return undefined
    annotations[name] = value
  }
  const effect = r.ident()
  if ((effect !== 'permit' && effect !== 'forbid') || !r.eat('(')) return undefined
  const principal = constraint(r, 'principal')
  if (principal === undefined || !r.eat(',')) return undefined
  const action = constraint(r, 'action')
  if (action === undefined || !r.eat(',')) return undefined
  return { annotations, effect, principal: principal ?? undefined, action: action ?? undefined }
}
