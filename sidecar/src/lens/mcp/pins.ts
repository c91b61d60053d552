/**
 * Tool pinning: the first time a tool is listed to anyone, a hash of its
 * name, description and input schema is recorded for that upstream. When
 * a later list shows the same name with another hash (a server that
 * swapped a tool's description or schema under an approved name, "rug
 * pull"), the tool is left out of lists and its calls are refused until
 * the sidecar restarts with the change approved, and the change is
 * reported once on the audit channel. Pins live in memory, bounded.
 */
import { createHash } from 'node:crypto'

export type PinCheck = 'pinned' | 'changed'

/** JSON with object keys sorted, so equal tools hash equally whatever order a server writes them in. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(v) ?? 'null'
}

export function toolHash(tool: Readonly<Record<string, unknown>>): string {
  const h = createHash('sha256')
  h.update(canonical({ name: tool.name, description: tool.description, inputSchema: tool.inputSchema }))
  return `sha256:${h.digest('hex')}`
}

export class ToolPins {
  readonly #max: number
  /** upstream + name → the pinned hash, and the changed one once seen. */
  readonly #pins = new Map<string, { hash: string; changed?: string }>()

  constructor(maxPins: number) {
    this.#max = maxPins
  }

  /**
   * Pins a listed tool or compares it with its pin. `onChange` runs once, when a change is first seen. A table
   * that is full pins nothing more: those tools are reported changed (never trusted unpinned).
   */
  check(
    upstream: string,
    tool: Readonly<Record<string, unknown>>,
    onChange: (pinned: string, now: string) => void,
  ): PinCheck {
    const key = `${upstream}\u0000${String(tool.name)}`
    const hash = toolHash(tool)
    const pin = this.#pins.get(key)
    if (pin === undefined) {
      if (this.#pins.size >= this.#max) {
        onChange('none (the pin table is full)', hash)
        return 'changed'
      }
      this.#pins.set(key, { hash })
      return 'pinned'
    }
    if (pin.hash === hash) return pin.changed === undefined ? 'pinned' : 'changed'
    if (pin.changed !== hash) {
      pin.changed = hash
      onChange(pin.hash, hash)
    }
    return 'changed'
  }

  /** Whether calls to this tool are refused (a change was seen and not approved). */
  changed(upstream: string, name: string): boolean {
    return this.#pins.get(`${upstream}\u0000${name}`)?.changed !== undefined
  }
}
