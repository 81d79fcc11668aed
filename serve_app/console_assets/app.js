// The console's shell: sign-in, the pages, and what the user sees of every error.

import { Api, ApiError } from "./api.js";
import { distributorsPage } from "./distributors.js";
import { ordersPage } from "./orders.js";
import { settlementPage } from "./settlement.js";
import { hasWebCrypto } from "./signing.js";
import { suppliersPage } from "./suppliers.js";

const PAGES = {
  suppliers: suppliersPage,
  orders: ordersPage,
  distributors: distributorsPage,
  settlement: settlementPage,
};

const $ = (id) => document.getElementById(id);
let api = null;

function say(message) {
  $("banner").hidden = true;
  $("notice").textContent = message;
  $("notice").hidden = false;
}

function complain(error) {
  const text = String(error?.message ?? error);
  $("banner").textContent = text;
  $("banner").dataset.code = error instanceof ApiError ? error.code : "";
  $("banner").hidden = false;
  if (error instanceof ApiError && error.status === 401) signOut(`Signed out: ${text}`);
}

function showSignIn(message) {
  $("nav").hidden = true;
  $("who").hidden = true;
  $("page").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message ?? "";
  $("signin-error").hidden = !message;
}

function signOut(message) {
  api = null;
  Api.forget();
  showSignIn(message);
}

async function show() {
  if (api === null) return showSignIn();
  const name = location.hash.replace(/^#\//, "") || "suppliers";
  const page = PAGES[name] ?? suppliersPage;
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("current", link.dataset.page === name);
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  $("who-key").textContent = api.keyId;
  const root = $("page");
  root.hidden = false;
  root.dataset.page = name;
  root.dataset.ready = "false";
  try {
    await page(api, root, say);
  } finally {
    root.dataset.ready = "true";
  }
}

async function signIn(event) {
  event.preventDefault();
  const candidate = new Api($("key-id").value.trim(), $("key-secret").value);
  $("signin-error").hidden = true;
  try {
    await candidate.get("/admin/v1/suppliers"); // a signed call: the key works, or says why not
  } catch (error) {
    const code = error instanceof ApiError ? error.code : "network_error";
    const explained = {
      key_unknown: "There is no such key.",
      key_revoked: "This key was revoked.",
      key_expired: "This key has expired.",
      signature_invalid: "The secret is wrong for this key.",
      forbidden: "This is not an admin key.",
      timestamp_out_of_window: "This computer's clock is more than 5 minutes off the platform's.",
    }[code];
    showSignIn(`Refused (${code}): ${explained ?? error.message}`);
    $("signin-error").dataset.code = code;
    return;
  }
  api = candidate;
  api.keep();
  $("key-secret").value = "";
  $("notice").hidden = true;
  await show();
}

window.addEventListener("console-error", (event) => complain(event.detail));
window.addEventListener("unhandledrejection", (event) => complain(event.reason));
window.addEventListener("error", (event) => complain(event.error ?? event.message));
window.addEventListener("hashchange", () => {
  $("notice").hidden = true;
  $("banner").hidden = true;
  show().catch(complain);
});
$("sign-out").addEventListener("click", () => signOut("Signed out."));
$("signin-form").addEventListener("submit", (event) => signIn(event).catch(complain));

if (!hasWebCrypto()) {
  $("no-crypto").hidden = false;
  $("signin-form").querySelector("button").disabled = true;
  showSignIn();
} else {
  api = Api.stored();
  show().catch(complain);
}
document.documentElement.dataset.console = "loaded";
