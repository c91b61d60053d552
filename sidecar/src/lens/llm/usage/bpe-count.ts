/**
 * One text's tokens with a BPE counter, safe on any input an agent or a
 * provider sends. Runs where the tokenizer lives (tokenizer-worker.ts).
 */

export type CountTokens = (text: string, options?: { disallowedSpecial: Set<string> }) => number

// A prompt or reply may well contain `<|endoftext|>`; the provider reads it as text, and so does the estimate
// (by default the tokenizer throws on it).
const AS_TEXT = { disallowedSpecial: new Set<string>() }

// BPE merges cost the square of one unbroken word's length (32,000 letters in a row take seconds): a run this long
// is counted in slices, so whatever an agent sends, an estimate never stalls. A slice boundary moves the count by a
// token at most, and no slice counts as more tokens than its bytes.
const LONG_RUN = /\S{256,}/
const LONG_RUNS = /(\S{256,})/
const SLICE = 128

export function countText(count: CountTokens, text: string): number {
  if (text === '') return 0
  if (!LONG_RUN.test(text)) return countPiece(count, text)
  let total = 0
  // split() with a capturing group keeps the long runs, at the odd indexes.
  const pieces = text.split(LONG_RUNS)
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i] as string
    if (i % 2 === 0) {
      if (piece !== '') total += countPiece(count, piece)
      continue
    }
    for (let k = 0; k < piece.length; k += SLICE) total += countPiece(count, piece.slice(k, k + SLICE))
  }
  return total
}

function countPiece(count: CountTokens, text: string): number {
  try {
    return count(text)
  } catch {
    // A special token's spelling in the text: counted as the plain text it is (rare, so the slower call).
    return count(text, AS_TEXT)
  }
}
