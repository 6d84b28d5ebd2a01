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

  #authorized(path, init) {
    const headers = new Headers(init.headers);
    if (this.accessToken) headers.set("Authorization", `Bearer ${this.accessToken}`);
    return fetch(this.baseUrl + path, { ...init, headers });
  }

  async #post(path, json) {
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
    const response = await fetch(this.baseUrl + path, init);
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
    // Absent in cookie mode: the refresh token is in its HttpOnly cookie.
    this.refreshToken = this.cookies ? null : body.refresh_token;
  }
}
