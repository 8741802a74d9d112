/**
 * What the fuzz targets share: the shape of a target, the failure they throw, and arbitraries for
 * the inputs every parser of outside bytes must survive (wrong JSON types, awkward unicode, deep
 * nesting, boundary sizes).
 */
import fc from 'fast-check'

/** One parser under fuzz: how its inputs are made and what each one must satisfy. */
export interface Target<T> {
  arbitrary: fc.Arbitrary<T>
  /** Runs one input through the parser; throws when a property is broken. */
  check(input: T): void | Promise<void>
  /** Longest one input may take. @default DEFAULT_INPUT_TIMEOUT_MS */
  timeoutMs?: number
  /** Most inputs run whatever the time budget (a target that drives a real daemon over sockets). */
  maxInputs?: number
  /** Heap (after a full collection) the run may gain in its second half. @default DEFAULT_HEAP_GROWTH_MB */
  heapGrowthMb?: number
  /** Stops what the target started (a daemon). */
  close?(): Promise<void>
}

/** @default 1000 ms: parsers answer in microseconds, so only a hang or a blow-up gets near it. */
export const DEFAULT_INPUT_TIMEOUT_MS = 1000
/** @default 32 MB */
export const DEFAULT_HEAP_GROWTH_MB = 32

/** A property the parser broke. */
export class PropertyFailure extends Error {
  override name = 'PropertyFailure'
}

export function ensure(condition: unknown, message: string): asserts condition {
  if (!condition) throw new PropertyFailure(message)
}

/**
 * Runs `parse`, and lets through only what it documents it throws (`allowed`): anything else is
 * a crash. Returns the value, or the allowed error.
 */
export function onlyThrows<R>(
  parse: () => R,
  allowed: (err: unknown) => boolean,
): { ok: true; value: R } | { ok: false; error: unknown } {
  try {
    return { ok: true, value: parse() }
  } catch (err) {
    if (!allowed(err)) throw crash(err)
    return { ok: false, error: err }
  }
}

/** An error the parser does not document: a crash, with the original as the cause. */
export function crash(err: unknown): PropertyFailure {
  return new PropertyFailure(`undocumented error: ${describe(err)}`, { cause: err })
}

export function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

/** Strings that break naive code: empty, huge, control characters, lone surrogates, RTL, emoji, NUL. */
export const awkwardString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '',
      '\u0000',
      '\ud800',
      '\udfff',
      '\u202e',
      '\ufeff',
      '💥',
      'é',
      '\r\n',
      '%00',
    ),
  },
  { weight: 1, arbitrary: fc.nat(5000).map((n) => 'x'.repeat(n)) },
)

/** A value of some other type than expected: what a hostile or buggy sender puts in any field. */
export const wrongType: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, -0, 1e308, -1e308, 2 ** 53, '', '0', 'null', [], {}),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  awkwardString,
  fc.array(fc.oneof(fc.integer(), awkwardString), { maxLength: 3 }),
  fc.constantFrom({ __proto__: null }, JSON.parse('{"__proto__":{"polluted":1}}'), { constructor: 1 }),
)

/** Any JSON value, including the ones a schema does not expect (wrong types, extremes). */
export const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: wrongType },
  { weight: 1, arbitrary: fc.dictionary(awkwardString, fc.jsonValue({ maxDepth: 1 }), { maxKeys: 4 }) },
)

/** JSON text nested `depth` deep: arrays, objects or a mix. */
export const deepJson: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 100, max: 20_000 }), fc.constantFrom('[', '{"a":'))
  .map(([depth, open]) => `${open.repeat(depth)}1${(open === '[' ? ']' : '}').repeat(depth)}`)

/** One change to a record: a field replaced with a value of any type, removed, or added. */
export type Mutation =
  | { op: 'keep' }
  | { op: 'replace'; pick: number; value: unknown }
  | { op: 'remove'; pick: number }
  | { op: 'add'; key: string; value: unknown }

/** Mutations, a fifth of them none: a valid message made invalid in one place. */
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.constant({ op: 'keep' as const }),
  fc.record({ op: fc.constant('replace' as const), pick: fc.nat(), value: anyJson }),
  fc.record({ op: fc.constant('replace' as const), pick: fc.nat(), value: wrongType }),
  fc.record({ op: fc.constant('remove' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('add' as const), key: awkwardString, value: anyJson }),
)

/** `value` with `m` applied; the field it picks is `pick` modulo the number of fields. */
export function mutate(value: Record<string, unknown>, m: Mutation): Record<string, unknown> {
  const keys = Object.keys(value)
  if (m.op === 'keep') return value
  if (m.op === 'add') return { ...value, [m.key]: m.value }
  const key = keys[m.pick % Math.max(keys.length, 1)]
  if (key === undefined) return value
  if (m.op === 'replace') return { ...value, [key]: m.value }
  const { [key]: _, ...rest } = value
  return rest
}

/** An edit of a message's bytes: the byte at a position (modulo the length) set, or the bytes cut there (0). */
export const byteEdit = fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { freq: 4 })

export function applyEdit(bytes: Uint8Array, edit: [number, number] | null): Uint8Array {
  if (edit === null || bytes.length === 0) return bytes
  const [at, byte] = edit
  const i = at % bytes.length
  if (byte === 0) return bytes.subarray(0, i)
  const out = Uint8Array.from(bytes)
  out[i] = byte
  return out
}

/** A value as the JSON bytes a peer sends. */
export function json(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value))
}

/** How a stream's bytes arrive: cut at these points (see `split`), then ended or reset. */
export const delivery = { cuts: fc.array(fc.nat(), { maxLength: 6 }), reset: fc.boolean() }

/** Cuts `bytes` into pieces at the given points: how a transport may deliver them. */
export function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const pieces: Uint8Array[] = []
  let from = 0
  for (const at of points) {
    if (at > from) pieces.push(bytes.subarray(from, at))
    from = Math.max(from, at)
  }
  if (from < bytes.length || pieces.length === 0) pieces.push(bytes.subarray(from))
  return pieces
}
