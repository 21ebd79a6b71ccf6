// node-oidc-provider set up as a peer for benchmarks/run.py: the client-credentials
// grant issuing RFC 9068 JWT access tokens signed with the same algorithm and key
// size as Keyturn (RS256 with RSA-2048, or ES256 with P-256).
//
//   node server.mjs --port 9100 --alg RS256 --client-id bench --client-secret s3cret \
//        --scope read --audience https://api.bench.test
//
// Loopback only; in-memory adapter (JWT access tokens are not stored by the peer).
// With --format opaque the access tokens are opaque (kept in the in-memory
// adapter) and RFC 7662 introspection is on at /token/introspection: the peer
// refuses to introspect its JWT access tokens, so this is what it can be
// compared with for introspection (benchmarks/run.py --introspection). RFC 7009
// revocation is on at /token/revocation in that mode too (run.py --revocation):
// revoking an opaque token deletes it from the adapter, as revoking a JWT cannot.
//
// The adapter is oidc-provider's own in-memory one, over a store with no size
// bound: its default store is an LRU of 1,000 entries, so in a revocation run
// (pools of 10,000+ tokens) it had forgotten most tokens before they were
// revoked, and revoking a forgotten token costs it nothing. Expiry still holds.
import { generateKeyPairSync } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '9100' },
    alg: { type: 'string', default: 'RS256' },
    'client-id': { type: 'string', default: 'bench' },
    'client-secret': { type: 'string' },
    scope: { type: 'string', default: 'read' },
    audience: { type: 'string', default: 'https://api.bench.test' },
    format: { type: 'string', default: 'jwt' },
  },
});
if (!opts['client-secret']) throw new Error('--client-secret is required');
if (!['jwt', 'opaque'].includes(opts.format)) throw new Error('--format is jwt or opaque');
const { alg } = opts;
const port = Number(opts.port);

const pair = alg === 'ES256'
  ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
  : generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...pair.privateKey.export({ format: 'jwk' }), kid: 'bench-1', alg, use: 'sig' };

const issuer = `http://127.0.0.1:${port}`;
const store = new LRU({ maxSize: Number.MAX_SAFE_INTEGER }); // never evicts: one generation
const provider = new Provider(issuer, {
  adapter: (model) => new MemoryAdapter(model, store),
  jwks: { keys: [jwk] },
  clients: [{
    client_id: opts['client-id'],
    client_secret: opts['client-secret'],
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
    id_token_signed_response_alg: alg,
  }],
  clientDefaults: { id_token_signed_response_alg: alg },
  scopes: [opts.scope],
  ttl: { ClientCredentials: 5 * 3600 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    revocation: { enabled: opts.format === 'opaque' },
    introspection: {
      enabled: opts.format === 'opaque',
      // Keyturn's rule for a client without can_introspect: its own tokens only.
      allowedPolicy: (_ctx, client, token) => token.clientId === client.clientId,
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => opts.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
        if (resource !== opts.audience) throw new Provider.errors.InvalidTarget();
        return {
          scope: opts.scope,
          audience: opts.audience,
          accessTokenTTL: 5 * 3600,
          accessTokenFormat: opts.format,
          ...(opts.format === 'jwt' ? { jwt: { sign: { alg } } } : {}),
        };
      },
    },
  },
});

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`peer ready ${issuer} ${alg}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
