// A fetch() wrapper for a Flask-CoCart-JWT API: it sends the access token,
// refreshes it once on a 401 and retries the call. Concurrent calls share one
// refresh (so a page with many requests, or a retry of a lost response, never
// rotates the refresh token twice); a failed refresh means "logged out".
//
// Keep tokens in memory (or the refresh token in secure storage on mobile);
// never in localStorage on the web, where any script of the page can read it.

export class AuthClient {
  constructor(baseUrl, { prefix = "/auth", onLogout = () => {} } = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.prefix = prefix;
    this.onLogout = onLogout;
    this.accessToken = null;
    this.refreshToken = null;
    this.refreshing = null; // the refresh in flight, shared by concurrent calls
  }

  async login(username, password) {
    const body = await this.#post(`${this.prefix}/login`, { username, password });
    this.#store(body);
    return body;
  }

  async logout() {
    if (this.refreshToken) {
      await this.#post(`${this.prefix}/revoke`, { refresh_token: this.refreshToken });
    }
    this.accessToken = this.refreshToken = null;
  }

  // fetch() with the access token; on a 401, refresh once and retry.
  async fetch(path, init = {}) {
    let response = await this.#authorized(path, init);
    if (response.status !== 401 || !this.refreshToken) return response;
    await this.refresh();
    return this.#authorized(path, init);
  }

  refresh() {
    this.refreshing ??= this.#post(`${this.prefix}/refresh-token`, {
      refresh_token: this.refreshToken,
    })
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

  #authorized(path, init) {
    const headers = new Headers(init.headers);
    if (this.accessToken) headers.set("Authorization", `Bearer ${this.accessToken}`);
    return fetch(this.baseUrl + path, { ...init, headers });
  }

  async #post(path, json) {
    const response = await fetch(this.baseUrl + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(json),
    });
    const body = await response.json();
    if (!response.ok) {
      const error = new Error(body.message);
      error.code = body.error;
      error.status = response.status;
      throw error;
    }
    return body;
  }

  #store(body) {
    this.accessToken = body.access_token;
    this.refreshToken = body.refresh_token;
  }
}
