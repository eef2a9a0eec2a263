"use strict";
(function () {
// The page's script, the same in a report file and in a page `nnlab serve` serves: a file
// holds its data in #nnlab-data; a served page fetches it (body's data-source) and fetches
// it again whenever the server says its runs changed (data-events), keeping the reader's
// place. Each start replaces the last: its listeners end with it (one AbortController).
let life = null, prev = null;
function start(D) {
const wasPlaying = Boolean(prev && prev.playing);
if (life) { life.abort(); prev.playing = false; }  // the last start's play loop ends too
life = new AbortController();
const signal = life.signal;
["notes", "header", "panels", "legend", "charts", "extras", "extrastitle"].forEach(id => { document.getElementById(id).textContent = ""; });
const t0 = performance.now();
const marks = {parsed: performance.now() - t0};
const COLORS = D.colors;
const RGB = COLORS.map(h => [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)]);
const RUN_COLORS = ["#333", "#c0392b", "#2471a3", "#1e8449", "#7d3c98", "#b9770e", "#148f77", "#884ea0"];
const SIZE = 440, GRID = 96;

function bytes(b64) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(b64);  // native where the browser has it
  const s = atob(b64), out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
function dequant(block) {
  if (block.parts) {  // a live page's recording, grown by the snapshots fetched since
    const parts = block.parts.map(dequant), out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    parts.forEach(p => { out.set(p, at); at += p.length; });
    return out;
  }
  const u = new Uint16Array(bytes(block.b64).buffer), out = new Float32Array(u.length);
  const scale = (block.hi - block.lo) / 65535;
  for (let i = 0; i < u.length; i++) out[i] = block.lo + u[i] * scale;
  return out;
}
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c])); }
function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return Math.abs(v) >= 1000 || Number.isInteger(v) ? String(v) : v.toPrecision(4);
  if (Array.isArray(v)) return "[" + v.join(", ") + "]";
  return String(v);
}

// ------------------------------------------------------------------ data
// Probe images: n x C x H x W bytes (C 1: grey, drawn dark on white; C 3: colour as is).
const images = {};
for (const k in D.images) {
  const [c, h, w] = D.images[k].shape;
  images[k] = {px: bytes(D.images[k].b64), c, h, w, size: c * h * w};
}
// Image i of a probe into ImageData `im` (its width W) at (ox, oy), with this alpha.
function putImage(im, W, img, i, ox, oy, alpha) {
  const {px, c, h, w, size} = img, plane = h * w;
  for (let p = 0; p < plane; p++) {
    const o = ((oy + Math.floor(p / w)) * W + ox + (p % w)) * 4, b = i * size + p;
    if (c === 1) { const v = 255 - px[b]; im.data[o] = v; im.data[o + 1] = v; im.data[o + 2] = v; }
    else { im.data[o] = px[b]; im.data[o + 1] = px[b + plane]; im.data[o + 2] = px[b + 2 * plane]; }
    im.data[o + 3] = alpha;
  }
}
// The size an image is drawn at beside its point: its own, at most 40 pixels across.
function spriteSize(img) { const k = Math.min(1, 40 / Math.max(img.w, img.h)); return [img.w * k, img.h * k]; }
const runs = D.runs.map((r, ri) => {
  const L = r.latent;
  const run = {r, ri, L, hidden: null};
  if (!L) return run;
  run.n = L.points;
  run.S = L.steps.length;
  run.labels = L.labels;
  run.img = images[L.images];
  if (L.kind === "density") {
    run.mu = dequant(L.mu);
    const lsd = dequant(L.log_sd);
    run.sd = new Float32Array(lsd.length);
    for (let i = 0; i < lsd.length; i++) run.sd[i] = Math.exp(lsd[i]);
    run.dims = 2;
  } else {
    run.coords = dequant(L.coords);
    run.dims = L.coords.shape[2];
  }
  run.byClass = Array.from({length: 10}, () => []);
  L.labels.forEach((c, i) => run.byClass[c].push(i));
  return run;
});
const latentRuns = runs.filter(r => r.L);
marks.decoded = performance.now() - t0;

// ------------------------------------------------------------------ header
document.title = "nnlab report · " + D.title;
document.getElementById("title").textContent = "nnlab report · " + D.title;
const notes = [...D.notes];
D.runs.forEach(r => r.left_out.forEach(m => notes.push(r.id + ": " + m)));
latentRuns.forEach(run => notes.push(
  `${run.r.id}: ${run.n.toLocaleString()} of ${run.L.total_points.toLocaleString()} probe images drawn ` +
  `(class-stratified subsample); coordinates quantised: ${D.quantisation}`));
document.getElementById("notes").innerHTML = notes.map(n => `<div class="note">${esc(n)}</div>`).join("");
(function header() {
  const keys = Object.keys(D.runs[0].config), diff = D.runs.length > 1 ? D.differences : [];
  const row = (name, vals, cls) => `<tr class="${cls || ""}"><td>${esc(name)}</td>` + vals.map(v => `<td>${esc(fmt(v))}</td>`).join("") + "</tr>";
  let h = '<table class="cfg"><tr><th></th>' + D.runs.map(r => `<th>${esc(r.id)}</th>`).join("") + "</tr>";
  h += row("model · dataset", D.runs.map(r => r.model + " · " + r.dataset));
  h += row("status", D.runs.map(r => r.status));
  h += row("parameters", D.runs.map(r => r.parameters.toLocaleString()));
  const finals = [];
  D.runs.forEach(r => Object.keys(r.final).forEach(k => { if (!finals.includes(k) && /^(test|val)_/.test(k)) finals.push(k); }));
  finals.forEach(k => { h += row("final " + k.replace("_", " "), D.runs.map(r => r.final[k])); });
  diff.filter(k => k !== "name").forEach(k => { h += row(k, D.runs.map(r => r.config[k]), "diff"); });
  h += "</table>";
  let cfg = '<table class="cfg">' + keys.map(k => row(k, D.runs.map(r => r.config[k]), diff.includes(k) ? "diff" : "")).join("") + "</table>";
  document.getElementById("header").innerHTML = h +
    (diff.length ? `<div class="muted">highlighted: the settings that differ</div>` : "") +
    `<details><summary>config (every field, as saved in the run)</summary>${cfg}</details>`;
})();

marks.header = performance.now() - t0;
// ------------------------------------------------------------------ state
const state = {v: 0, playing: false, speed: 1, align: "step", sprites: false, points: true,
               shared: true, hidden: new Set(), yaw: -0.6, pitch: 0.35};
const before = prev;  // the page's state before new data arrived (a live page), or null
if (before) ["speed", "align", "sprites", "points", "shared", "hidden", "yaw", "pitch"].forEach(k => { state[k] = before[k]; });
prev = state;
// A panel's axes: one scale shared by the panels drawn the same way (so spreads compare by
// eye), or its own (the toggle).
function limitsOf(run) { return (state.shared && run.L.shared_limits) || run.L.limits; }
const slider = document.getElementById("slider");
let unionSteps = [];
function domain() {
  if (state.align === "fraction") return Math.max(1, ...latentRuns.map(r => r.S));
  return unionSteps.length;
}
function setupDomain() {
  const all = new Set();
  latentRuns.forEach(r => r.L.steps.forEach(s => all.add(s)));
  unionSteps = [...all].sort((a, b) => a - b);
  slider.max = String(Math.max(0, domain() - 1));
}
function lastAtOrBelow(steps, step) {
  let lo = 0, hi = steps.length - 1, ans = 0;
  while (lo <= hi) { const m = (lo + hi) >> 1; if (steps[m] <= step) { ans = m; lo = m + 1; } else hi = m - 1; }
  return ans;
}
function clamp(v) { return Math.max(0, Math.min(domain() - 1, Math.round(v))); }
function snapshotOf(run) {
  const n = domain();
  if (state.align === "fraction") return Math.round(state.v / Math.max(1, n - 1) * (run.S - 1));
  return lastAtOrBelow(run.L.steps, unionSteps[Math.min(state.v, unionSteps.length - 1)]);
}
function taskAt(epoch, every) { return every ? Math.max(0, Math.ceil(epoch / every - 1e-9) - 1) : null; }

// ------------------------------------------------------------------ panels
const panelsDiv = document.getElementById("panels");
latentRuns.forEach(run => {
  const div = document.createElement("div");
  div.className = "panel";
  div.innerHTML = `<div class="title"><b>${esc(run.r.id)}</b><br><span class="muted"></span></div>`;
  const c = document.createElement("canvas");
  c.width = SIZE; c.height = SIZE;
  c.dataset.run = run.r.id;
  div.appendChild(c);
  panelsDiv.appendChild(div);
  run.canvas = c; run.ctx = c.getContext("2d", {willReadFrequently: true});
  run.sub = div.querySelector(".muted");
  run.screen = new Float32Array(run.n * 2);
  run.shown = new Uint8Array(run.n);
  run.grid = new Float32Array(GRID * GRID);
  run.off = document.createElement("canvas"); run.off.width = GRID; run.off.height = GRID;
  run.offctx = run.off.getContext("2d");
  run.offimg = run.offctx.createImageData(GRID, GRID);
  const maxK = Math.max(1, ...run.byClass.map(m => m.length));
  run.A = new Float32Array(GRID * maxK); run.B = new Float32Array(GRID * maxK);
  run.sprites = null;  // made when the images are first asked for
  if (run.dims === 3) attachRotation(c);
  c.addEventListener("mousemove", e => hover(run, e), {signal});
  c.addEventListener("mouseleave", () => { tooltip.style.display = "none"; }, {signal});
});
if (!latentRuns.length) panelsDiv.innerHTML = '<p class="muted">No latent recording to explore in these runs.</p>';

marks.panels = performance.now() - t0;
function makeSprites(run) {
  const c = document.createElement("canvas");
  const {w, h} = run.img;
  c.width = w * 32; c.height = h * Math.ceil(run.n / 32);
  const ctx = c.getContext("2d"), im = ctx.createImageData(c.width, c.height);
  for (let i = 0; i < run.n; i++) putImage(im, c.width, run.img, i, (i % 32) * w, Math.floor(i / 32) * h, 235);
  ctx.putImageData(im, 0, 0);
  return c;
}

function toScreen(run, x, y) {
  const [x0, x1, y0, y1] = limitsOf(run);
  return [(x - x0) / (x1 - x0) * SIZE, SIZE - (y - y0) / (y1 - y0) * SIZE];
}

function drawDensity(run, s) {
  const ctx = run.ctx, L = run.L, n = run.n, [x0, x1, y0, y1] = limitsOf(run);
  const img = run.offimg.data;
  for (let i = 0; i < GRID * GRID * 4; i += 4) { img[i] = 255; img[i + 1] = 255; img[i + 2] = 255; img[i + 3] = 255; }
  const xs = new Float32Array(GRID), ys = new Float32Array(GRID);
  for (let g = 0; g < GRID; g++) { xs[g] = x0 + (g + 0.5) / GRID * (x1 - x0); ys[g] = y1 - (g + 0.5) / GRID * (y1 - y0); }
  const means = [];
  for (let c = 0; c < 10; c++) {
    const members = run.byClass[c];
    if (!members.length || state.hidden.has(c)) continue;
    const K = members.length, A = run.A, B = run.B, base = s * n * 2;
    let mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
    for (let k = 0; k < K; k++) {
      const i = members[k], m0 = run.mu[base + i * 2], m1 = run.mu[base + i * 2 + 1];
      const s0 = run.sd[base + i * 2], s1 = run.sd[base + i * 2 + 1];
      mx += m0; my += m1; sxx += m0 * m0 + s0 * s0; syy += m1 * m1 + s1 * s1; sxy += m0 * m1;
      const a0 = 1 / (s0 * Math.sqrt(2 * Math.PI)), a1 = 1 / (s1 * Math.sqrt(2 * Math.PI));
      for (let g = 0; g < GRID; g++) {
        const zx = (xs[g] - m0) / s0, zy = (ys[g] - m1) / s1;
        A[k * GRID + g] = a0 * Math.exp(-0.5 * zx * zx);
        B[k * GRID + g] = a1 * Math.exp(-0.5 * zy * zy);
      }
    }
    mx /= K; my /= K;
    const cxx = sxx / K - mx * mx, cyy = syy / K - my * my, cxy = sxy / K - mx * my;
    const det = Math.max(cxx * cyy - cxy * cxy, 1e-300);
    const level = Math.exp(-0.5) / (2 * Math.PI * Math.sqrt(det));
    const dens = run.grid;
    dens.fill(0);
    let peak = level * (1 + 1e-9);
    for (let gy = 0; gy < GRID; gy++) {
      const row = gy * GRID;
      for (let k = 0; k < K; k++) {
        const b = B[k * GRID + gy];
        if (b === 0) continue;
        const ak = k * GRID;
        for (let gx = 0; gx < GRID; gx++) dens[row + gx] += b * A[ak + gx];
      }
      for (let gx = 0; gx < GRID; gx++) { dens[row + gx] /= K; if (dens[row + gx] > peak) peak = dens[row + gx]; }
    }
    const [r, g, b] = RGB[c];
    for (let p = 0; p < GRID * GRID; p++) {
      const d = dens[p];
      if (d < level) continue;
      const alpha = 0.28 + 0.42 * Math.sqrt(Math.min(1, (d - level) / (peak - level)));
      const o = p * 4;
      img[o] = img[o] * (1 - alpha) + r * alpha;
      img[o + 1] = img[o + 1] * (1 - alpha) + g * alpha;
      img[o + 2] = img[o + 2] * (1 - alpha) + b * alpha;
    }
    means.push([c, mx, my]);
  }
  run.offctx.putImageData(run.offimg, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(run.off, 0, 0, SIZE, SIZE);
  // the prior's 1- and 2-sigma circles
  ctx.strokeStyle = "rgba(40,40,40,0.5)"; ctx.setLineDash([4, 4]);
  for (const rad of [1, 2]) {
    const [cx, cy] = toScreen(run, 0, 0), [ex] = toScreen(run, rad, 0);
    ctx.beginPath(); ctx.arc(cx, cy, Math.abs(ex - cx), 0, 2 * Math.PI); ctx.stroke();
  }
  ctx.setLineDash([]);
  for (let i = 0; i < n; i++) {
    run.screen[2 * i] = toScreen(run, run.mu[s * n * 2 + i * 2], run.mu[s * n * 2 + i * 2 + 1])[0];
    run.screen[2 * i + 1] = toScreen(run, run.mu[s * n * 2 + i * 2], run.mu[s * n * 2 + i * 2 + 1])[1];
  }
  if (state.points) drawPoints(run, 2);
  ctx.font = "bold 12px system-ui, sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
  const placed = [];  // [x0, y0, x1, y1] of each label drawn
  run.labelBoxes = placed;
  means.forEach(([c, mx, my]) => {
    const [px, py] = toScreen(run, mx, my), name = run.r.class_names[c], half = ctx.measureText(name).width / 2 + 2;
    // at the class's mean, else just above or below it; left out (the legend names the
    // colour) when every place would cover another label
    const dy = [0, -14, 14, -28, 28].find(d => !placed.some(b => px - half < b[2] && px + half > b[0] && py + d - 7 < b[3] && py + d + 7 > b[1]));
    if (dy === undefined) return;
    placed.push([px - half, py + dy - 7, px + half, py + dy + 7]);
    ctx.fillStyle = "rgba(255,255,255,0.75)"; ctx.fillText(name, px + 1, py + dy + 1);
    ctx.fillStyle = COLORS[c]; ctx.fillText(name, px, py + dy);
  });
}

function drawPoints(run, size) {
  const ctx = run.ctx;  // run.outside counts from 0 at each drawPanel
  for (let i = 0; i < run.n; i++) {
    const c = run.labels[i];
    run.shown[i] = state.hidden.has(c) ? 0 : 1;
    if (!run.shown[i]) continue;
    if (Number.isNaN(run.screen[2 * i])) { run.shown[i] = 0; run.outside++; continue; }
    const px = run.screen[2 * i], py = run.screen[2 * i + 1];
    if (px < 0 || px > SIZE || py < 0 || py > SIZE) run.outside++;
    ctx.fillStyle = COLORS[c];
    ctx.fillRect(run.screen[2 * i] - size / 2, run.screen[2 * i + 1] - size / 2, size, size);
  }
}

function drawScatter(run, s) {
  const n = run.n, D3 = run.dims, ctx = run.ctx;
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, SIZE, SIZE);
  for (let i = 0; i < n; i++) {
    const o = (s * n + i) * D3, x = run.coords[o], y = D3 > 1 ? run.coords[o + 1] : run.labels[i] / 9;
    const [px, py] = toScreen(run, x, y);
    run.screen[2 * i] = px; run.screen[2 * i + 1] = py;
  }
  drawPoints(run, 3);
}

// A point of the unit cube centred on 0 (u, v, w in [-0.5, 0.5]) on screen, as turned.
function projectUnit(u, v, w) {
  const cy = Math.cos(state.yaw), sy = Math.sin(state.yaw), cp = Math.cos(state.pitch), sp = Math.sin(state.pitch);
  const X = cy * u - sy * v, Y = sy * u + cy * v;
  const Zs = cp * w - sp * Y;
  return [SIZE / 2 + X * SIZE * 0.55, SIZE / 2 - Zs * SIZE * 0.55];
}
// Data coordinates into the unit cube: each axis over its own limits (lo, hi per axis).
function unit3(run, x, y, z) {
  const L = limitsOf(run);
  return [(x - L[0]) / (L[1] - L[0]) - 0.5, (y - L[2]) / (L[3] - L[2]) - 0.5, (z - L[4]) / (L[5] - L[4]) - 0.5];
}

function drawCube(run, s) {
  const n = run.n, ctx = run.ctx, L = limitsOf(run);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, SIZE, SIZE);
  ctx.strokeStyle = "#bbb"; ctx.lineWidth = 1;
  const corners = [];
  for (let k = 0; k < 8; k++) corners.push([k & 1 ? 0.5 : -0.5, k & 2 ? 0.5 : -0.5, k & 4 ? 0.5 : -0.5]);
  for (let a = 0; a < 8; a++) for (let b = a + 1; b < 8; b++) {
    const d = a ^ b;
    if (d === 1 || d === 2 || d === 4) {
      const p = projectUnit(...corners[a]), q = projectUnit(...corners[b]);
      ctx.beginPath(); ctx.moveTo(p[0], p[1]); ctx.lineTo(q[0], q[1]); ctx.stroke();
    }
  }
  // each axis: value ticks along its edge from the low corner, its name beyond the far end
  ctx.font = "10px system-ui, sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
  const drawn = [];  // tick labels already placed: the three axes meet at one corner
  (run.L.axis_labels || []).slice(0, 3).forEach((name, k) => {
    const lo = L[2 * k], hi = L[2 * k + 1];
    tickLabels(lo, hi, 3).forEach(([t, text]) => {
      const at = [-0.5, -0.5, -0.5]; at[k] = (t - lo) / (hi - lo) - 0.5;
      const off = [-0.5, -0.5, -0.5].map((v, j) => j === k ? at[k] : v - 0.07);
      const [px, py] = projectUnit(...off);
      if (drawn.some(([qx, qy]) => Math.abs(px - qx) < 22 && Math.abs(py - qy) < 11)) return;
      drawn.push([px, py]);
      ctx.fillStyle = "#777"; ctx.fillText(text, px, py);
    });
  });
  for (let i = 0; i < n; i++) {
    const o = (s * n + i) * 3, u = unit3(run, run.coords[o], run.coords[o + 1], run.coords[o + 2]);
    if (u.some(v => v < -0.5 || v > 0.5 || Number.isNaN(v))) { run.screen[2 * i] = NaN; continue; }  // outside the box
    const [px, py] = projectUnit(...u);
    run.screen[2 * i] = px; run.screen[2 * i + 1] = py;
  }
  drawPoints(run, 3);
  // the axis names over the points (a cloud may cover an axis's far end)
  ctx.font = "12px system-ui, sans-serif"; ctx.lineWidth = 3; ctx.strokeStyle = "rgba(255,255,255,0.85)"; ctx.fillStyle = "#333";
  (run.L.axis_labels || []).slice(0, 3).forEach((name, k) => {
    const end = [-0.5, -0.5, -0.5]; end[k] = 0.62;
    const [px, py] = projectUnit(...end);
    ctx.strokeText(name, px, py); ctx.fillText(name, px, py);
  });
  ctx.textAlign = "left"; ctx.textBaseline = "alphabetic"; ctx.lineWidth = 1;
}

function drawSprites(run) {
  if (!run.sprites) run.sprites = makeSprites(run);
  const step = Math.max(1, Math.floor(run.n / 150)), ctx = run.ctx;
  for (let i = 0; i < run.n; i += step) {
    if (state.hidden.has(run.labels[i])) continue;
    const {w, h} = run.img, [dw, dh] = spriteSize(run.img);
    const x = run.screen[2 * i] - dw / 2, y = run.screen[2 * i + 1] - dh / 2;
    ctx.drawImage(run.sprites, (i % 32) * w, Math.floor(i / 32) * h, w, h, x, y, dw, dh);
    ctx.strokeStyle = COLORS[run.labels[i]]; ctx.lineWidth = 1.5; ctx.strokeRect(x, y, dw, dh);
  }
}

function drawPanel(run) {
  const s = snapshotOf(run);
  run.s = s; run.outside = 0;
  if (run.L.kind === "density") drawDensity(run, s);
  else if (run.dims === 3 && run.L.kind === "scatter3d") drawCube(run, s);
  else drawScatter(run, s);
  if (state.sprites) drawSprites(run);
  const ctx = run.ctx;
  ctx.fillStyle = "#444"; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "left"; ctx.textBaseline = "alphabetic";
  if (run.L.ticks) drawTicks(run);
  if (run.L.kind !== "scatter3d") {
    ctx.fillText(run.L.axis_labels[0] + " →", 6, SIZE - 6);
    ctx.save(); ctx.translate(12, SIZE - 30); ctx.rotate(-Math.PI / 2); ctx.fillText(run.L.axis_labels[1] + " →", 0, 0); ctx.restore();
  } else ctx.fillText("drag to turn", 6, SIZE - 6);
  const task = taskAt(run.L.epochs[s], run.L.every);
  run.sub.textContent = `snapshot ${s + 1}/${run.S} · step ${run.L.steps[s]} · epoch ${run.L.epochs[s].toFixed(2)}` +
    (task !== null ? ` · task ${task}` : "") + (run.outside ? ` · ${run.outside} point${run.outside > 1 ? "s" : ""} outside` : "");
}

// Value ticks along the bottom and right edges of a latent panel (the axis names sit at
// the bottom and left), labelled with a light halo so they read over the densities.
function drawTicks(run) {
  const ctx = run.ctx, [x0, x1, y0, y1] = limitsOf(run);
  ctx.save();
  ctx.font = "10px system-ui, sans-serif"; ctx.strokeStyle = "#666"; ctx.lineWidth = 1;
  const label = (text, x, y) => {
    ctx.lineWidth = 3; ctx.strokeStyle = "rgba(255,255,255,0.85)"; ctx.strokeText(text, x, y);
    ctx.fillStyle = "#555"; ctx.fillText(text, x, y); ctx.strokeStyle = "#666"; ctx.lineWidth = 1;
  };
  tickLabels(x0, x1, 5).forEach(([t, text]) => {
    const px = (t - x0) / (x1 - x0) * SIZE;
    if (px < 24 || px > SIZE - 8) return;  // clear of the axis names and the edge
    ctx.beginPath(); ctx.moveTo(px, SIZE); ctx.lineTo(px, SIZE - 5); ctx.stroke();
    ctx.textAlign = "center"; ctx.textBaseline = "bottom"; label(text, px, SIZE - 20);
  });
  tickLabels(y0, y1, 5).forEach(([t, text]) => {
    const py = SIZE - (t - y0) / (y1 - y0) * SIZE;
    if (py < 8 || py > SIZE - 24) return;
    ctx.beginPath(); ctx.moveTo(SIZE, py); ctx.lineTo(SIZE - 5, py); ctx.stroke();
    ctx.textAlign = "right"; ctx.textBaseline = "middle"; label(text, SIZE - 7, py);
  });
  ctx.restore();
}

// ------------------------------------------------------------------ hover, rotation
const tooltip = document.getElementById("tooltip"), tipimg = document.getElementById("tipimg"), tiptext = document.getElementById("tiptext");
function hover(run, e) {
  const rect = run.canvas.getBoundingClientRect();
  const mx = e.clientX - rect.left, my = e.clientY - rect.top;
  let best = -1, bd = 100;
  for (let i = 0; i < run.n; i++) {
    if (state.hidden.has(run.labels[i])) continue;
    const dx = run.screen[2 * i] - mx, dy = run.screen[2 * i + 1] - my, d = dx * dx + dy * dy;
    if (d < bd) { bd = d; best = i; }
  }
  if (best < 0) { tooltip.style.display = "none"; return; }
  showImage(run, best);
  const c = run.labels[best];
  tiptext.textContent = `${run.r.class_names[c]} (class ${c}) · ${run.L.split} image #${run.L.indices[best]}`;
  tooltip.dataset.label = run.r.class_names[c];
  tooltip.dataset.index = String(run.L.indices[best]);
  tooltip.style.left = (e.clientX + 14) + "px"; tooltip.style.top = (e.clientY + 14) + "px";
  tooltip.style.display = "block";
}
function showImage(run, i) {
  const {w, h} = run.img, ctx = tipimg.getContext("2d"), im = ctx.createImageData(w, h);
  putImage(im, w, run.img, i, 0, 0, 255);
  const c = document.createElement("canvas"); c.width = w; c.height = h; c.getContext("2d").putImageData(im, 0, 0);
  const k = 84 / Math.max(w, h);  // the tooltip's 84-pixel box, the image's shape kept
  ctx.clearRect(0, 0, 84, 84); ctx.imageSmoothingEnabled = w < 84 ? false : true;
  ctx.drawImage(c, 0, 0, w * k, h * k);
}
function attachRotation(c) {
  let drag = null;
  c.addEventListener("mousedown", e => { drag = [e.clientX, e.clientY, state.yaw, state.pitch]; }, {signal});
  window.addEventListener("mouseup", () => { drag = null; }, {signal});
  window.addEventListener("mousemove", e => {
    if (!drag) return;
    state.yaw = drag[2] + (e.clientX - drag[0]) * 0.01;
    state.pitch = Math.max(-1.5, Math.min(1.5, drag[3] + (e.clientY - drag[1]) * 0.01));
    redraw();
  }, {signal});
}

// ------------------------------------------------------------------ legend, controls
const legend = document.getElementById("legend");
const names = (latentRuns[0] || runs[0]).r.class_names;
names.forEach((name, c) => {
  const b = document.createElement("button");
  b.type = "button"; b.dataset.cls = String(c);
  b.innerHTML = `<span class="swatch" style="background:${COLORS[c]}"></span>${esc(name)}`;
  b.classList.toggle("off", state.hidden.has(c));
  b.addEventListener("click", () => {
    if (state.hidden.has(c)) state.hidden.delete(c); else state.hidden.add(c);
    b.classList.toggle("off", state.hidden.has(c));
    redraw();
  }, {signal});
  legend.appendChild(b);
});
if (latentRuns.length > 1) document.getElementById("alignbox").style.display = "";
if (latentRuns.some(r => r.L.shared_limits)) document.getElementById("sharedbox").style.display = "";
document.getElementById("shared").addEventListener("change", e => { state.shared = e.target.checked; redraw(); }, {signal});
if (latentRuns.some(r => r.L.kind === "density")) document.getElementById("pointsbox").style.display = "";
const playBtn = document.getElementById("play");
slider.addEventListener("input", () => { state.v = +slider.value; redraw(); }, {signal});
document.getElementById("speed").addEventListener("change", e => { state.speed = +e.target.value; }, {signal});
document.getElementById("align").addEventListener("change", e => {
  const f = state.v / Math.max(1, domain() - 1);
  state.align = e.target.value; setupDomain();
  state.v = clamp(f * (domain() - 1)); slider.value = String(state.v); redraw();
}, {signal});
document.getElementById("sprites").addEventListener("change", e => { state.sprites = e.target.checked; redraw(); }, {signal});
document.getElementById("points").addEventListener("change", e => { state.points = e.target.checked; redraw(); }, {signal});
let last = 0, acc = 0;
function tick(now) {
  if (!state.playing) return;
  acc += (now - (last || now)) / 1000 * 10 * state.speed;  // 10 snapshots a second at speed 1
  last = now;
  if (acc >= 1) {
    const k = Math.floor(acc); acc -= k;
    state.v = state.v + k >= domain() ? 0 : state.v + k;
    slider.value = String(state.v); redraw();
  }
  requestAnimationFrame(tick);
}
playBtn.addEventListener("click", () => {
  state.playing = !state.playing;
  playBtn.textContent = state.playing ? "❚❚ pause" : "▶ play";
  if (state.playing) { last = 0; acc = 0; requestAnimationFrame(tick); }
}, {signal});

// ------------------------------------------------------------------ charts
const charts = [];
function chartSpec() {
  const specs = [];
  const lossSeries = [], accSeries = [];
  D.runs.forEach((r, ri) => {
    const m = r.metrics;
    if (m.train_step.length) lossSeries.push({run: ri, name: "train", x: m.train_step, y: m.train_loss, dash: []});
    ["val_loss", "test_loss"].forEach((k, j) => { if (m.epoch[k]) lossSeries.push({run: ri, name: k.replace("_", " "), x: m.epoch_step, y: m.epoch[k], dash: [j ? 6 : 2, 3], dots: true}); });
    D.quality.keys.forEach((k, j) => { if (m.epoch[k]) accSeries.push({run: ri, name: k.replace("_", " "), x: m.epoch_step, y: m.epoch[k], dash: j ? [4, 3] : [], dots: true}); });
  });
  specs.push({title: "loss", series: lossSeries});
  specs.push({title: D.quality.title, series: accSeries});
  const latentKeys = [];
  D.runs.forEach(r => { const l = r.metrics.latent; if (l) Object.keys(l).forEach(k => { if (k !== "step" && !latentKeys.includes(k) && !Array.isArray((l[k] || [])[0])) latentKeys.push(k); }); });
  latentKeys.forEach(k => specs.push({title: k.replace(/_/g, " ") + " (latent)", series: D.runs.flatMap((r, ri) => r.metrics.latent && r.metrics.latent[k] ? [{run: ri, name: "", x: r.metrics.latent.step, y: r.metrics.latent[k], dash: []}] : [])}));
  // a recording of several layers: a line per layer, and the collapse of the last hidden one
  D.runs.forEach((r, ri) => {
    const L = r.metrics.layers;
    if (!L) return;
    const who = D.runs.length > 1 ? " · " + r.label : "";
    specs.push({title: "linear-probe accuracy per layer" + who, series: L.names.map((n, j) => ({run: ri, name: n, x: L.step, y: L.probe[n], dash: LAYER_DASHES[j % LAYER_DASHES.length]}))});
    specs.push({title: "CKA to each layer's final state" + who, series: L.names.map((n, j) => ({run: ri, name: n, x: L.step, y: L.cka_final[n], dash: LAYER_DASHES[j % LAYER_DASHES.length]}))});
    if (L.collapse) specs.push({title: `neural collapse of ${L.collapse_layer}, log10` + who, series: Object.keys(L.collapse).map((k, j) => ({run: ri, name: k.toUpperCase(), x: L.step, y: L.collapse[k].map(v => v === null ? null : Math.log10(Math.max(v, 1e-6))), dash: LAYER_DASHES[j % LAYER_DASHES.length]}))});
  });
  // a search: each trial's value by its number (pruned ones at their last report) and
  // the best so far, growing as trials finish
  if (D.search) {
    const S = D.search, xs = S.trials.map(t => t.index), ys = S.trials.map(t => typeof t.value === "number" ? t.value : null);
    let best = null;
    const bests = ys.map(v => { if (v !== null && (best === null || (S.direction === "max" ? v > best : v < best))) best = v; return best; });
    const done = S.trials.filter(t => t.status === "finished").length, pruned = S.trials.filter(t => t.status === "pruned").length;
    specs.push({title: `${S.metric} per trial (${done} finished, ${pruned} pruned of ${S.trials.length})`, xlabel: "trial", series: [
      {run: 0, name: "trial", x: xs, y: ys, dash: [], dots: true, line: false},
      {run: 1, name: "best so far", x: xs, y: bests, dash: []}]});
  }
  const healthKeys = [];
  D.runs.forEach(r => Object.keys(r.metrics.epoch).forEach(k => { if (/^(h|enc|dec)\d+_effective_rank$/.test(k) && !healthKeys.includes(k)) healthKeys.push(k); }));
  if (healthKeys.length) specs.push({title: "effective rank of hidden layers", series: D.runs.flatMap((r, ri) => healthKeys.filter(k => r.metrics.epoch[k]).map((k, j) => ({run: ri, name: k.split("_")[0], x: r.metrics.epoch_step, y: r.metrics.epoch[k], dash: j ? [4, 3] : [], dots: true})))});
  return specs.filter(s => s.series.length);
}
const chartsDiv = document.getElementById("charts");
const LAYER_DASHES = [[], [6, 3], [2, 2], [8, 3, 2, 3], [1, 3], [12, 4]];  // one line per layer, told apart without colour
// About n round-numbered ticks from lo to hi (1, 2 or 5 times a power of ten apart).
function niceTicks(lo, hi, n) {
  const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), k = raw / mag;
  const step = (k < 1.5 ? 1 : k < 3 ? 2 : k < 7 ? 5 : 10) * mag, out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}
// niceTicks with their labels, each with as many decimals as the ticks' spacing needs and
// no more ("0.5", "0.55", "0.002", never "0.5000"); -0 reads 0.
function tickLabels(lo, hi, n) {
  const ticks = niceTicks(lo, hi, n);
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : Math.abs(ticks[0] || 1);
  const digits = Math.min(12, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  return ticks.map(t => [t, Math.abs(t) >= 1e6 ? t.toExponential(1) : (t === 0 ? 0 : t).toFixed(digits)]);
}
function buildCharts() { chartSpec().forEach(spec => {
  const c = document.createElement("canvas"); c.width = 380; c.height = 200; c.title = spec.title;
  chartsDiv.appendChild(c);
  let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
  spec.series.forEach(s => s.x.forEach((x, i) => { const y = s.y[i]; if (y === null || y === undefined) return;
    xmin = Math.min(xmin, x); xmax = Math.max(xmax, x); ymin = Math.min(ymin, y); ymax = Math.max(ymax, y); }));
  if (!isFinite(xmin)) return;
  xmin = Math.min(0, xmin);  // training starts at step 0: one epoch's point sits at its end
  if (xmax === xmin) xmax = xmin + 1;
  const nonneg = ymin >= 0;  // a quantity that cannot be negative is never padded below 0
  if (ymax === ymin) { ymax += Math.abs(ymax) * 0.1 || 0.5; ymin -= Math.abs(ymin) * 0.1 || 0.5; }
  const pad = (ymax - ymin) * 0.06; ymin -= pad; ymax += pad;
  if (nonneg && (ymin < 0 || ymin < 0.5 * ymax)) ymin = 0;  // and starts from 0 when 0 is near
  const base = document.createElement("canvas"); base.width = c.width; base.height = c.height;
  const g = base.getContext("2d");
  const X = x => 44 + (x - xmin) / (xmax - xmin) * (c.width - 54), Y = y => 22 + (1 - (y - ymin) / (ymax - ymin)) * (c.height - 44);
  g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
  g.fillStyle = "#222"; g.font = "12px system-ui, sans-serif"; g.fillText(spec.title, 44, 14);
  g.fillStyle = "#666"; g.font = "10px system-ui, sans-serif";
  g.strokeStyle = "#eee"; g.lineWidth = 1;
  tickLabels(ymin, ymax, 4).forEach(([t, text]) => { const y = Y(t);
    g.beginPath(); g.moveTo(44, y); g.lineTo(c.width - 10, y); g.stroke(); g.fillText(text, 2, y + 3); });
  g.textAlign = "center";
  tickLabels(xmin, xmax, 4).forEach(([t, text]) => g.fillText(text, X(t), c.height - 8));
  g.textAlign = "left"; g.fillText(spec.xlabel || "step", 4, c.height - 8);
  g.strokeStyle = "#ccc"; g.strokeRect(44, 22, c.width - 54, c.height - 44);
  const legendItems = [];
  spec.series.forEach(s => {
    const col = RUN_COLORS[s.run % RUN_COLORS.length];
    g.strokeStyle = col; g.fillStyle = col; g.setLineDash(s.dash); g.lineWidth = 1.2; g.beginPath();
    let started = false;
    s.x.forEach((x, i) => { const y = s.y[i]; if (y === null || y === undefined) { started = false; return; }
      if (!started) { g.moveTo(X(x), Y(y)); started = true; } else g.lineTo(X(x), Y(y)); });
    if (s.line !== false) g.stroke();  // points alone (a search's trials): no line between
    g.setLineDash([]);
    const valid = s.x.map((x, i) => [x, s.y[i]]).filter(p => p[1] !== null && p[1] !== undefined);
    // measured points are marked where there are few of them: two snapshots are two
    // measurements, not a straight-line trend
    if ((s.dots && valid.length < 80) || valid.length <= 40) valid.forEach(([x, y]) => g.fillRect(X(x) - 1.5, Y(y) - 1.5, 3, 3));
    if (valid.length === 1) g.fillRect(X(valid[0][0]) - 2.5, Y(valid[0][1]) - 2.5, 5, 5);  // a lone value: a point, its value in the legend
    const lone = valid.length === 1 ? (s.name ? " " : "") + fmt(valid[0][1]) : "";
    if (s.name || lone) legendItems.push([s.name + (D.runs.length > 1 ? " · " + D.runs[s.run].label : "") + lone, col, s.dash]);
  });
  const legend = drawLegend(g, legendItems.slice(0, 6), spec.series, X, Y, [44, 22, c.width - 10, c.height - 22]);
  charts.push({c, ctx: c.getContext("2d"), base, X, range: [xmin, xmax, ymin, ymax], legend});
});
}
// The legend in the corner of the plot area that hides the fewest of the lines' points
// (sampled along each segment), preferring the top right.
function drawLegend(g, items, series, X, Y, [left, top, right, bottom]) {
  if (!items.length) return null;
  g.font = "10px system-ui, sans-serif";
  const w = 26 + Math.max(...items.map(([name]) => g.measureText(name).width)), h = 12 * items.length + 4;
  const boxes = [[right - w - 4, top + 4], [left + 4, top + 4], [right - w - 4, bottom - h - 4], [left + 4, bottom - h - 4]];
  const hidden = boxes.map(([bx, by]) => {
    let count = 0;
    series.forEach(s => {
      const pts = s.x.map((x, i) => [x, s.y[i]]).filter(p => p[1] !== null && p[1] !== undefined).map(([x, y]) => [X(x), Y(y)]);
      pts.forEach(([x, y], i) => {
        const [nx, ny] = pts[Math.min(i + 1, pts.length - 1)];
        for (let f = 0; f < 1; f += 0.125) {
          const px = x + (nx - x) * f, py = y + (ny - y) * f;
          if (px >= bx && px <= bx + w && py >= by && py <= by + h) count++;
        }
      });
    });
    return count;
  });
  const [bx, by] = boxes[hidden.indexOf(Math.min(...hidden))];
  g.fillStyle = "rgba(255,255,255,0.85)"; g.fillRect(bx, by, w, h);
  items.forEach(([name, col, dash], k) => {
    const ly = by + 12 + 12 * k;
    g.strokeStyle = col; g.setLineDash(dash); g.beginPath(); g.moveTo(bx + 4, ly - 3); g.lineTo(bx + 22, ly - 3); g.stroke(); g.setLineDash([]);
    g.fillStyle = col; g.textAlign = "left"; g.fillText(name, bx + 26, ly);
  });
  return {names: items.map(([name]) => name), hidden: Math.min(...hidden), corner: hidden.indexOf(Math.min(...hidden))};
}
function drawCursors() {
  charts.forEach(ch => {
    ch.ctx.drawImage(ch.base, 0, 0);
    latentRuns.forEach(run => {
      if (run.s === undefined) return;
      const x = ch.X(run.L.steps[run.s]);
      ch.ctx.strokeStyle = RUN_COLORS[run.ri % RUN_COLORS.length]; ch.ctx.globalAlpha = 0.6; ch.ctx.lineWidth = 1.5;
      ch.ctx.beginPath(); ch.ctx.moveTo(x, 22); ch.ctx.lineTo(x, ch.c.height - 22); ch.ctx.stroke(); ch.ctx.globalAlpha = 1;
    });
  });
}

// ------------------------------------------------------------------ extras
const extrasDiv = document.getElementById("extras");
const extraRuns = runs.filter(r => r.r.extras.length);
if (extraRuns.length) {
  document.getElementById("extrastitle").textContent = D.extras_title;
}
extraRuns.forEach(run => {
  const box = document.createElement("div"); box.className = "extra";
  const cap = document.createElement("div"); cap.className = "muted";
  const c = document.createElement("canvas");
  box.appendChild(cap); box.appendChild(c); extrasDiv.appendChild(box);
  run.extra = {c, cap, drawn: -1, decoded: run.r.extras.map(e => bytes(e.b64))};
});
function drawExtras() {
  extraRuns.forEach(run => {
    const step = run.L ? run.L.steps[run.s || 0] : 0;
    let k = 0;
    run.r.extras.forEach((e, j) => { if (Math.abs(e.step - step) < Math.abs(run.r.extras[k].step - step)) k = j; });
    if (k === run.extra.drawn) return;
    run.extra.drawn = k;
    const e = run.r.extras[k], px = run.extra.decoded[k], c = run.extra.c, ctx = c.getContext("2d");
    run.extra.cap.textContent = `${run.r.id} · ${e.what} at step ${e.step}`;
    if (e.what === "manifold") {
      c.width = e.width; c.height = e.height;
      const im = ctx.createImageData(e.width, e.height), ch = e.channels || 1;
      for (let p = 0; p < e.width * e.height; p++) {
        const q = p * ch;
        im.data.set(ch === 3 ? [px[q], px[q + 1], px[q + 2], 255] : [px[q], px[q], px[q], 255], p * 4);
      }
      ctx.putImageData(im, 0, 0);
    } else {
      // one tile per unit with its title below, then a colour bar (grey inputs: blue for
      // negative weights, white 0, red positive; colour inputs: the weights as R, G, B)
      const ch = e.channels || 1, h = e.height || 28, wd = e.width || 28;
      const scale = Math.max(1, Math.floor(84 / Math.max(h, wd))), tw = wd * scale, th = h * scale;
      const cols = Math.min(e.units, 8), cw = Math.max(tw, 72) + 6, rh = th + 20;
      const rows = Math.ceil(e.units / 8);
      c.width = cols * cw; c.height = rows * rh + 34;
      ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, c.width, c.height);
      const per = ch * h * wd, diverging = t => t >= 0 ? [255, 255 * (1 - t), 255 * (1 - t)] : [255 * (1 + t), 255 * (1 + t), 255];
      ctx.imageSmoothingEnabled = false;
      for (let u = 0; u < e.units; u++) {
        const im = ctx.createImageData(wd, h);
        for (let p = 0; p < h * wd; p++) {
          const col = ch === 3
            ? [px[u * per + p], px[u * per + h * wd + p], px[u * per + 2 * h * wd + p]]
            : diverging(px[u * per + p] / 127.5 - 1);
          im.data.set([col[0], col[1], col[2], 255], p * 4);
        }
        const tmp = document.createElement("canvas"); tmp.width = wd; tmp.height = h; tmp.getContext("2d").putImageData(im, 0, 0);
        const x = (u % 8) * cw + (cw - tw) / 2, y = Math.floor(u / 8) * rh + 2;
        ctx.drawImage(tmp, x, y, tw, th);
        ctx.fillStyle = "#333"; ctx.font = "10px system-ui, sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "top";
        ctx.fillText((e.titles || [])[u] || `unit ${u}`, (u % 8) * cw + cw / 2, y + th + 3);
      }
      const by = rows * rh + 6, bw = Math.min(c.width - 20, 240), bx = (c.width - bw) / 2;
      ctx.font = "10px system-ui, sans-serif"; ctx.textBaseline = "top"; ctx.fillStyle = "#333";
      if (ch === 3) {
        ctx.textAlign = "center";
        ctx.fillText(`R, G, B weights: mid-grey 0, full ±${fmt(e.vmax)}`, c.width / 2, by + 4);
      } else {
        for (let k = 0; k < bw; k++) { const col = diverging(2 * k / (bw - 1) - 1); ctx.fillStyle = `rgb(${col[0]},${col[1]},${col[2]})`; ctx.fillRect(bx + k, by, 1, 10); }
        ctx.strokeStyle = "#999"; ctx.strokeRect(bx, by, bw, 10); ctx.fillStyle = "#333";
        ctx.textAlign = "left"; ctx.fillText(`−${fmt(e.vmax)}`, bx, by + 12);
        ctx.textAlign = "center"; ctx.fillText("0 (weight)", bx + bw / 2, by + 12);
        ctx.textAlign = "right"; ctx.fillText(`+${fmt(e.vmax)}`, bx + bw, by + 12);
      }
    }
  });
}

// ------------------------------------------------------------------ redraw
marks.extras = performance.now() - t0;
const frameTimes = [];
function redraw() {
  const t = performance.now();
  latentRuns.forEach(drawPanel);
  drawCursors();
  drawExtras();
  const info = [];
  if (latentRuns.length) {
    if (state.align === "fraction") info.push(`${Math.round(100 * state.v / Math.max(1, domain() - 1))}% of training`);
    else info.push(`step ${unionSteps[state.v]}`);
  }
  document.getElementById("stepinfo").textContent = info.join(" · ");
  frameTimes.push(performance.now() - t);
  if (frameTimes.length > 500) frameTimes.shift();
}
setupDomain();
// open on the end of training (and, on a live page, stay on the newest snapshot when there
// before the new data came; elsewhere, stay where the reader was); play starts over
state.v = !before || before.v >= before.last ? Math.max(0, domain() - 1) : clamp(before.v);
state.last = Math.max(0, domain() - 1);
slider.value = String(state.v);
redraw();
if (wasPlaying) { state.playing = true; last = 0; acc = 0; requestAnimationFrame(tick); }
const readyMs = performance.now();
// when each start drew which newest step, on the wall clock (benchmarks/serve.py compares
// it with the time the snapshot's chunk was written: the live latency)
(window.nnlabDrawn = window.nnlabDrawn || []).push([Date.now(), unionSteps.length ? unionSteps[unionSteps.length - 1] : -1]);
// the plots after the first frame: the explorer is usable while they are drawn
setTimeout(() => { buildCharts(); drawCursors(); }, 0);
document.getElementById("footer").textContent =
  `Made by nnlab. Ready ${Math.round(readyMs)} ms after opening (script ${Math.round(readyMs - t0)} ms).`;
window.nnlabReport = {
  // from the start of navigation (reading the file, parsing the page and its data) to the
  // first frame drawn: how long the reader waits
  state, redraw, frameTimes, readyMs, scriptStart: t0, marks, runs: latentRuns.map(r => r.r.id),
  complete: latentRuns.every(r => r.L.complete !== false),  // a served page's first paint: false
  snapshotOf: id => { const r = latentRuns.find(x => x.r.id === id); return r ? r.s : null; },
  pointAt: (id, i) => { const r = latentRuns.find(x => x.r.id === id); const b = r.canvas.getBoundingClientRect();
    return [b.left + r.screen[2 * i], b.top + r.screen[2 * i + 1], r.labels[i], r.r.class_names[r.labels[i]]]; },
  setPosition: v => { state.v = clamp(v); slider.value = String(state.v); redraw(); },
  charts: () => charts.map(ch => ({title: ch.c.title, range: ch.range, legend: ch.legend})),
  labelBoxes: () => latentRuns.map(r => r.labelBoxes || []),
  outside: () => latentRuns.map(r => r.outside),
  niceTicks,
  tickLabels,
};
}

// One run's page that has its whole recording asks for the snapshots after its newest
// (since=STEP) and appends them; anything else (several runs, a recording cut back by a
// resume) comes whole.
function newest(D) {
  const lat = D && D.runs.length === 1 && D.runs[0].latent;
  return lat && lat.complete && lat.steps.length ? lat.steps[lat.steps.length - 1] : null;
}
function grown(old, d) {
  const a = old.runs[0].latent, b = d.runs.length === 1 && d.runs[0].latent;
  if (!b || b.since === null || b.since === undefined || b.since !== newest(old)) return d;
  const join = (x, y) => x && y ? {parts: [...(x.parts || [x]), y], shape: [x.shape[0] + y.shape[0], ...x.shape.slice(1)]} : y;
  const L = {...b, steps: a.steps.concat(b.steps), epochs: a.epochs.concat(b.epochs), mu: join(a.mu, b.mu), log_sd: join(a.log_sd, b.log_sd), coords: join(a.coords, b.coords)};
  return {...d, runs: [{...d.runs[0], latent: L}]};
}
function live(source, events) {
  // the first paint from each recording's newest snapshot alone (a small request), then
  // the whole recording, then what changed whenever the server says it changed
  let busy = false, again = false, first = true, have = null;
  async function load() {
    if (busy) { again = true; return; }
    busy = true;
    const step = first ? null : newest(have);
    const url = first ? source + "&first=1" : step === null ? source : source + "&since=" + step;
    if (first) { first = false; again = true; }
    try {
      const r = await fetch(url, {cache: "no-store"});
      let d = r.ok ? await r.json() : null;
      if (d && !d.waiting && step !== null) d = grown(have, d);
      if (d && !d.waiting) have = d;
      // a sweep none of whose points has started: say so, and wait for the server's word
      if (d && d.waiting) { document.getElementById("notes").textContent = d.waiting + " (this page shows it when it starts)"; first = true; again = false; }
      else if (d) start(d);
      else document.getElementById("notes").textContent = `${r.status}: ${await r.text()}`;
    } catch (e) {
      document.getElementById("notes").textContent = "the server does not answer: " + e;
    } finally {
      busy = false;
      if (again) { again = false; load(); }
    }
  }
  load();
  if (events) new EventSource(events).addEventListener("changed", load);
}

const embedded = JSON.parse(document.getElementById("nnlab-data").textContent);
if (embedded) start(embedded);
else live(document.body.dataset.source, document.body.dataset.events);
})();
