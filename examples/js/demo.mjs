// Exercise AuthClient against a running example app (used by the tests):
//   node examples/js/demo.mjs http://127.0.0.1:5000 alice "correct horse battery staple" [dpop]
// With "dpop", the client signs a DPoP proof for every request (the app must
// run with COCART_JWT_DPOP on) and the steps say what the API bound.
import { AuthClient } from "./client.mjs";

const [baseUrl, username, password, mode] = process.argv.slice(2);
const client = new AuthClient(baseUrl, { dpop: mode === "dpop" });
const steps = {};

const login = await client.login(username, password);
steps.tokenType = login.token_type;
steps.hello = await (await client.fetch("/hello")).json();

// An access token that no longer passes (expired, say): one refresh, one retry.
const oldRefresh = client.refreshToken;
const goodAccess = client.accessToken;
client.accessToken = "expired.access.token";
const [first, second] = await Promise.all([client.fetch("/hello"), client.fetch("/hello")]);
steps.afterRefresh = [first.status, second.status];
steps.rotatedOnce = client.refreshToken !== oldRefresh;

if (mode === "dpop") {
  // The private key cannot be exported, and the bound token is useless as Bearer.
  const key = await client.dpopKey;
  steps.privateKeyExtractable = key.keyPair.privateKey.extractable;
  steps.exportRefused = await crypto.subtle
    .exportKey("jwk", key.keyPair.privateKey)
    .then(() => false, () => true);
  const asBearer = await fetch(`${baseUrl}/hello`, {
    headers: { Authorization: `Bearer ${goodAccess}` },
  });
  steps.asBearer = asBearer.status;
}

await client.logout();
steps.loggedOut = (await client.fetch("/hello")).status;
console.log(JSON.stringify(steps));
