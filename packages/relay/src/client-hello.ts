/**
 * The server name (SNI) and ALPN of a TLS ClientHello, read from the first bytes of a connection
 * without terminating TLS, as nginx's `ssl_preread` does: the hello may be split over TCP segments
 * and over several TLS records (a post-quantum key share makes a browser's 1.5–2 KB). Never throws:
 * every length is checked. No maintained npm package parses more than one record, so it is Gate's
 * own.
 */

export type HelloResult =
  | { kind: 'need-more' } // read more bytes and call again with the whole buffer
  | { kind: 'not-tls'; reason: string } // e.g. plain HTTP; caller may answer or drop
  | { kind: 'invalid'; reason: string } // looks like TLS but malformed / too big
  | { kind: 'hello'; serverName: string | null; alpn: string[]; legacyVersion: number; bytes: number }

const RECORD_HANDSHAKE = 22
const HANDSHAKE_CLIENT_HELLO = 1
const EXT_SERVER_NAME = 0
const EXT_ALPN = 16

/** Largest ClientHello taken (its handshake length): what nginx reads. @default 16 KiB */
export const MAX_HELLO_BYTES = 16 * 1024

/** Parses `buf`, everything received so far from the first byte of the connection. */
export function parseClientHello(buf: Uint8Array, maxHello = MAX_HELLO_BYTES): HelloResult {
  const hs: Uint8Array[] = [] // handshake-layer bytes collected from successive records
  let hsLen = 0
  let off = 0
  let need = -1 // total handshake bytes needed (4 + body), once known
  const at = (i: number) => buf[i] as number // callers bounds-check first
  for (;;) {
    if (buf.length - off < 5)
      return off === 0 && buf.length > 0 && at(0) !== RECORD_HANDSHAKE ? notTls(buf) : { kind: 'need-more' }
    const type = at(off)
    const major = at(off + 1)
    const recLen = (at(off + 3) << 8) | at(off + 4)
    if (type !== RECORD_HANDSHAKE)
      return off === 0 ? notTls(buf) : { kind: 'invalid', reason: `record type ${type} inside ClientHello` }
    if (major !== 3) return { kind: 'invalid', reason: `record version ${major}.x` }
    if (recLen === 0 || recLen > 16384) return { kind: 'invalid', reason: `record length ${recLen}` }
    if (buf.length - off - 5 < recLen) return { kind: 'need-more' } // wait for the whole record
    hs.push(buf.subarray(off + 5, off + 5 + recLen))
    hsLen += recLen
    off += 5 + recLen
    if (need < 0 && hsLen >= 4) {
      const [t = 0, l1 = 0, l2 = 0, l3 = 0] = concat(hs, 4)
      if (t !== HANDSHAKE_CLIENT_HELLO) return { kind: 'invalid', reason: `handshake type ${t}` }
      const bodyLen = (l1 << 16) | (l2 << 8) | l3
      if (bodyLen > maxHello) return { kind: 'invalid', reason: `ClientHello of ${bodyLen} bytes` }
      need = 4 + bodyLen
    }
    if (need >= 0 && hsLen >= need) {
      const r = parseBody(concat(hs, need).subarray(4))
      return r.kind === 'hello' ? { ...r, bytes: off } : r
    }
  }
}

function notTls(buf: Uint8Array): HelloResult {
  return { kind: 'not-tls', reason: `first byte 0x${(buf[0] ?? 0).toString(16)}` }
}

function concat(parts: Uint8Array[], n: number): Uint8Array {
  const first = parts[0] as Uint8Array
  if (first.length >= n) return first.subarray(0, n)
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    const take = Math.min(p.length, n - o)
    out.set(p.subarray(0, take), o)
    o += take
    if (o === n) break
  }
  return out
}

function parseBody(b: Uint8Array): HelloResult {
  const bad = (reason: string): HelloResult => ({ kind: 'invalid', reason })
  const u8 = (i: number) => b[i] as number // every call site is bounds-checked first
  const u16 = (i: number) => (u8(i) << 8) | u8(i + 1)
  // legacy_version(2) random(32) session_id<0..32> cipher_suites<2..2^16-2> compression<1..2^8-1>
  if (b.length < 35) return bad('short ClientHello')
  const legacyVersion = u16(0)
  let p = 34
  const sid = u8(p)
  if (sid > 32) return bad('session id length')
  p += 1 + sid
  if (p + 2 > b.length) return bad('truncated cipher suites')
  const cs = u16(p)
  if (cs < 2 || cs % 2) return bad('cipher suites length')
  p += 2 + cs
  if (p + 1 > b.length) return bad('truncated compression methods')
  const cm = u8(p)
  if (cm < 1) return bad('compression methods length')
  p += 1 + cm
  if (p > b.length) return bad('truncated compression methods')
  let serverName: string | null = null
  const alpn: string[] = []
  if (p === b.length) return { kind: 'hello', serverName, alpn, legacyVersion, bytes: 0 } // no extensions (old clients)
  if (p + 2 > b.length) return bad('truncated extensions length')
  const extEnd = p + 2 + u16(p)
  if (extEnd !== b.length) return bad('extensions length mismatch')
  p += 2
  const seen = new Set<number>()
  while (p < extEnd) {
    if (p + 4 > extEnd) return bad('truncated extension header')
    const type = u16(p)
    const len = u16(p + 2)
    const d = p + 4
    if (d + len > extEnd) return bad('extension overruns')
    if (seen.has(type)) return bad(`duplicate extension ${type}`)
    seen.add(type)
    if (type === EXT_SERVER_NAME) {
      // server_name_list<1..2^16-1>: name_type(1) + host_name<1..2^16-1>; only one host_name allowed
      if (len < 2 || u16(d) !== len - 2) return bad('server_name list length')
      let q = d + 2
      while (q < d + len) {
        if (q + 3 > d + len) return bad('truncated server_name')
        const nameType = u8(q)
        const nameLen = u16(q + 1)
        if (q + 3 + nameLen > d + len || nameLen === 0) return bad('server_name length')
        if (nameType === 0) {
          if (serverName !== null) return bad('two host_names')
          serverName = Buffer.from(b.subarray(q + 3, q + 3 + nameLen)).toString('latin1')
        }
        q += 3 + nameLen
      }
    } else if (type === EXT_ALPN) {
      if (len < 2 || u16(d) !== len - 2) return bad('ALPN list length')
      let q = d + 2
      while (q < d + len) {
        const l = u8(q)
        if (l === 0 || q + 1 + l > d + len) return bad('ALPN protocol length')
        alpn.push(Buffer.from(b.subarray(q + 1, q + 1 + l)).toString('latin1'))
        q += 1 + l
      }
    }
    p = d + len
  }
  return { kind: 'hello', serverName, alpn, legacyVersion, bytes: 0 }
}

/** A DNS host name as the relay takes it: lower-cased, letters, digits and hyphens, no trailing dot. */
export function normalizeServerName(name: string): string | null {
  const n = name.toLowerCase()
  if (n.length > 253 || n.endsWith('.')) return null
  return n.split('.').every((l) => /^[a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l)) ? n : null
}
