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
import { ScopedTable } from '../../pipeline/scoped-table.ts'

export type PinCheck = 'pinned' | 'changed'

/** A listed tool: its value, and its own text when the list was read as text (list-scan.ts). */
export interface PinnedItem {
  value(): Readonly<Record<string, unknown>>
  text(): Buffer | undefined
  /** Whether its own text is `text`, byte for byte (false when it has none). */
  sameText(text: Buffer): boolean
}

/** A tool's text longer than this is hashed every time rather than kept to compare. */
const MAX_REMEMBERED = 4096

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

interface Pin {
  hash: string
  changed?: string
  /** The text last hashed and its hash, to know it again without hashing. */
  seen: { text: Buffer; hash: string } | undefined
}

export class ToolPins {
  readonly #max: number
  /** Per upstream, per tool name: its pin. Never past `#max`, so the table never forgets one. */
  readonly #pins: ScopedTable<Pin>

  constructor(maxPins: number) {
    this.#max = maxPins
    this.#pins = new ScopedTable(maxPins)
  }

  /**
   * Pins a listed tool or compares it with its pin. `onChange` runs once, when a change is first seen. A table
   * that is full pins nothing more: those tools are reported changed (never trusted unpinned).
   */
  check(
    upstream: string,
    name: string,
    tool: PinnedItem,
    onChange: (pinned: string, now: string) => void,
  ): PinCheck {
    const pin = this.#pins.get(upstream, name)
    // The same text as last time hashes the same: a list seen again is compared, not parsed and hashed anew.
    const kept = pin?.seen
    const same = kept !== undefined && tool.sameText(kept.text)
    const hash = same ? kept.hash : toolHash(tool.value())
    const text = same ? undefined : tool.text()
    const seen = text === undefined || text.length > MAX_REMEMBERED ? kept : { text: Buffer.from(text), hash }
    if (pin === undefined) {
      if (this.#pins.size >= this.#max) {
        onChange('none (the pin table is full)', hash)
        return 'changed'
      }
      this.#pins.set(upstream, name, { hash, seen })
      return 'pinned'
    }
    pin.seen = seen
    if (pin.hash === hash) return pin.changed === undefined ? 'pinned' : 'changed'
    if (pin.changed !== hash) {
      pin.changed = hash
      onChange(pin.hash, hash)
    }
    return 'changed'
  }

  /** Whether calls to this tool are refused (a change was seen and not approved). */
  changed(upstream: string, name: string): boolean {
    return this.#pins.get(upstream, name)?.changed !== undefined
  }
}
