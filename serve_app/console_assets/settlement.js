// Settlement: GET /admin/v1/settlement/periods (chart and table), a period's snapshot
// (GET …/periods/{period}), closing it (POST …/close) and its flows as CSV (GET …/flows.csv).

import { path } from "./api.js";
import { periodsChart, SERIES } from "./chart.js";
import { confirmAction, h, table } from "./dom.js";
import { formatMoney } from "./money.js";

const check = (ok) => h("span", { class: ok ? "ok" : "error" }, ok ? "holds" : "FAILS");

async function download(api, period, say) {
  const response = await api.send("GET", path`/admin/v1/settlement/periods/${period}/flows.csv`);
  const disposition = response.headers.get("Content-Disposition") ?? "";
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? `flows-${period}.csv`;
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  say(`Saved ${name} (${blob.size} bytes).`);
}

// A column of a row's `key`, in the row's own currency.
const moneyCol = (title, key) => [title, (r) => formatMoney(r[key], r.currency), { num: true }];

function snapshotPart(api, s, say, reload) {
  return h(
    "section",
    { class: "card", "data-snapshot": s.period },
    h("h2", {}, `Period ${s.period} `, h("span", { "data-value": "closed" }, s.closed ? "closed" : "open")),
    h("p", {}, s.closed ? `Statement closed at ${s.closed_at}, digest ` : `Snapshot as of flow ${s.as_of_flow_id}`, s.closed ? h("code", {}, s.digest) : "", ` · ${s.flows} flows`),
    h(
      "div",
      { class: "card", "data-part": "checks" },
      h("h3", {}, "Receivable ≥ settlement"),
      table(
        [
          ["currency", (c) => c.currency],
          moneyCol("receivable to date", "receivable_to_date"),
          moneyCol("settlement to date", "settlement_to_date"),
          ["to date", (c) => check(BigInt(c.receivable_to_date) >= BigInt(c.settlement_to_date))],
        ],
        s.currencies,
        { "data-table": "to-date" },
      ),
      h("p", {}, "Overall (to date and every order): ", h("span", { "data-check": "holds" }, check(s.holds))),
      h("p", {}, "To date: ", h("span", { "data-check": "to_date" }, check(s.checks.to_date)), " · every order: ", h("span", { "data-check": "orders" }, check(s.checks.orders)), " · this day's own flows (reported only: a day of refunds may be negative): ", h("span", { "data-check": "period" }, check(s.checks.period))),
      s.checks.violating_orders_count ? h("p", { class: "error" }, `${s.checks.violating_orders_count} orders violate it: ${s.checks.violating_orders.join(", ")}`) : null,
    ),
    h("h3", {}, "Totals"),
    table(
      [
        ["currency", (c) => c.currency],
        moneyCol("receivable +", "receivable_plus"),
        moneyCol("receivable −", "receivable_minus"),
        moneyCol("receivable net", "receivable_net"),
        moneyCol("settlement +", "settlement_plus"),
        moneyCol("settlement −", "settlement_minus"),
        moneyCol("settlement net", "settlement_net"),
        moneyCol("retained", "retained"),
        moneyCol("receivable to date", "receivable_to_date"),
        moneyCol("settlement to date", "settlement_to_date"),
        moneyCol("retained to date", "retained_to_date"),
      ],
      s.currencies,
      { "data-table": "totals" },
    ),
    h("h3", {}, "Per distributor (receivable)"),
    table(
      [
        ["distributor", (d) => d.distributor_id],
        ["currency", (d) => d.currency],
        moneyCol("plus", "receivable_plus"),
        moneyCol("minus", "receivable_minus"),
        moneyCol("net", "net"),
      ],
      s.distributors,
      { "data-table": "per-distributor" },
    ),
    h("h3", {}, "Per supplier (settlement)"),
    table(
      [
        ["supplier", (d) => d.supplier_id],
        ["currency", (d) => d.currency],
        moneyCol("plus", "settlement_plus"),
        moneyCol("minus", "settlement_minus"),
        moneyCol("net", "net"),
      ],
      s.suppliers,
      { "data-table": "per-supplier" },
    ),
    h(
      "p",
      {},
      h("button", { type: "button", "data-action": "download-csv", onclick: () => download(api, s.period, say) }, "Download flows (CSV)"),
      " ",
      s.closed
        ? ""
        : h(
            "button",
            {
              type: "button",
              class: "danger",
              "data-action": "close-period",
              onclick: async () => {
                if (!(await confirmAction(`Close period ${s.period}? Its statement is frozen; later flows book into the next open day.`))) return;
                const statement = await api.call("POST", path`/admin/v1/settlement/periods/${s.period}/close`);
                say(`Period ${statement.period} closed at ${statement.closed_at}.`);
                await reload(s.period);
              },
            },
            "Close period",
          ),
    ),
  );
}

// `ctx`: {api, root, say, begin} (app.js).
export async function settlementPage(ctx, openPeriod = null, chosen = null) {
  const { api, root, say } = ctx;
  const live = ctx.begin();
  const periods = await api.all("/admin/v1/settlement/periods?limit=500");
  const currencies = [...new Set(periods.flatMap((p) => p.currencies.map((c) => c.currency)))].sort();
  const currency = chosen && currencies.includes(chosen) ? chosen : currencies[0] ?? null;
  const reload = (period, cur = currency) => settlementPage(ctx, period, cur);
  const totalsIn = (p) => p.currencies.find((c) => c.currency === currency) ?? null;
  const picker = h(
    "select",
    { name: "currency", onchange: (e) => reload(openPeriod, e.target.value) },
    currencies.map((c) => h("option", { value: c, selected: c === currency }, c)),
  );
  const snapshot = openPeriod ? snapshotPart(api, await api.get(path`/admin/v1/settlement/periods/${openPeriod}`), say, reload) : null;
  if (!live()) return;
  root.replaceChildren(
    h("h1", {}, "Settlement"),
    currency === null
      ? h("p", {}, "No period has flows yet.")
      : h(
          "section",
          { class: "card" },
          h("h2", {}, "Per day in ", picker),
          h("p", { class: "legend" }, SERIES.map(([, cls, label]) => h("span", {}, h("i", { class: cls }), label))),
          periodsChart(periods.map((p) => ({ period: p.period, totals: totalsIn(p) })), currency),
          table(
            [
              ["period", (p) => h("button", { type: "button", "data-open": p.period, onclick: () => reload(p.period) }, p.period)],
              ["status", (p) => p.status],
              ["flows", (p) => p.flows, { num: true }],
              ...SERIES.map(([key, , label]) => [label, (p) => (totalsIn(p) ? formatMoney(totalsIn(p)[key], currency) : "—"), { num: true }]),
              ["retained to date", (p) => (totalsIn(p) ? formatMoney(totalsIn(p).retained_to_date, currency) : "—"), { num: true }],
              ["receivable ≥ settlement", (p) => check(p.holds)],
              ["closed at", (p) => p.closed_at],
            ],
            periods,
            { "data-table": "periods" },
          ),
        ),
    snapshot,
  );
}
