// Building the page from API data without innerHTML: text is always text.

// The controls an action's event came from: a button, or a form's buttons.
function controlsOf(event) {
  const el = event?.currentTarget;
  if (el instanceof HTMLFormElement) return [...el.querySelectorAll("button")];
  if (el instanceof HTMLButtonElement) return [el];
  return [];
}

// An event handler whose failure (a refused request, a bad input) is shown on the page, by
// app.js, rather than lost as an unhandled rejection. While an action's call is under way its
// button (or its form's) is disabled, and the form refuses a second submit: a double click
// makes one call, not two (two new keys, one secret lost).
function reported(handler) {
  const report = (error) => window.dispatchEvent(new CustomEvent("console-error", { detail: error }));
  return (event) => {
    const form = event?.currentTarget instanceof HTMLFormElement ? event.currentTarget : null;
    if (form?.dataset.busy === "true") {
      event.preventDefault();
      return;
    }
    const controls = controlsOf(event);
    const idle = () => {
      if (form) delete form.dataset.busy;
      for (const c of controls) c.disabled = false;
    };
    try {
      const result = handler(event);
      if (result && typeof result.then === "function") {
        if (form) form.dataset.busy = "true";
        for (const c of controls) c.disabled = true;
        result.catch(report).finally(idle);
      }
    } catch (error) {
      report(error);
    }
  };
}

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), reported(value));
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function shown(value) {
  return value === null || value === undefined ? "—" : String(value);
}

// A table: `columns` are [heading, (row) => cell, {num}] ; a cell may be a node or a value.
export function table(columns, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, columns.map(([title, , o]) => h("th", { class: o?.num ? "num" : null }, title)))),
    h(
      "tbody",
      {},
      rows.map((row) =>
        h(
          "tr",
          {},
          columns.map(([title, cell, o]) => {
            const value = cell(row);
            return h("td", { class: o?.num ? "num" : null, "data-col": title }, value instanceof Node ? value : shown(value));
          }),
        ),
      ),
    ),
  );
}

export function field(label, input) {
  return h("label", {}, label, input);
}

// Ask before an action that changes something; resolves true only on "Confirm".
export function confirmAction(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    const yes = document.getElementById("confirm-yes");
    const no = document.getElementById("confirm-no");
    const done = (answer) => {
      yes.removeEventListener("click", onYes);
      no.removeEventListener("click", onNo);
      dialog.removeEventListener("cancel", onNo);
      dialog.close();
      resolve(answer);
    };
    const onYes = () => done(true);
    const onNo = () => done(false);
    yes.addEventListener("click", onYes);
    no.addEventListener("click", onNo);
    dialog.addEventListener("cancel", onNo);
    dialog.showModal();
  });
}

// The value of an optional whole-number input: null when empty.
export function optionalInt(input) {
  const text = input.value.trim();
  if (text === "") return null;
  if (!/^\d+$/.test(text)) throw new Error(`${input.name}: a whole number, or empty`);
  return Number(text);
}
