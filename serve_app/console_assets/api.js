// The admin API as the console calls it: every request signed in this tab (signing.js).

import { signRequest } from "./signing.js";

const utf8 = new TextEncoder();
const STORE = "showdist.console.key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

// A call made with an Api object after its operator signed out: refused in the tab, and not
// shown as an error (the sign-in page is what the operator sees then).
export class SignedOut extends Error {
  constructor() {
    super("signed out");
  }
}

// JSON with every integer kept exact: one past 2^53 becomes a BigInt (money is whole minor
// units and must never be rounded by a float). That needs the reviver's source text
// (`context.source`, "JSON.parse source text access": Chromium 114+, Firefox 135+, Safari
// 18.4+); a browser without it cannot read such an integer exactly, so the answer is refused
// rather than shown rounded.
export function parseJson(text) {
  return JSON.parse(text, (_key, value, context) => {
    if (typeof value !== "number" || !Number.isInteger(value) || Number.isSafeInteger(value)) return value;
    const source = context?.source;
    if (source === undefined) throw new Error("this browser cannot read integers past 2^53 exactly (no JSON.parse source text access): use a current Chromium, Firefox or Safari");
    return /^-?\d+$/.test(source) ? BigInt(source) : value;
  });
}

async function errorOf(response) {
  const text = await response.text();
  try {
    const { error } = parseJson(text);
    return new ApiError(response.status, error.code, error.message);
  } catch {
    return new ApiError(response.status, "http_error", `HTTP ${response.status}`);
  }
}

export class Api {
  constructor(keyId, secret) {
    this.key = { keyId, algorithm: "hmac", secret };
  }

  static stored() {
    const raw = sessionStorage.getItem(STORE);
    if (!raw) return null;
    const { keyId, secret } = JSON.parse(raw);
    return new Api(keyId, secret);
  }

  keep() {
    sessionStorage.setItem(STORE, JSON.stringify({ keyId: this.key.keyId, secret: this.key.secret }));
  }

  // Forget the secret: every later call of this object is refused in the tab (SignedOut).
  drop() {
    this.key = null;
  }

  static forget() {
    sessionStorage.removeItem(STORE);
  }

  get keyId() {
    return this.key?.keyId ?? "";
  }

  // The raw response of a signed request (`target`: path and query, already encoded).
  async send(method, target, body) {
    if (this.key === null) throw new SignedOut();
    const bytes = body === undefined ? new Uint8Array(0) : utf8.encode(JSON.stringify(body));
    const { headers } = await signRequest(this.key, method, target, bytes);
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(target, {
      method,
      headers,
      body: body === undefined ? undefined : bytes,
      credentials: "omit",
      cache: "no-store",
    });
    if (this.key === null) throw new SignedOut(); // (signed out while the call was under way)
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  async call(method, target, body) {
    const response = await this.send(method, target, body);
    return parseJson(await response.text());
  }

  get(target) {
    return this.call("GET", target);
  }

  // Every item of a list, following `next_cursor` to the end.
  async all(target) {
    const items = [];
    let cursor = null;
    do {
      const sep = target.includes("?") ? "&" : "?";
      const page = await this.get(cursor ? `${target}${sep}cursor=${encodeURIComponent(cursor)}` : target);
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    return items;
  }
}

export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ""), "");
}
