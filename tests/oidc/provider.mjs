// A real OpenID Connect provider for tests: the npm `oidc-provider` library (v8) on 127.0.0.1.
//
//   node provider.mjs CONFIG_JSON
//
// CONFIG_JSON: {"port": 0-65535, "module_dir": "<folder holding node_modules/oidc-provider>",
//               "client": {"client_id", "client_secret", "redirect_uri"},
//               "users": [{"email": "viewer@example.com", "groups": ["..."]}]}
// It prints one line `ready <issuer>` on stdout once it listens. Sign-in uses the library's
// development interactions: a login form (login = the user's email) and a consent page. ID tokens
// carry email, email_verified, name and groups (conformIdTokenClaims: false), as Streamlit reads
// st.user from the ID token.
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const cfg = JSON.parse(process.argv[2]);
const { default: Provider } = await import(
  pathToFileURL(join(cfg.module_dir, 'node_modules', 'oidc-provider', 'lib', 'index.js')).href
);
const users = new Map(cfg.users.map((u) => [u.email, u]));
const issuer = `http://127.0.0.1:${cfg.port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: cfg.client.client_id,
    client_secret: cfg.client.client_secret,
    redirect_uris: [cfg.client.redirect_uri],
    post_logout_redirect_uris: [cfg.client.redirect_uri.replace(/\/oauth2callback$/, '/')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  conformIdTokenClaims: false,
  cookies: { keys: ['tripwire-test-only-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const user = users.get(id);
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: user.email, email_verified: true, name: user.email, groups: user.groups || [] };
      },
    };
  },
});

const server = provider.listen(cfg.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
