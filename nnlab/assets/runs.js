"use strict";
// The runs page of `nnlab serve`: the runs table (/api/runs), filtered, sorted and selected
// in the page, fetched again whenever the server says the store changed (/api/events).
// Every stored string is set as text, never parsed as HTML.
(function () {
const COLUMNS = [
  ["", "select"], ["id", "id"], ["model", "model"], ["dataset", "dataset"], ["status", "status"],
  ["epochs", "epochs"], ["steps", "steps"], ["headline", "value"], ["created", "created"],
  ["settings", "settings"], ["tags", "tags"],
];
const state = {rows: [], sort: "created", up: false, selected: new Set()};
const MAX_ROWS = 1000;  // drawn at once; filter and sort see every run
const el = id => document.getElementById(id);

function text(tag, value, cls) {
  const e = document.createElement(tag);
  e.textContent = value === null || value === undefined ? "" : String(value);
  if (cls) e.className = cls;
  return e;
}

function header() {
  const head = el("head");
  head.textContent = "";
  COLUMNS.forEach(([label, key]) => {
    const th = text("th", label);
    if (key === state.sort) th.className = "sorted" + (state.up ? " up" : "");
    if (key !== "select") th.addEventListener("click", () => {
      state.up = state.sort === key ? !state.up : key === "id";
      state.sort = key;
      render();
    });
    head.appendChild(th);
  });
}

function options(select, values) {
  const keep = select.value;
  while (select.options.length > 1) select.remove(1);
  [...new Set(values)].sort().forEach(v => select.add(new Option(v, v)));
  select.value = [...select.options].some(o => o.value === keep) ? keep : "";
}

function matches(r) {
  const want = el("filter").value.trim().toLowerCase();
  if (el("model").value && r.model !== el("model").value) return false;
  if (el("status").value && r.status !== el("status").value) return false;
  if (!want) return true;
  const hay = [r.id, r.model, r.dataset, r.status, r.settings, r.note, ...r.tags].join(" ").toLowerCase();
  return want.split(/\s+/).every(w => hay.includes(w));
}

function compare(a, b) {
  const k = state.sort, x = a[k], y = b[k];
  const d = typeof x === "number" && typeof y === "number" ? x - y
    : x === null || x === undefined ? 1 : y === null || y === undefined ? -1
    : String(x).localeCompare(String(y));
  return state.up ? d : -d;
}

function render() {
  header();
  const shown = state.rows.filter(matches).sort(compare);
  const body = el("rows");
  body.textContent = "";
  shown.slice(0, MAX_ROWS).forEach(r => {
    const tr = document.createElement("tr");
    const box = document.createElement("input");
    box.type = "checkbox"; box.checked = state.selected.has(r.id);
    box.setAttribute("aria-label", "select " + r.id);
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(r.id); else state.selected.delete(r.id);
      pick();
    });
    const first = document.createElement("td"); first.appendChild(box); tr.appendChild(first);
    const idCell = document.createElement("td");
    const a = text("a", r.id); a.href = "/run/" + encodeURIComponent(r.id);
    if (r.note) a.title = r.note;
    idCell.appendChild(a); tr.appendChild(idCell);
    tr.appendChild(text("td", r.model));
    tr.appendChild(text("td", r.dataset));
    tr.appendChild(text("td", r.status, "status-" + r.status));
    tr.appendChild(text("td", r.epochs, "num"));
    tr.appendChild(text("td", r.steps, "num"));
    tr.appendChild(text("td", r.headline ? `${r.headline} ${r.shown}` : "", "num"));
    tr.appendChild(text("td", (r.created || "").slice(0, 19).replace("T", " ")));
    tr.appendChild(text("td", r.problem || r.settings));
    const tags = document.createElement("td");
    r.tags.forEach(t => tags.appendChild(text("span", t, "tag")));
    tr.appendChild(tags);
    body.appendChild(tr);
  });
  el("count").textContent = shown.length > MAX_ROWS
    ? `the first ${MAX_ROWS} of ${shown.length} matching runs (of ${state.rows.length}): filter to narrow`
    : `${shown.length} of ${state.rows.length} runs`;
  pick();
}

function pick() {
  const ids = [...state.selected].filter(id => state.rows.some(r => r.id === id));
  const button = el("compare");
  button.disabled = ids.length < 1;
  button.textContent = ids.length > 1 ? `compare ${ids.length} runs` : "compare selected";
  button.onclick = () => { location.href = "/compare?ids=" + ids.map(encodeURIComponent).join(","); };
}

async function load() {
  const r = await fetch("/api/runs", {cache: "no-store"});
  if (!r.ok) { el("store").textContent = `${r.status}: ${await r.text()}`; return; }
  const d = await r.json();
  state.rows = d.runs;
  el("store").textContent = `the run store at ${d.store}`;
  options(el("model"), d.runs.map(r => r.model).filter(Boolean));
  options(el("status"), d.runs.map(r => r.status));
  const sw = el("sweeps");
  sw.textContent = d.sweeps.length ? "" : "none";
  d.sweeps.forEach(id => {
    const a = text("a", id); a.href = "/run/" + encodeURIComponent(id);
    sw.appendChild(a); sw.appendChild(document.createTextNode(" "));
  });
  render();
  // readyMs: from navigation start to the first table drawn (benchmarks/serve.py)
  window.nnlabRuns = {shown: () => [...el("rows").querySelectorAll("tr")].map(tr => tr.children[1].textContent), readyMs: window.nnlabRuns ? window.nnlabRuns.readyMs : performance.now()};
}

["filter", "model", "status"].forEach(id => el(id).addEventListener("input", render));
let busy = false, again = false;
async function refresh() {
  if (busy) { again = true; return; }
  busy = true;
  try { await load(); } finally { busy = false; if (again) { again = false; refresh(); } }
}
refresh();
new EventSource("/api/events").addEventListener("changed", refresh);
})();
