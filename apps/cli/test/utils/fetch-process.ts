/**
 * One HTTP request from a process of its own, for a test that must make it inside a network
 * namespace: `node fetch-process.ts URL METHOD`, the body (if any) on stdin. Prints JSON lines:
 * `{"head": {status, headers}}`, then `{"chunk": text}` per body chunk, then `{"end": ms}` with the
 * time since the request left, or `{"error": message}`.
 */
const [url, method = 'GET'] = process.argv.slice(2)
const chunks: Buffer[] = []
for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined
const started = performance.now()
const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`)
try {
  const response = await fetch(url as string, {
    method,
    ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
  })
  const headers: Record<string, string> = {}
  response.headers.forEach((value, name) => {
    headers[name] = value
  })
  print({ head: { status: response.status, headers } })
  const decoder = new TextDecoder()
  const reader = response.body?.getReader()
  for (;;) {
    const read = await reader?.read()
    if (!read || read.done) break
    print({ chunk: decoder.decode(read.value, { stream: true }) })
  }
  print({ end: Math.round(performance.now() - started) })
} catch (err) {
  print({ error: (err as Error).message })
}
