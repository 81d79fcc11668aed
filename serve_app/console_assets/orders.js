// Orders needing a person: GET /admin/v1/orders?flagged=true and ?negotiating=true, an
// order's GET /admin/v1/orders/{id}, and POST /admin/v1/orders/{id}/resolve.

import { path } from "./api.js";
import { confirmAction, field, h, table } from "./dom.js";
import { formatMoney } from "./money.js";

function orderList(title, part, items, open) {
  return h(
    "section",
    { class: "card", "data-list": part },
    h("h2", {}, `${title} (${items.length})`),
    items.length
      ? table(
          [
            ["order", (o) => h("button", { type: "button", "data-open": o.id, onclick: () => open(o.id) }, o.id)],
            ["status", (o) => o.status],
            ["supplier", (o) => o.supplier_id],
            ["distributor", (o) => o.distributor_id],
            ["amount", (o) => formatMoney(o.amount, o.currency), { num: true }],
            ["updated", (o) => o.updated_at],
          ],
          items,
        )
      : h("p", { class: "muted" }, "None."),
  );
}

// "code" or "code,seat" per line.
function ticketsOf(text) {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [code, ...seat] = line.split(",");
      return { code: code.trim(), seat: seat.length ? seat.join(",").trim() : null };
    });
}

function resolveForm(api, order, after) {
  const note = h("input", { name: "note", maxlength: 500, placeholder: "what the supplier said" });
  const tickets = h("textarea", { name: "tickets", rows: 3, cols: 30, placeholder: "one ticket a line: code or code,seat" });
  const act = (action, question) => async () => {
    const body = { action, note: note.value };
    if (action === "issued") body.tickets = ticketsOf(tickets.value);
    if (!(await confirmAction(`${question} Order ${order.id}.`))) return;
    const decided = await api.call("POST", path`/admin/v1/orders/${order.id}/resolve`, body);
    await after(`Order ${decided.id} is now ${decided.status}.`);
  };
  return h(
    "div",
    { class: "card", "data-part": "resolve" },
    h("h3", {}, "Resolve (after checking with the supplier)"),
    h("div", { class: "inline" }, field("Note", note), field("Tickets (for “issued”)", tickets)),
    h(
      "p",
      { class: "inline" },
      h("button", { type: "button", class: "danger", "data-action": "cancel", onclick: act("cancel", "Cancel: the supplier confirmed nothing was issued; the seats are released and nothing is owed.") }, "Cancel order"),
      " ",
      h("button", { type: "button", "data-action": "issued", onclick: act("issued", "Mark issued: the supplier issued these tickets; the order becomes FIXED.") }, "Mark issued"),
      " ",
      h("button", { type: "button", "data-action": "retry", onclick: act("retry", "Retry: poll the supplier again with fresh thresholds.") }, "Retry polling"),
    ),
  );
}

function detail(api, o, after) {
  const money = (n) => formatMoney(n, o.currency);
  return h(
    "section",
    { class: "card", "data-order": o.id },
    h("h2", {}, "Order ", h("code", {}, o.id), " ", h("span", { "data-value": "status" }, o.status)),
    h("p", {}, `${o.quantity} × ${money(o.unit_price)} = ${money(o.amount)} (settlement price ${money(o.settlement_price)} a ticket) · distributor ${o.distributor_id} (${o.distributor_order_id}) · supplier ${o.supplier_id} · session ${o.session_id} · tier ${o.tier_id}`),
    o.failure_reason ? h("p", { class: "error" }, `Failure: ${o.failure_reason}`) : null,
    h("h3", {}, "History"),
    table(
      [
        ["status", (c) => c.status],
        ["at", (c) => c.at],
        ["reason", (c) => c.reason],
      ],
      o.history,
      { "data-table": "history" },
    ),
    h("h3", {}, "Supplier calls (negotiations: polls of the supplier)"),
    table(
      [
        ["kind", (n) => n.kind],
        ["status", (n) => n.status],
        ["started", (n) => n.started_at],
        ["calls made", (n) => n.attempts, { num: true }],
        ["last error", (n) => n.last_error],
        ["next poll", (n) => n.next_poll_at],
        ["gives up at", (n) => n.give_up_at],
        ["resolution", (n) => n.resolution],
      ],
      o.negotiations,
      { "data-table": "negotiations" },
    ),
    h("p", { class: "muted" }, `Seat release: ${o.release ? `${o.release.status}, ${o.release.attempts} calls` : "none"} · supplier refund: ${o.supplier_refund ? `${o.supplier_refund.refunded_at} (${o.supplier_refund.initiated_by})` : "none"} · callbacks: ${o.callbacks.map((c) => `${c.status} after ${c.attempts}`).join(", ") || "none"}`),
    o.tickets.length ? table([["ticket", (t) => t.code], ["seat", (t) => t.seat]], o.tickets, { "data-table": "tickets" }) : null,
    o.status === "FIXING" ? resolveForm(api, o, after) : null,
    o.status === "REFUNDING" && o.negotiations.some((n) => n.kind === "refund" && n.status === "flagged")
      ? h("p", { class: "error", "data-part": "refund-flagged" }, REFUND_FLAGGED)
      : null,
  );
}

// A flagged refund has no button: `resolve` decides `FIXING` orders only (409 otherwise).
const REFUND_FLAGGED =
  "A refund past its give-up time: the platform stops polling and no action here decides it (POST …/resolve is for FIXING orders only). " +
  "It stays REFUNDING until the supplier's refund feed reports the refund (then REFUNDED); ask the supplier to refund or to report it.";

// `ctx`: {api, root, say, begin} (app.js).
export async function ordersPage(ctx, openId = null) {
  const { api, root, say } = ctx;
  const live = ctx.begin();
  const [flagged, negotiating] = await Promise.all([
    api.all("/admin/v1/orders?flagged=true&limit=500"),
    api.all("/admin/v1/orders?negotiating=true&limit=500"),
  ]);
  if (!live()) return;
  const panel = h("div", { id: "order-detail" });
  let shownId = openId;
  let opening = 0; // the latest order asked for is the one shown
  const open = async (id) => {
    const mine = ++opening;
    shownId = id;
    const order = await api.get(path`/admin/v1/orders/${id}`);
    if (mine === opening && live()) panel.replaceChildren(detail(api, order, after));
  };
  const after = async (message) => {
    say(message);
    await ordersPage(ctx, shownId);
  };
  root.replaceChildren(
    h("h1", {}, "Orders needing a person"),
    h("button", { type: "button", "data-action": "refresh", onclick: () => ordersPage(ctx) }, "Refresh"),
    orderList("Flagged: past the give-up time, waiting for a decision", "flagged", flagged, open),
    orderList("Negotiating: the platform is still asking the supplier", "negotiating", negotiating, open),
    panel,
  );
  if (openId) await open(openId);
}
