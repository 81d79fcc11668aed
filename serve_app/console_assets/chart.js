// The settlement chart: receivable, settlement and retained per day, drawn as SVG here.
// Bar heights are pixels, so they are scaled as numbers; every value written on the chart
// (labels, titles, data-minor) is the API's exact integer.

import { formatMoney } from "./money.js";

const NS = "http://www.w3.org/2000/svg";
export const SERIES = [
  ["receivable_net", "receivable", "Receivable (net)"],
  ["settlement_net", "settlement", "Settlement (net)"],
  ["retained", "retained", "Retained"],
];

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const MAX_WIDTH = 1200; // px: bars narrow down to MIN_BAR to fit; past that the chart scrolls
const MIN_BAR = 3;

// `days`: [{period, totals: {receivable_net, settlement_net, retained} | null}] for one currency.
// Returned in a container that scrolls sideways when even the narrowest bars do not fit.
export function periodsChart(days, currency) {
  const left = 110;
  const top = 16;
  const plotH = 220;
  const fit = Math.floor((MAX_WIDTH - left - 20) / Math.max(1, days.length) / (SERIES.length + 1));
  const barW = Math.max(MIN_BAR, Math.min(14, fit));
  const gap = Math.max(2, Math.min(16, barW));
  const groupW = barW * SERIES.length + gap;
  const labelEvery = Math.ceil(44 / groupW); // a day label needs about 44 px
  const width = Math.max(480, left + groupW * days.length + 20);
  const height = top + plotH + 56;
  const values = days.flatMap((d) => (d.totals ? SERIES.map(([k]) => BigInt(d.totals[k])) : []));
  const max = values.reduce((m, v) => (v > m ? v : m), 0n);
  const min = values.reduce((m, v) => (v < m ? v : m), 0n);
  const span = Number(max - min) || 1;
  const y = (v) => top + (Number(max - BigInt(v)) / span) * plotH;
  const zero = y(0n);
  const chart = svg("svg", {
    class: "chart",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Receivable, settlement and retained per day in ${currency}`,
    "data-currency": currency,
  });
  chart.append(
    svg("line", { class: "axis", x1: left - 4, x2: width - 10, y1: zero, y2: zero }),
    svg("line", { class: "axis", x1: left - 4, x2: left - 4, y1: top, y2: top + plotH }),
    svg("text", { x: left - 8, y: top + 4, "text-anchor": "end" }, formatMoney(max, currency)),
    svg("text", { x: left - 8, y: zero + 4, "text-anchor": "end" }, formatMoney(0, currency)),
  );
  if (min < 0n) {
    chart.append(svg("text", { x: left - 8, y: top + plotH, "text-anchor": "end" }, formatMoney(min, currency)));
  }
  days.forEach((day, i) => {
    const x0 = left + i * groupW + gap / 2;
    if (day.totals) {
      SERIES.forEach(([key, cls, label], j) => {
        const v = BigInt(day.totals[key]);
        const yv = y(v);
        chart.append(
          svg(
            "rect",
            {
              class: `bar ${cls}`,
              x: x0 + j * barW,
              y: Math.min(yv, zero),
              width: Math.max(1, barW - 1),
              height: Math.max(1, Math.abs(zero - yv)),
              "data-period": day.period,
              "data-series": key,
              "data-minor": v.toString(),
            },
            svg("title", {}, `${day.period} ${label}: ${formatMoney(v, currency)}`),
          ),
        );
      });
    }
    if (i % labelEvery === 0) {
      chart.append(
        svg(
          "text",
          { x: x0 + (barW * SERIES.length) / 2, y: top + plotH + 16, "text-anchor": "middle" },
          day.period.slice(5),
        ),
      );
    }
  });
  const box = document.createElement("div");
  box.className = "chart-scroll";
  box.append(chart);
  return box;
}
