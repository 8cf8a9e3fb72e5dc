// A TEST-ONLY OpenID provider for Portico's OAuth/OIDC login tests. Never run it for real users.
//
// It is the `oidc-provider` package (a certified OpenID provider that Portico did not write),
// configured for one confidential client and started by the tests (tests/oidc_support/mod.rs)
// when scripts/test has installed it with `npm ci`. Its dev login form accepts ANY login with any
// password; consent is one button. Everything lives in memory and dies with the process.
//
// Environment:
//   CLIENT_ID, CLIENT_SECRET  the one client (client_secret_basic or client_secret_post)
//   REDIRECT_URI              the one redirect URI allowed for that client
//   PORT                      port on 127.0.0.1 (0 = any free port)
//
// Prints exactly one line on stdout once it accepts requests: `listening http://127.0.0.1:<port>`
// (that URL is also the issuer). Everything else goes to stderr. Exits when stdin closes or on
// SIGTERM/SIGINT.
//
// oidc-provider 9 prints "Unsupported runtime" on Node 20 (it asks for Node 22 LTS or later); it
// runs on Node 20.18+ all the same (20.18 brought URL.parse, which it uses).
//
// Accounts, for a typed login L: sub = "acct-" + L, email = L, email_verified = true unless L
// starts with "unverified", name = the part of L before "@".

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

// stdout carries only the `listening` line: the package prints its notices with console.info.
// The warnings that it is a development setup (in-memory store, dev interactions) are the point
// of this file and are dropped; any other warning still reaches stderr.
console.log = console.error;
console.info = console.error;
const warn = console.warn.bind(console);
console.warn = (...args) => {
  const first = String(args[0] ?? '');
  if (first.startsWith('oidc-provider WARNING: a quick start development-only')) return;
  warn(...args);
};

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`server.mjs: environment variable ${name} is required`);
    process.exit(2);
  }
  return value;
}

const clientId = required('CLIENT_ID');
const clientSecret = required('CLIENT_SECRET');
const redirectUri = required('REDIRECT_URI');
const port = Number(process.env.PORT ?? '0');
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`server.mjs: PORT must be a port number, got ${process.env.PORT}`);
  process.exit(2);
}

function account(login) {
  return {
    // The dev login form makes the typed login the account id; the "acct-" subject is produced
    // by pairwiseIdentifier below, the provider's own hook for the `sub` a client sees.
    accountId: login,
    async claims() {
      return {
        sub: login,
        email: login,
        email_verified: !login.startsWith('unverified'),
        name: login.split('@')[0],
      };
    },
  };
}

// A fresh RS256 signing key per run (the package's built-in key is a shared, public dev key).
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

const server = createServer();
server.on('error', (err) => {
  console.error(`server.mjs: ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        response_types: ['code'],
        grant_types: ['authorization_code'],
        // client_secret_post is accepted too: the package treats the two as one family.
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['openid', 'email', 'profile'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    // Put the scope's claims (email, email_verified, name) into the id_token of the code flow
    // too, not only into userinfo.
    conformIdTokenClaims: false,
    subjectTypes: ['pairwise'],
    async pairwiseIdentifier(_ctx, accountId) {
      return `acct-${accountId}`;
    },
    pkce: { required: () => true },
    responseTypes: ['code'],
    // Lifetimes in seconds (set, so the package does not remark on its defaults).
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      Grant: 3600,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
    },
    features: {
      devInteractions: { enabled: true },
      userinfo: { enabled: true },
    },
    async findAccount(_ctx, id) {
      return account(id);
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));

  server.on('request', provider.callback());
  process.stdout.write(`listening ${issuer}\n`);
});

function stop() {
  server.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
