// Request signing, version 1, exactly as docs/signing.md says, with the browser's Web Crypto.
// The same cases as domain/signing.py: tests/e2e/test_console.py runs every vector of
// docs/signing-vectors.json through these functions in Chromium.

const utf8 = new TextEncoder();

export const HEADER_KEY = "X-Showdist-Key";
export const HEADER_TIMESTAMP = "X-Showdist-Timestamp";
export const HEADER_NONCE = "X-Showdist-Nonce";
export const HEADER_SIGNATURE = "X-Showdist-Signature";

export function hasWebCrypto() {
  return Boolean(globalThis.isSecureContext && globalThis.crypto && globalThis.crypto.subtle);
}

const HEX = /^[0-9A-Fa-f]{2}$/;

// Step 3: `+` is a space, `%XX` the byte XX, a `%` not followed by two hex digits a literal
// percent sign; any other character its UTF-8 bytes.
function decodeComponent(text) {
  const out = [];
  for (let i = 0; i < text.length; ) {
    const ch = text[i];
    if (ch === "+") {
      out.push(0x20);
      i += 1;
    } else if (ch === "%" && HEX.test(text.slice(i + 1, i + 3))) {
      out.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const cp = text.codePointAt(i);
      const s = String.fromCodePoint(cp);
      out.push(...utf8.encode(s));
      i += s.length;
    }
  }
  return Uint8Array.from(out);
}

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

const UNRESERVED = /^[A-Za-z0-9\-_.~]$/;

// Step 6: RFC 3986 style, byte by byte, upper-case hex.
function encodeBytes(bytes) {
  let out = "";
  for (const b of bytes) {
    const ch = String.fromCharCode(b);
    out += b < 0x80 && UNRESERVED.test(ch) ? ch : "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

export function canonicalQuery(rawQuery) {
  const pairs = [];
  for (const piece of rawQuery.split("&")) {
    if (piece === "") continue;
    const at = piece.indexOf("=");
    const name = at < 0 ? piece : piece.slice(0, at);
    const value = at < 0 ? "" : piece.slice(at + 1);
    pairs.push([decodeComponent(name), decodeComponent(value)]);
  }
  pairs.sort((p, q) => compareBytes(p[0], q[0]) || compareBytes(p[1], q[1]));
  return pairs.map(([n, v]) => `${encodeBytes(n)}=${encodeBytes(v)}`).join("&");
}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

function base64(buffer) {
  let text = "";
  for (const b of new Uint8Array(buffer)) text += String.fromCharCode(b);
  return btoa(text);
}

export function base64Bytes(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export async function sha256Hex(bytes) {
  return hex(await crypto.subtle.digest("SHA-256", bytes));
}

// `target` is the path and query as they go over the wire (percent-encoding untouched).
export function splitTarget(target) {
  const at = target.indexOf("?");
  const path = at < 0 ? target : target.slice(0, at);
  return { path: path || "/", query: at < 0 ? "" : target.slice(at + 1) };
}

export async function stringToSign(method, target, keyId, timestamp, nonce, body) {
  const { path, query } = splitTarget(target);
  return [
    "SHOWDIST-V1",
    method.toUpperCase(),
    path,
    canonicalQuery(query),
    keyId,
    String(timestamp),
    nonce,
    await sha256Hex(body),
  ].join("\n");
}

// The PKCS #8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410), as Web Crypto imports it.
const ED25519_PKCS8_PREFIX = [
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

async function signatureOf(key, text) {
  const message = utf8.encode(text);
  if (key.algorithm === "ed25519") {
    const der = Uint8Array.from([...ED25519_PKCS8_PREFIX, ...key.seed]);
    const k = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]);
    return base64(await crypto.subtle.sign({ name: "Ed25519" }, k, message));
  }
  const k = await crypto.subtle.importKey(
    "raw",
    utf8.encode(key.secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return base64(await crypto.subtle.sign("HMAC", k, message));
}

// 32 characters of [A-Za-z0-9_-] from 24 random bytes (as showdist's own `new_nonce()`).
export function newNonce() {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return base64(bytes).replace(/\+/g, "-").replace(/\//g, "_");
}

// The four headers of a signed request. `key`: {keyId, algorithm: "hmac", secret} or
// {keyId, algorithm: "ed25519", seed: Uint8Array}; `body`: the exact bytes sent.
export async function signRequest(key, method, target, body, { timestamp, nonce } = {}) {
  const ts = timestamp ?? Math.floor(Date.now() / 1000);
  const n = nonce ?? newNonce();
  const text = await stringToSign(method, target, key.keyId, ts, n, body);
  return {
    stringToSign: text,
    headers: {
      [HEADER_KEY]: key.keyId,
      [HEADER_TIMESTAMP]: String(ts),
      [HEADER_NONCE]: n,
      [HEADER_SIGNATURE]: await signatureOf(key, text),
    },
  };
}
