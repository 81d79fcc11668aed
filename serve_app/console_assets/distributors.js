// Distributors: GET /admin/v1/distributors, one's GET /admin/v1/distributors/{id} (keys) and
// …/grants; create, keys, grants, suspend and activate, the rate limit.

import { path } from "./api.js";
import { confirmAction, field, h, optionalInt, table } from "./dom.js";

const SCOPES = ["all", "supplier", "city", "category", "show", "session"];

function createForm(api, after) {
  const name = h("input", { name: "name", required: true, maxlength: 200 });
  const limit = h("input", { name: "rate_limit_per_s", inputmode: "numeric", placeholder: "platform default" });
  return h(
    "form",
    {
      class: "inline card",
      "data-form": "new-distributor",
      onsubmit: async (event) => {
        event.preventDefault();
        const body = { name: name.value };
        const perS = optionalInt(limit);
        if (perS !== null) body.rate_limit_per_s = perS;
        const d = await api.call("POST", "/admin/v1/distributors", body);
        await after(`Distributor ${d.id} (${d.name}) created.`, d.id);
      },
    },
    h("strong", {}, "New distributor"),
    field("Name", name),
    field("Rate limit (requests/s, 1–100000)", limit),
    h("button", { type: "submit" }, "Create"),
  );
}

function keysPart(api, d, after) {
  const publicKey = h("input", { name: "public_key", size: 48, placeholder: "base64 of the raw 32-byte public key" });
  const newKey = async (body) => {
    const k = await api.call("POST", path`/admin/v1/distributors/${d.id}/keys`, body);
    await after(`Key ${k.key_id} (${k.type}) created.`, d.id, k);
  };
  return h(
    "div",
    { class: "card", "data-part": "keys" },
    h("h3", {}, "Keys"),
    table(
      [
        ["key", (k) => h("code", {}, k.key_id)],
        ["type", (k) => k.type],
        ["status", (k) => k.status],
        ["created", (k) => k.created_at],
        ["expires", (k) => k.expires_at],
        [
          "",
          (k) =>
            k.status === "active"
              ? h(
                  "button",
                  {
                    type: "button",
                    class: "danger",
                    "data-revoke-key": k.key_id,
                    onclick: async () => {
                      if (!(await confirmAction(`Revoke key ${k.key_id}? Requests signed with it are refused from now on.`))) return;
                      await api.call("DELETE", path`/admin/v1/keys/${k.key_id}`);
                      await after(`Key ${k.key_id} revoked.`, d.id);
                    },
                  },
                  "Revoke",
                )
              : "",
        ],
      ],
      d.keys,
      { "data-table": "keys" },
    ),
    h(
      "p",
      { class: "inline" },
      h("button", { type: "button", "data-action": "new-hmac-key", onclick: () => newKey({ type: "hmac" }) }, "New HMAC key"),
      " ",
      field("Ed25519 public key", publicKey),
      h("button", { type: "button", onclick: () => newKey({ type: "ed25519", public_key: publicKey.value.trim() }) }, "Register Ed25519 key"),
    ),
  );
}

function grantsPart(api, d, grants, after) {
  const scope = h("select", { name: "scope" }, SCOPES.map((s) => h("option", { value: s }, s)));
  const value = h("input", { name: "value", placeholder: "id or name (not for all)" });
  const from = h("input", { name: "valid_from", placeholder: "2026-12-01T00:00:00+08:00" });
  const until = h("input", { name: "valid_until", placeholder: "RFC 3339, optional" });
  return h(
    "div",
    { class: "card", "data-part": "grants" },
    h("h3", {}, "Grants"),
    table(
      [
        ["scope", (g) => g.scope],
        ["value", (g) => g.value],
        ["valid from", (g) => g.valid_from],
        ["valid until", (g) => g.valid_until],
        ["created", (g) => g.created_at],
        ["revoked", (g) => g.revoked_at],
        [
          "",
          (g) =>
            g.revoked_at === null
              ? h(
                  "button",
                  {
                    type: "button",
                    class: "danger",
                    "data-revoke-grant": g.id,
                    onclick: async () => {
                      if (!(await confirmAction(`Revoke grant ${g.id} (${g.scope} ${g.value ?? ""})?`))) return;
                      await api.call("DELETE", path`/admin/v1/grants/${g.id}`);
                      await after(`Grant ${g.id} revoked.`, d.id);
                    },
                  },
                  "Revoke",
                )
              : "",
        ],
      ],
      grants,
      { "data-table": "grants" },
    ),
    h(
      "form",
      {
        class: "inline",
        "data-form": "new-grant",
        onsubmit: async (event) => {
          event.preventDefault();
          const body = { scope: scope.value };
          if (value.value.trim()) body.value = value.value.trim();
          if (from.value.trim()) body.valid_from = from.value.trim();
          if (until.value.trim()) body.valid_until = until.value.trim();
          const g = await api.call("POST", path`/admin/v1/distributors/${d.id}/grants`, body);
          await after(`Grant ${g.id} (${g.scope}) added.`, d.id);
        },
      },
      field("Scope", scope),
      field("Value", value),
      field("Valid from", from),
      field("Valid until", until),
      h("button", { type: "submit" }, "Add grant"),
    ),
  );
}

function accountPart(api, d, after) {
  const limit = h("input", { name: "rate_limit_per_s", inputmode: "numeric", value: d.rate_limit_per_s ?? "", placeholder: "platform default" });
  const toggle =
    d.status === "active"
      ? h("button", {
          type: "button",
          class: "danger",
          "data-action": "suspend",
          onclick: async () => {
            if (!(await confirmAction(`Suspend ${d.name} (${d.id})? Every key of it is refused until it is activated.`))) return;
            await api.call("POST", path`/admin/v1/distributors/${d.id}/suspend`);
            await after(`${d.id} suspended.`, d.id);
          },
        }, "Suspend")
      : h("button", {
          type: "button",
          "data-action": "activate",
          onclick: async () => {
            await api.call("POST", path`/admin/v1/distributors/${d.id}/activate`);
            await after(`${d.id} activated.`, d.id);
          },
        }, "Activate");
  return h(
    "div",
    { class: "card", "data-part": "account" },
    h("h3", {}, "Account"),
    h("p", {}, "Status: ", h("span", { "data-value": "status" }, d.status), " ", toggle),
    h(
      "form",
      {
        class: "inline",
        "data-form": "rate-limit",
        onsubmit: async (event) => {
          event.preventDefault();
          const r = await api.call("PATCH", path`/admin/v1/distributors/${d.id}`, { rate_limit_per_s: optionalInt(limit) });
          await after(`Rate limit of ${r.id}: ${r.rate_limit_per_s ?? "the platform's default"}.`, d.id);
        },
      },
      field("Rate limit (requests/s; empty: platform default)", limit),
      h("button", { type: "submit" }, "Set rate limit"),
    ),
  );
}

// A new key's secret, shown once. It is put on the page as soon as the platform answers,
// before the page is read again, and that same element is kept by the next render: a refresh
// that fails leaves it where it is.
function secretBox(key) {
  return h(
    "div",
    { class: "secret", "data-new-secret": key.key_id },
    h("strong", {}, `Secret of ${key.key_id}, shown this once: `),
    h("span", { "data-value": "secret" }, key.secret),
    h("p", {}, "Copy it now: the platform cannot show it again."),
  );
}

// `ctx`: {api, root, say, begin} (app.js); `secret`: the element of a secret just made.
export async function distributorsPage(ctx, openId = null, secret = null) {
  const { api, root, say } = ctx;
  const live = ctx.begin();
  const after = async (message, id, key = null) => {
    say(message);
    const box = key?.secret ? secretBox(key) : null;
    if (box) {
      root.querySelector("[data-new-secret]")?.remove();
      root.prepend(box);
    }
    await distributorsPage(ctx, id, box);
  };
  const open = (id) => distributorsPage(ctx, id);
  const list = await api.all("/admin/v1/distributors?limit=500");
  let panel = null;
  if (openId) {
    const [d, grants] = await Promise.all([
      api.get(path`/admin/v1/distributors/${openId}`),
      api.get(path`/admin/v1/distributors/${openId}/grants`),
    ]);
    panel = h(
      "section",
      { class: "card", "data-distributor": d.id },
      h("h2", {}, `${d.name} `, h("code", {}, d.id)),
      secret,
      h("div", { class: "grid" }, accountPart(api, d, after), keysPart(api, d, after)),
      grantsPart(api, d, grants.items, after),
    );
  }
  if (!live()) return;
  root.replaceChildren(
    h("h1", {}, "Distributors"),
    createForm(api, after),
    table(
      [
        ["distributor", (d) => h("button", { type: "button", "data-open": d.id, onclick: () => open(d.id) }, d.id)],
        ["name", (d) => d.name],
        ["status", (d) => d.status],
        ["rate limit /s", (d) => d.rate_limit_per_s ?? "default", { num: true }],
        ["created", (d) => d.created_at],
      ],
      list,
      { "data-table": "distributors" },
    ),
    panel ?? secret,
  );
}
