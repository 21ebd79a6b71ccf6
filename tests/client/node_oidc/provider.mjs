// node-oidc-provider for tests/client/test_node_oidc_provider.py: a certified
// OpenID provider on a loopback port, configured as many deployments are:
//   - discovery only at /.well-known/openid-configuration (no RFC 8414 document),
//   - RFC 8707 resource indicators with JWT access tokens for one API, which
//     the revocation endpoint refuses with unsupported_token_type (RFC 7009 §2.2.1),
//   - client credentials for "machine", authorization code + refresh for "web",
//   - the development login/consent pages (any login name), driven by the test.
//
//   node provider.mjs --port 9200 --secret s3cret --redirect-uri http://127.0.0.1/cb \
//        --resource https://api.interop.test
import { generateKeyPairSync } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string' },
    secret: { type: 'string' },
    'redirect-uri': { type: 'string' },
    resource: { type: 'string' },
  },
});
const port = Number(opts.port);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'interop-1', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  clients: [
    {
      client_id: 'machine',
      client_secret: opts.secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: 'web',
      client_secret: opts.secret,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [opts['redirect-uri']],
    },
  ],
  scopes: ['openid', 'offline_access', 'api:read'],
  claims: { openid: ['sub'] },
  pkce: { required: () => true },
  issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => opts.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
        if (resource !== opts.resource) throw new Provider.errors.InvalidTarget();
        return { scope: 'api:read', audience: resource, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
});
provider.proxy = false;

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
