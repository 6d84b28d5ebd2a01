// The shop's browser page: cookie mode of AuthClient. The refresh token is in
// an HttpOnly cookie (no script can read it); the access token only in this
// page's memory, so a reload restores the session from the cookie.
//
// `?dpop=1` adds DPoP: every request carries a proof signed by a key that no
// script can export (kept in IndexedDB), and the API binds the session to it.
// `?cookies=0` keeps both tokens in the page's memory instead (JSON mode): a
// reload then logs out.
import { AuthClient } from "./client.mjs";

const apiBase = document.querySelector('meta[name="api-base"]').content || location.origin;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const dpop = params.get("dpop") === "1";
const cookies = params.get("cookies") !== "0";

const client = new AuthClient(apiBase, { cookies, dpop, onLogout: () => show(false) });
$("mode").textContent = `${cookies ? "Cookie" : "JSON"} mode${dpop ? ", DPoP" : ""}`;
// For the browser tests and the curious: the access token is reachable by any
// script of the page while it is open, as in every SPA; the refresh token never.
globalThis.shop = { client, cart: showCart };

function show(loggedIn) {
  $("status").textContent = loggedIn ? "Logged in" : "Logged out";
  $("login").hidden = loggedIn;
  $("shop").hidden = !loggedIn;
}

async function showCart() {
  let products, cart;
  try {
    [products, cart] = await Promise.all([
      fetch(`${apiBase}/products`).then((r) => r.json()),
      client.fetch("/cart"),
    ]);
  } catch (error) {
    show(false); // the refresh failed: logged out
    return error.status ?? 0;
  }
  if (!cart.ok) {
    show(false);
    return cart.status;
  }
  const names = Object.fromEntries(products.products.map((p) => [p.id, p.name]));
  const items = (await cart.json()).items;
  $("cart").replaceChildren(
    ...items.map((item) => {
      const li = document.createElement("li");
      li.textContent = `${item.quantity} x ${names[item.product_id]}`;
      return li;
    }),
  );
  show(true);
  return cart.status;
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    await client.login(form.get("username"), form.get("password"));
    $("error").textContent = "";
    event.target.password.value = "";
    await showCart();
  } catch (error) {
    $("error").textContent = error.message;
  }
});

$("add").addEventListener("click", async () => {
  await client.fetch("/cart", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ product_id: 1, quantity: 1 }),
  });
  await showCart();
});

$("reload").addEventListener("click", () => location.reload());

$("logout").addEventListener("click", async () => {
  await client.logout().catch(() => {});
  show(false);
});

// A page load: the refresh cookie, if any, gives a new access token.
if (await client.restore()) await showCart();
else show(false);
