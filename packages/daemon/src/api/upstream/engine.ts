import type { Provider } from '../../providers/provider.ts'
import type { HeaderMap, Upstream } from '../types.ts'

/**
 * A local engine as an upstream: the request goes to its OpenAI-compatible API through its
 * connection pool, with its API key when it has one, and its circuit breaker decides whether it is
 * tried at all.
 */
export function engineUpstream(provider: Provider, self: string): Upstream {
  const { breaker } = provider
  return {
    label: `provider ${provider.name}`,
    provider: provider.name,
    node: self,
    acquire: () => breaker.tryAcquire(),
    async send(request, signal) {
      const answer = await provider.pool.request({
        method: 'POST',
        path: provider.basePath + request.path,
        headers: provider.authorized(request.headers),
        body: request.body,
        signal,
        // The failover loop times the exchange: the head, then each wait between chunks.
        headersTimeout: 0,
        bodyTimeout: 0,
      })
      return { status: answer.statusCode, headers: answer.headers as HeaderMap, body: answer.body }
    },
    release(outcome) {
      if (outcome === 'ok') breaker.success()
      else if (outcome === 'failed') breaker.failure()
      else breaker.release()
    },
  }
}
