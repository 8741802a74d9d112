import { USAGE_TAIL_BYTES } from '../constants.ts'

/** Token usage as engines report it, normalised across the Chat/Completions and Responses APIs. */
export interface Usage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
}

const USAGE_KEY = Buffer.from('"usage"')

/**
 * Finds the last `"usage": {…}` object in the last USAGE_TAIL_BYTES of a response (a JSON body or
 * an SSE stream), so usage can be counted without parsing or holding the whole response. Only the
 * bytes from that key on are decoded.
 */
export function findUsage(body: Buffer): Usage | undefined {
  const last = body.subarray(-USAGE_TAIL_BYTES)
  const at = last.lastIndexOf(USAGE_KEY)
  if (at < 0) return undefined
  const tail = last.toString('utf8', at)
  const start = tail.indexOf('{')
  if (start < 0) return undefined
  const end = matchBrace(tail, start)
  if (end < 0) return undefined
  let raw: Record<string, unknown>
  try {
    raw = JSON.parse(tail.slice(start, end + 1))
  } catch {
    return undefined
  }
  const prompt = num(raw.prompt_tokens) ?? num(raw.input_tokens) ?? 0
  const completion = num(raw.completion_tokens) ?? num(raw.output_tokens) ?? 0
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: num(raw.total_tokens) ?? prompt + completion,
  }
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined
}

function matchBrace(s: string, start: number): number {
  let depth = 0
  let inString = false
  for (let i = start; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x7b) depth++
    else if (c === 0x7d && --depth === 0) return i
  }
  return -1
}
