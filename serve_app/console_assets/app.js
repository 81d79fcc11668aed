// The console's shell: sign-in, the pages, and what the user sees of every error.

import { Api, ApiError, SignedOut } from "./api.js";
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

// Every render of a page (by show(), or by a page's own refresh after an action) takes the
// next generation; one whose data arrives after a newer render began draws nothing, so a slow
// answer never paints over the page the operator moved on to (or over the sign-in form).
let generation = 0;
const begin = () => {
  const mine = ++generation;
  return () => mine === generation;
};
let showing = 0; // show()'s own count: only the latest marks the page ready

const EXPLAINED = {
  key_unknown: "There is no such key.",
  key_revoked: "This key was revoked.",
  key_expired: "This key has expired.",
  signature_invalid: "The secret is wrong for this key.",
  forbidden: "This is not an admin key.",
  timestamp_out_of_window: "This computer's clock is more than 5 minutes off the platform's.",
};

function explained(error) {
  const code = error instanceof ApiError ? error.code : "network_error";
  return { code, text: `(${code}): ${EXPLAINED[code] ?? String(error?.message ?? error)}` };
}

function say(message) {
  $("banner").hidden = true;
  $("notice").textContent = message;
  $("notice").hidden = false;
}

function complain(error) {
  if (error instanceof SignedOut) return; // (a call begun before the operator signed out)
  const text = String(error?.message ?? error);
  $("notice").hidden = true;
  $("banner").textContent = text;
  $("banner").dataset.code = error instanceof ApiError ? error.code : "";
  $("banner").hidden = false;
  if (error instanceof ApiError && error.status === 401) {
    const { code, text: why } = explained(error);
    signOut(`Signed out ${why}`, code);
  }
}

function showSignIn(message, code = "") {
  $("nav").hidden = true;
  $("who").hidden = true;
  $("page").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message ?? "";
  $("signin-error").dataset.code = code;
  $("signin-error").hidden = !message;
}

function signOut(message, code = "") {
  begin(); // whatever is still loading draws nothing
  api?.drop(); // the secret leaves this object; a call still under way is refused in the tab
  api = null;
  Api.forget();
  $("page").replaceChildren();
  $("who-key").textContent = "";
  showSignIn(message, code);
}

async function show() {
  if (api === null) return showSignIn();
  const mine = ++showing;
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
    await page({ api, root, say, begin });
  } finally {
    if (mine === showing && api !== null) root.dataset.ready = "true";
  }
}

async function signIn(event) {
  event.preventDefault();
  const button = $("signin-form").querySelector("button");
  const candidate = new Api($("key-id").value.trim(), $("key-secret").value);
  $("signin-error").hidden = true;
  button.disabled = true;
  try {
    await candidate.get("/admin/v1/suppliers"); // a signed call: the key works, or says why not
  } catch (error) {
    candidate.drop();
    const { code, text } = explained(error);
    showSignIn(`Refused ${text}`, code);
    return;
  } finally {
    button.disabled = false;
  }
  api = candidate;
  api.keep();
  $("key-secret").value = "";
  $("notice").hidden = true;
  $("banner").hidden = true;
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
