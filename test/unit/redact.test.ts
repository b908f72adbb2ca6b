// redact() scrubs every shape a secret takes in tsko's output: Authorization headers, Basic and
// Bearer values, user:password@ in URLs, password/token fields in JSON and queries, and the
// signature of a pre-signed storage URL; ordinary text passes unchanged.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEventBus, type TskoEvent } from '../../src/events.js';
import { redact } from '../../src/redact.js';
import { createJsonReporter } from '../../ui/json.js';
import { createPlainReporter } from '../../ui/plain.js';

describe('redact', () => {
  const jwt = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ0ZXN0In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';

  it('removes Authorization values, Basic and Bearer credentials', () => {
    assert.equal(redact('authorization: Basic dGVzdHVzZXI6c2VjcmV0'), 'authorization: Basic [REDACTED]');
    assert.equal(redact(`Authorization=Bearer ${jwt}`), 'Authorization=Bearer [REDACTED]');
    assert.equal(redact(`sent Bearer ${jwt} to it`), 'sent Bearer [REDACTED] to it');
  });

  it('removes passwords in URLs, JSON and query strings', () => {
    assert.equal(redact('https://me:hunter2@registry.example/v2/'), 'https://me:[REDACTED]@registry.example/v2/');
    assert.equal(redact('{"Username":"me","Secret":"hunter2"}'), '{"Username":"me","Secret":"[REDACTED]"}');
    assert.equal(redact(`{"token":"${jwt}","expires_in":300}`), '{"token":"[REDACTED]","expires_in":300}');
    assert.equal(redact('POST /token grant_type=refresh_token&refresh_token=abc123&client_id=tsko'), 'POST /token grant_type=refresh_token&refresh_token=[REDACTED]&client_id=tsko');
  });

  it('removes the signature of pre-signed blob URLs', () => {
    assert.equal(
      redact('GET https://bucket.s3.amazonaws.com/blob?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abcdef&X-Amz-Expires=60 → 200'),
      'GET https://bucket.s3.amazonaws.com/blob?X-Amz-Credential=[REDACTED]&X-Amz-Signature=[REDACTED]&X-Amz-Expires=60 → 200',
    );
    assert.equal(redact('GET https://cdn.example/x?sig=0123abcd&expires=9 → 200'), 'GET https://cdn.example/x?sig=[REDACTED]&expires=9 → 200');
  });

  it('leaves ordinary lines alone', () => {
    const line = 'PUT http://127.0.0.1:5000/v2/test/hello/manifests/latest → 201 (3 ms); design: tidy; account=testuser';
    assert.equal(redact(line), line);
  });
});

describe('the event bus', () => {
  it('redacts every event once, before any reporter: JSON lines, plain lines and the dashboard get the same scrubbed event', () => {
    const bus = createEventBus();
    const json: string[] = [];
    const plain: string[] = [];
    const raw: TskoEvent[] = [];
    bus.subscribe(createJsonReporter((line) => json.push(line)));
    bus.subscribe(createPlainReporter({ write: (line) => plain.push(line) }));
    bus.subscribe((event) => raw.push(event));
    const secret = 'hunter2-not-for-output';
    bus.emit({ type: 'log', level: 'warn', message: `pushing to https://me:${secret}@registry.example/v2/` });
    bus.emit({ type: 'error', error: { code: 'REGISTRY_AUTH', message: `401 for Authorization: Bearer ${secret}xxxxxxxxxxxx`, detail: `{"password":"${secret}"}` } });
    bus.emit({ type: 'revision.log', service: 'svc', iteration: 1, revision: 'svc-00001', stream: 'stdout', line: `token=${secret}` });
    const everything = [...json, ...plain, JSON.stringify(raw)].join('\n');
    assert.doesNotMatch(everything, new RegExp(secret));
    assert.equal(json.length, 3);
    assert.match(json[0] ?? '', /me:\[REDACTED\]@registry\.example/);
    const clean = { type: 'log', level: 'info', message: 'nothing secret here' } as const;
    bus.emit(clean);
    assert.equal((raw.at(-1) as { message?: string }).message, 'nothing secret here', 'an event without secrets passes through as it is');
  });
});
