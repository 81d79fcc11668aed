// Suppliers: GET /admin/v1/suppliers and each one's GET /admin/v1/suppliers/{id}.

import { path } from "./api.js";
import { confirmAction, field, h, optionalInt, shown, table } from "./dom.js";

const percent = (rate) => `${(rate * 100).toFixed(1)} %`;
const ms = (value) => `${value.toFixed(1)} ms`;

function statsCard(s) {
  const st = s.stats;
  return h(
    "div",
    { class: "card", "data-part": "stats" },
    h("h3", {}, "Live stats"),
    h("p", { class: "muted" }, "The first replica's window of its last calls."),
    table(
      [
        ["figure", (r) => r[0]],
        ["value", (r) => r[1], { num: true }],
      ],
      [
        ["calls", st.calls],
        ["done", st.done],
        ["failed", st.failed],
        ["unknown result", st.unknown],
        ["success rate", percent(st.success_rate)],
        ["unknown-result rate", percent(st.unknown_rate)],
        ["latency p50", ms(st.latency_p50_ms)],
        ["latency p95", ms(st.latency_p95_ms)],
        ["latency p99", ms(st.latency_p99_ms)],
        ["in flight", st.in_flight],
        ["circuit", st.circuit],
      ],
      { "data-table": "stats" },
    ),
  );
}

function pollingCard(api, s, refresh, say) {
  const p = s.polling;
  const interval = h("input", { name: "interval_ms", inputmode: "numeric", value: p.interval_override_ms ?? "", placeholder: "adaptive" });
  const giveUp = h("input", { name: "give_up_ms", inputmode: "numeric", value: p.give_up_override_ms ?? "", placeholder: "adaptive" });
  const form = h(
    "form",
    {
      class: "inline",
      "data-form": "polling",
      onsubmit: async (event) => {
        event.preventDefault();
        const body = { interval_ms: optionalInt(interval), give_up_ms: optionalInt(giveUp) };
        const set = await api.call("PUT", path`/admin/v1/suppliers/${s.id}/polling`, body);
        say(`Polling of ${s.id}: interval ${shown(set.interval_ms)} ms, give up ${shown(set.give_up_ms)} ms (empty: adaptive).`);
        await refresh();
      },
    },
    field("Interval override (ms, 100–3600000)", interval),
    field("Give-up override (ms, 100–604800000)", giveUp),
    h("button", { type: "submit" }, "Set polling"),
  );
  return h(
    "div",
    { class: "card", "data-part": "polling" },
    h("h3", {}, "Polling"),
    table(
      [
        ["setting", (r) => r[0]],
        ["value", (r) => r[1], { num: true }],
      ],
      [
        ["poll interval", `${p.interval_s} s`],
        ["give up after", `${p.give_up_after_s} s`],
        ["adaptive", p.adaptive ? "yes" : "no"],
        ["interval override", p.interval_override_ms === null ? "none" : `${p.interval_override_ms} ms`],
        ["give-up override", p.give_up_override_ms === null ? "none" : `${p.give_up_override_ms} ms`],
      ],
      { "data-table": "polling" },
    ),
    form,
    h("p", { class: "muted" }, "Leave a field empty to restore the adaptive figure."),
  );
}

function replicasCard(api, s, refresh, say) {
  const count = h("input", { name: "replicas", type: "number", min: 1, max: 32, value: s.replicas });
  return h(
    "div",
    { class: "card", "data-part": "replicas" },
    h("h3", {}, "Replicas"),
    h("p", {}, h("span", { "data-value": "replicas" }, s.replicas), ` (${s.placement}; status ${s.status})`),
    h(
      "form",
      {
        class: "inline",
        "data-form": "replicas",
        onsubmit: async (event) => {
          event.preventDefault();
          const n = optionalInt(count);
          if (n === null) throw new Error("replicas: a number from 1 to 32");
          if (!(await confirmAction(`Scale ${s.name} (${s.id}) from ${s.replicas} to ${n} replicas?`))) return;
          const r = await api.call("PUT", path`/admin/v1/suppliers/${s.id}/replicas`, { replicas: n });
          say(`Scaled ${r.supplier_id}: ${r.before} → ${r.replicas} replicas (${r.placement}).`);
          await refresh();
        },
      },
      field("Replicas (1–32)", count),
      h("button", { type: "submit" }, "Scale"),
    ),
    h("p", { class: "muted" }, `Negotiations: ${s.negotiations.active} active, ${s.negotiations.flagged} flagged, ${s.negotiations.resolved} resolved.`),
  );
}

function syncCard(api, s, refresh, say) {
  const c = s.catalog_sync;
  const sync = h(
    "button",
    {
      type: "button",
      onclick: async () => {
        const r = await api.call("POST", path`/admin/v1/suppliers/${s.id}/sync`);
        say(`Catalog of ${r.supplier_id} pulled: ${r.rows_changed} rows changed.`);
        await refresh();
      },
    },
    "Sync catalog now",
  );
  if (c === null) return h("div", { class: "card", "data-part": "sync" }, h("h3", {}, "Catalog sync"), h("p", {}, "Never synced."), sync);
  return h(
    "div",
    { class: "card", "data-part": "sync" },
    h("h3", {}, "Catalog sync"),
    h("p", {}, `Last: ${c.synced_at}: ${c.shows} shows, ${c.sessions} sessions, ${c.tiers} tiers, ${c.rows_changed} rows changed; ${c.tiers_refused} tiers refused, ${c.tiers_normalised} normalised.`),
    c.refused.length
      ? table(
          [
            ["tier", (t) => t.tier_id],
            ["show / session / tier ref", (t) => `${t.show_ref} / ${t.session_ref} / ${t.tier_ref}`],
            ["reason", (t) => t.reason],
          ],
          c.refused,
          { "data-table": "refused" },
        )
      : h("p", { class: "muted" }, "No tier refused."),
    sync,
  );
}

// `ctx`: {api, root, say, begin} (app.js); `begin()` starts a render and tells whether it is
// still the latest when its data has arrived.
export async function suppliersPage(ctx) {
  const { api, root, say } = ctx;
  const live = ctx.begin();
  const list = await api.get("/admin/v1/suppliers");
  const details = await Promise.all(list.items.map((s) => api.get(path`/admin/v1/suppliers/${s.id}`)));
  if (!live()) return;
  const refresh = () => suppliersPage(ctx);
  root.replaceChildren(
    h("h1", {}, "Suppliers"),
    h("button", { type: "button", "data-action": "refresh", onclick: refresh }, "Refresh"),
    ...details.map((s) =>
      h(
        "section",
        { class: "card supplier", "data-supplier": s.id },
        h("h2", {}, `${s.name} `, h("code", {}, s.id), ` · ${s.gateway} · ${s.status}`),
        h("div", { class: "grid" }, statsCard(s), pollingCard(api, s, refresh, say), replicasCard(api, s, refresh, say), syncCard(api, s, refresh, say)),
      ),
    ),
  );
}
