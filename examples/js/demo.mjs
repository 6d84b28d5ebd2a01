// Exercise AuthClient against a running example app (used by the tests):
//   node examples/js/demo.mjs http://127.0.0.1:5000 alice "correct horse battery staple"
import { AuthClient } from "./client.mjs";

const [baseUrl, username, password] = process.argv.slice(2);
const client = new AuthClient(baseUrl);
const steps = {};

await client.login(username, password);
steps.hello = await (await client.fetch("/hello")).json();

// An access token that no longer passes (expired, say): one refresh, one retry.
const oldRefresh = client.refreshToken;
client.accessToken = "expired.access.token";
const [first, second] = await Promise.all([client.fetch("/hello"), client.fetch("/hello")]);
steps.afterRefresh = [first.status, second.status];
steps.rotatedOnce = client.refreshToken !== oldRefresh;

await client.logout();
steps.loggedOut = (await client.fetch("/hello")).status;
console.log(JSON.stringify(steps));
