import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  ForbiddenError,
  type GateError,
  InvalidRequestError,
  NotFoundError,
  PayloadTooLargeError,
  RateLimitedError,
  RequestTimeoutError,
  TimeoutError,
  UnauthorizedError,
  UnavailableError,
  UpstreamError,
} from '@gate/core'
import { openAiErrorBody, statusOf, toGateError } from '../../src/api/errors.ts'

describe('OpenAI error bodies', () => {
  it("gives each status the error type OpenAI's API gives it", () => {
    const cases: Array<[GateError, number, string]> = [
      [new InvalidRequestError('bad'), 400, 'invalid_request_error'],
      [new UnauthorizedError('key'), 401, 'authentication_error'],
      [new ForbiddenError('no'), 403, 'permission_error'],
      [new NotFoundError('gone'), 404, 'not_found_error'],
      [new RequestTimeoutError('slow body'), 408, 'invalid_request_error'],
      [new PayloadTooLargeError('big'), 413, 'invalid_request_error'],
      [new RateLimitedError('busy', 1), 429, 'rate_limit_error'],
      [toGateError(new Error('bug')), 500, 'api_error'],
      [new UpstreamError('engine'), 502, 'api_error'],
      [new UnavailableError('down'), 503, 'api_error'],
      [new TimeoutError('late'), 504, 'api_error'],
    ]
    for (const [error, status, type] of cases) {
      assert.equal(statusOf(error.code), status, error.name)
      const body = JSON.parse(openAiErrorBody(error))
      assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type'])
      assert.equal(body.error.type, type, error.name)
    }
  })

  it('keeps the message of a bug out of the answer', () => {
    const body = JSON.parse(openAiErrorBody(toGateError(new Error('secret detail at /home/me'))))
    assert.equal(body.error.message, 'internal error')
  })
})
