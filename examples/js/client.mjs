// A fetch() wrapper for a Flask-CoCart-JWT API: it sends the access token,
// refreshes it once on a 401 and retries the call. Concurrent calls share one
// refresh (so a page with many requests, or a retry of a lost response, never
// rotates the refresh token twice); a failed refresh means "logged out".
//
// Two modes:
//
// - JSON mode (the default; mobile apps, servers, Node): both tokens in
//   memory. Never put the refresh token in localStorage on the web, where any
//   script of the page can read it.
// - Cookie mode (`{ cookies: true }`, for browsers, with the API's
//   COCART_JWT_COOKIE_MODE): the refresh token lives in an HttpOnly cookie
//   that no script can read; requests to the token routes use
//   `credentials: "include"` and echo the CSRF cookie in the CSRF header. The
//   access token stays in memory only, so a reload starts with `restore()`.
//   One refresh runs at a time across all the tabs of the site (Web Locks
//   API; without it, one at a time in this page).
//
// Either mode can add DPoP (`{ dpop: true }`, RFC 9449, with the API's
// COCART_JWT_DPOP): every request to the API carries a proof signed by a
// P-256 key made with WebCrypto as *non-extractable*, so that no script,
// not even one injected into the page, can read the private key; in a
// browser the key pair is kept in IndexedDB (a reload, or a new tab, uses
// the same key), elsewhere in memory. The API binds the session to that key:
// the access token is sent as `Authorization: DPoP`, and a token or refresh
// cookie taken elsewhere is worthless without the key. The client follows
// the server's `DPoP-Nonce` when the API asks for one (COCART_JWT_DPOP_NONCE).

const encoder = new TextEncoder();

function b64url(bytes) {
  let binary = "";
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function idbRequest(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function idbDone(transaction) {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onerror = transaction.onabort = () => reject(transaction.error);
  });
}

// A DPoP key pair and the proofs it signs. Make one with `DPoPKey.load()`.
export class DPoPKey {
  constructor(keyPair, publicJwk) {
    this.keyPair = keyPair;
    this.jwk = publicJwk; // kty, crv, x, y: the public key only
  }

  // The key pair of this browser profile (IndexedDB database `storeName`),
  // made on first use; without IndexedDB (Node), a new one in memory.
  static async load({ storeName = "cocart-jwt-dpop" } = {}) {
    const keyPair = globalThis.indexedDB
      ? await DPoPKey.#stored(storeName)
      : await DPoPKey.#generate();
    const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", keyPair.publicKey);
    return new DPoPKey(keyPair, { kty, crv, x, y });
  }

  // P-256 for ES256; `extractable: false` keeps the private key out of reach
  // of every script (exportKey refuses it); the public key stays readable.
  static #generate() {
    return crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
      "sign",
      "verify",
    ]);
  }

  static async #stored(storeName) {
    const open = indexedDB.open(storeName, 1);
    open.onupgradeneeded = () => open.result.createObjectStore("keys");
    const db = await idbRequest(open);
    try {
      const read = (store) => idbRequest(store.get("dpop"));
      const found = await read(db.transaction("keys").objectStore("keys"));
      if (found) return found;
      const keyPair = await DPoPKey.#generate();
      // The CryptoKey objects are stored as they are: still non-extractable.
      // `add` fails if another tab stored one first; then that one is used.
      const write = db.transaction("keys", "readwrite");
      write.objectStore("keys").add(keyPair, "dpop");
      try {
        await idbDone(write);
        return keyPair;
      } catch {
        return await read(db.transaction("keys").objectStore("keys"));
      }
    } finally {
      db.close();
    }
  }

  // Forget the stored key pair (the next load makes a new one).
  static async forget({ storeName = "cocart-jwt-dpop" } = {}) {
    if (globalThis.indexedDB) await idbRequest(indexedDB.deleteDatabase(storeName));
  }

  // A proof for one request: `method` and `url` (its query and fragment are
  // left out of `htu`), with `ath` for an access token and the server's nonce.
  async proof(method, url, { accessToken = null, nonce = null } = {}) {
    const target = new URL(url);
    target.search = "";
    target.hash = "";
    const header = { typ: "dpop+jwt", alg: "ES256", jwk: this.jwk };
    const claims = {
      jti: crypto.randomUUID(),
      htm: method.toUpperCase(),
      htu: target.href,
      iat: Math.floor(Date.now() / 1000),
    };
    if (accessToken) {
      claims.ath = b64url(await crypto.subtle.digest("SHA-256", encoder.encode(accessToken)));
    }
    if (nonce) claims.nonce = nonce;
    const input = [header, claims].map((part) => b64url(encoder.encode(JSON.stringify(part))));
    const signed = input.join(".");
    // WebCrypto's ECDSA signature is r || s, 64 bytes: the JWS form of ES256.
    const signature = await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      this.keyPair.privateKey,
      encoder.encode(signed),
    );
    return `${signed}.${b64url(signature)}`;
  }
}

export class AuthClient {
  constructor(
    baseUrl,
    {
      prefix = "/auth",
      onLogout = () => {},
      cookies = false,
      csrfCookie = "cocart_csrf",
      csrfHeader = "X-CSRF-Token",
      lockName = "cocart-jwt-refresh",
      dpop = false,
      dpopStore = "cocart-jwt-dpop",
    } = {},
  ) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.prefix = prefix;
    this.onLogout = onLogout;
    this.cookies = cookies;
    this.csrfCookie = csrfCookie;
    this.csrfHeader = csrfHeader;
    this.lockName = lockName;
    this.accessToken = null;
    this.refreshToken = null; // JSON mode only: in cookie mode, no script sees it
    this.refreshing = null; // the refresh in flight, shared by concurrent calls
    // DPoP: `true` (a key of this browser profile), or a DPoPKey of your own.
    this.dpop = Boolean(dpop);
    this.dpopKey = dpop instanceof DPoPKey ? Promise.resolve(dpop) : null;
    this.dpopStore = dpopStore;
    this.dpopNonce = null; // the server's latest DPoP-Nonce, if it sends one
    this.tokenType = "Bearer"; // "DPoP" once the API bound the session to the key
  }

  // The DPoP key, loaded (or made) once.
  #key() {
    this.dpopKey ??= DPoPKey.load({ storeName: this.dpopStore });
    return this.dpopKey;
  }

  async #proof(method, url, accessToken = null) {
    const key = await this.#key();
    return key.proof(method, url, { accessToken, nonce: this.dpopNonce });
  }

  // Remember the server's nonce; whether the answer asks to retry with it.
  #nonce(response) {
    const nonce = response.headers.get("DPoP-Nonce");
    if (nonce) this.dpopNonce = nonce;
    const challenge = response.headers.get("WWW-Authenticate") ?? "";
    return response.status === 401 && nonce !== null && challenge.includes("use_dpop_nonce");
  }

  // Whether a refresh can be tried: in cookie mode the cookie may be there.
  get canRefresh() {
    return this.cookies || this.refreshToken !== null;
  }

  async login(username, password) {
    const body = await this.#post(`${this.prefix}/login`, { username, password });
    this.#store(body);
    return body;
  }

  async logout() {
    try {
      if (this.cookies) {
        // The API revokes the cookie's session and clears the cookies.
        await this.#post(`${this.prefix}/revoke`);
      } else if (this.refreshToken) {
        await this.#post(`${this.prefix}/revoke`, { refresh_token: this.refreshToken });
      }
    } finally {
      this.accessToken = this.refreshToken = null;
    }
  }

  // After a page load in cookie mode: get an access token from the refresh
  // cookie. Resolves to whether the user is still logged in.
  async restore() {
    if (!this.canRefresh) return false;
    // No CSRF cookie: no session to restore (the refresh cookie goes with it).
    if (this.cookies && this.#readCookie(this.csrfCookie) === null) return false;
    try {
      await this.refresh();
      return true;
    } catch {
      return false;
    }
  }

  // fetch() with the access token; on a 401, refresh once and retry.
  async fetch(path, init = {}) {
    if (this.accessToken === null && this.cookies) await this.refresh();
    let response = await this.#authorized(path, init);
    if (this.dpop && this.#nonce(response)) response = await this.#authorized(path, init);
    if (response.status !== 401 || !this.canRefresh) return response;
    await this.refresh();
    return this.#authorized(path, init);
  }

  refresh() {
    this.refreshing ??= this.#refreshOnce()
      .then((body) => this.#store(body))
      .catch((error) => {
        this.accessToken = this.refreshToken = null;
        this.onLogout(error);
        throw error;
      })
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  // One refresh request; in cookie mode under a lock shared by every tab, so
  // that two tabs never send the same refresh cookie at once.
  #refreshOnce() {
    if (!this.cookies) {
      return this.#post(`${this.prefix}/refresh-token`, { refresh_token: this.refreshToken });
    }
    const request = () => this.#post(`${this.prefix}/refresh-token`);
    const locks = globalThis.navigator?.locks;
    return locks ? locks.request(this.lockName, request) : request();
  }

  async #authorized(path, init) {
    const headers = new Headers(init.headers);
    const url = this.baseUrl + path;
    if (this.accessToken && this.tokenType === "DPoP") {
      // A bound token goes with a proof for this very request and token.
      headers.set("Authorization", `DPoP ${this.accessToken}`);
      headers.set("DPoP", await this.#proof(init.method ?? "GET", url, this.accessToken));
    } else if (this.accessToken) {
      headers.set("Authorization", `Bearer ${this.accessToken}`);
    }
    const response = await fetch(url, { ...init, headers });
    if (this.dpop) this.#nonce(response);
    return response;
  }

  // A token route; with DPoP, once more with the server's nonce if it asks.
  async #post(path, json) {
    if (!this.dpop) return this.#postOnce(path, json);
    try {
      return await this.#postOnce(path, json);
    } catch (error) {
      if (error.code !== "use_dpop_nonce") throw error;
      return this.#postOnce(path, json);
    }
  }

  async #postOnce(path, json) {
    const headers = {};
    const init = { method: "POST", headers };
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    if (this.cookies) {
      init.credentials = "include";
      const csrf = this.#readCookie(this.csrfCookie);
      if (csrf) headers[this.csrfHeader] = csrf;
    }
    if (this.dpop) headers.DPoP = await this.#proof("POST", this.baseUrl + path);
    const response = await fetch(this.baseUrl + path, init);
    if (this.dpop) this.#nonce(response);
    const body = await response.json();
    if (!response.ok) {
      const error = new Error(body.message);
      error.code = body.error;
      error.status = response.status;
      throw error;
    }
    return body;
  }

  #readCookie(name) {
    const cookies = globalThis.document?.cookie ?? "";
    for (const pair of cookies.split("; ")) {
      const at = pair.indexOf("=");
      if (at > 0 && pair.slice(0, at) === name) return decodeURIComponent(pair.slice(at + 1));
    }
    return null;
  }

  #store(body) {
    this.accessToken = body.access_token;
    this.tokenType = body.token_type === "DPoP" ? "DPoP" : "Bearer";
    // Absent in cookie mode: the refresh token is in its HttpOnly cookie.
    this.refreshToken = this.cookies ? null : body.refresh_token;
  }
}
