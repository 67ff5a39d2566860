// A real OpenID Connect provider (panva's oidc-provider) on 127.0.0.1 for the sign-in tests.
//
// Usage: node server.mjs CONFIG.json
// CONFIG: {"clients": [{client_id, client_secret, redirect_uris}], "users_file": path,
//          "ttl_s": {IdToken, AccessToken, AuthorizationCode, ...}, "clock_offset_s": 0}
// The users file ({login: {password, claims: {email, name, groups, ...}}}) is read again at
// every sign-in and claims request, so a test can change a person's claims between sign-ins.
// Prints one JSON line {"issuer": "http://127.0.0.1:PORT"} once it listens on a free port.
// clock_offset_s shifts this provider's clock (a provider whose clock is an hour slow issues
// ID tokens that are already expired).
// A user's "id_token" field makes the token endpoint hand out a bad ID token for them, to
// test the client's checks: "tampered" (one signature byte flipped), "expired" (exp an hour
// ago, re-signed with the provider's key), "wrong_audience" (aud another client, re-signed).
import { createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const offsetMs = (config.clock_offset_s ?? 0) * 1000;
if (offsetMs) {
  const realNow = Date.now;
  Date.now = () => realNow() + offsetMs;
}

const readUsers = () => JSON.parse(readFileSync(config.users_file, 'utf8'));
const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html><head><title>${escape(title)}</title></head>`
  + `<body><h1>${escape(title)}</h1>${body}</body></html>`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(6).toString('hex'),
  use: 'sig', alg: 'RS256' };

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: config.clients.map((c) => ({
      grant_types: ['authorization_code'], response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic', ...c,
    })),
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: {
      openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'org'],
      groups: ['groups'],
    },
    features: { devInteractions: { enabled: false } },
    ttl: {
      AccessToken: 60, AuthorizationCode: 30, IdToken: 60, Grant: 7200, Interaction: 7200,
      Session: 7200, ...(config.ttl_s ?? {}),
    },
    async findAccount(ctx, id) {
      const user = readUsers()[id];
      if (!user) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...user.claims }) };
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Error', `<p id="error">${escape(out.error)}: ${escape(out.error_description ?? '')}</p>`);
    },
  });
  provider.on('server_error', (ctx, err) => console.error('provider error', err));

  const loginForm = (uid, message = '') => page('Sign in', `<p class="error">${escape(message)}</p>`
    + `<form method="post" action="/interaction/${uid}/login">`
    + '<input name="login" type="text" required><input name="password" type="password" required>'
    + '<button type="submit">Sign in</button></form>');
  const consentForm = (uid, scopes) => page('Authorize', `<p>scopes: ${escape(scopes)}</p>`
    + `<form method="post" action="/interaction/${uid}/confirm"><button type="submit">Continue</button></form>`);

  async function readForm(req) {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  }

  async function interaction(req, res, uid, action) {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
    const { prompt, params, session } = details;
    if (req.method === 'GET') {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(prompt.name === 'login' ? loginForm(uid) : consentForm(uid, params.scope));
      return;
    }
    const form = await readForm(req);
    if (action === 'login') {
      const user = readUsers()[form.get('login')];
      if (!user || user.password !== form.get('password')) {
        res.statusCode = 401;
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end(loginForm(uid, 'Wrong login or password'));
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: form.get('login') } },
        { mergeWithLastSubmission: false });
      return;
    }
    // consent: grant what the client asked for
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } },
      { mergeWithLastSubmission: true });
  }

  const b64url = (buf) => Buffer.from(buf).toString('base64url');
  function spoilIdToken(idToken) {
    const [header, payload, signature] = idToken.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    const mode = readUsers()[claims.sub]?.id_token;
    if (mode === 'tampered') {
      const sig = Buffer.from(signature, 'base64url');
      sig[sig.length >> 1] ^= 0x01;
      return `${header}.${payload}.${b64url(sig)}`;
    }
    if (mode === 'expired') {
      claims.iat -= 7200;
      claims.exp = claims.iat + 3600;
    } else if (mode === 'wrong_audience') {
      claims.aud = 'another-client';
    } else {
      return idToken;
    }
    const input = `${header}.${b64url(JSON.stringify(claims))}`;
    const sign = createSign('RSA-SHA256');
    sign.update(input);
    return `${input}.${b64url(sign.sign(privateKey))}`;
  }

  // the token endpoint's answer passes through spoilIdToken on its way out
  function spoilTokenResponse(res) {
    const end = res.end.bind(res);
    res.end = (chunk, ...rest) => {
      if (chunk && res.statusCode === 200) {
        const body = JSON.parse(chunk.toString('utf8'));
        if (body.id_token) {
          body.id_token = spoilIdToken(body.id_token);
          chunk = JSON.stringify(body);
          if (!res.headersSent) res.setHeader('content-length', Buffer.byteLength(chunk));
        }
      }
      return end(chunk, ...rest);
    };
  }

  const callback = provider.callback();
  server.on('request', (req, res) => {
    const path = req.url.split('?')[0];
    const match = /^\/interaction\/([\w-]+)(?:\/(login|confirm))?$/.exec(path);
    if (!match) {
      if (path === '/token') spoilTokenResponse(res);
      callback(req, res);
      return;
    }
    interaction(req, res, match[1], match[2]).catch((err) => {
      res.statusCode = err.statusCode ?? 500;
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(page('Error', `<p id="error">${escape(err.message)}</p>`));
    });
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
