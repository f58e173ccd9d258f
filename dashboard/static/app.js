// sigmawatch dashboard: one EventSource to our server, plain DOM + canvas, no dependencies.
"use strict";

const PALETTE = ["#4cc9f0", "#f72585", "#b5e48c", "#ffb703", "#9b5de5", "#00f5d4", "#fb8500", "#e63946"];
const classColors = new Map();
function colorFor(label) {
  if (!classColors.has(label)) classColors.set(label, PALETTE[classColors.size % PALETTE.length]);
  return classColors.get(label);
}

const S = {
  devices: new Map(),    // device -> {status, metrics, detections, detection_messages, detections_count}
  aggregates: new Map(), // id -> aggregate payload (one device, one class, one window)
  health: new Map(),     // device -> latest health payload (the Flink job's view of the device)
  stats: null,           // latest job stats payload (dead letters, late events)
  alerts: new Map(),     // alert id -> latest alert payload (firing | cleared)
  invalid: [],
  counters: {messages: 0, detections: 0, aggregates: 0, alerts: 0, invalid: 0},
  dirty: new Set(),
};
const MAX_ROWS = 5000;
const aggregatedDetections = () => { let n = 0; for (const a of S.aggregates.values()) n += a.detections; return n; };
const $ = (sel) => document.querySelector(sel);
function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
const fmt = (v, d = 1) => (v === undefined || v === null || Number.isNaN(v)) ? "–" : Number(v).toFixed(d);
const pick = (o, ...keys) => { for (const k of keys) if (o && o[k] !== undefined && o[k] !== null) return o[k]; };

// ---------------------------------------------------------------- event handling
function onEvent(ev) {
  switch (ev.kind) {
    case "snapshot":
      S.devices.clear(); S.aggregates = []; S.alerts = []; S.invalid = [];
      for (const [dev, d] of Object.entries(ev.devices)) {
        S.devices.set(dev, {status: d.status, metrics: d.metrics, detections: d.detections,
          detection_messages: d.detection_messages, detections_count: d.detections_count});
      }
      S.aggregates = new Map(ev.aggregates.map((a) => [a.payload.id, a.payload]));
      S.health = new Map(Object.entries(ev.health).map(([k, v]) => [k, v.payload]));
      S.stats = ev.stats ? ev.stats.payload : null;
      S.alerts = new Map(ev.alerts.map((a) => [a.payload.id, a.payload]));
      S.invalid = ev.invalid.slice();
      S.counters = Object.assign({}, ev.counters);
      setBroker(ev.broker);
      ["devices", "live", "aggregates", "alerts", "invalid", "counters"].forEach((k) => S.dirty.add(k));
      break;
    case "broker": setBroker(ev); break;
    case "status": case "metrics": case "detections": {
      const d = device(ev.device);
      d[ev.kind] = ev.payload;
      S.counters.messages++;
      if (ev.kind === "detections") {
        d.detection_messages++; d.detections_count += ev.payload.detections.length;
        S.counters.detections += ev.payload.detections.length;
        S.dirty.add("live");
      }
      S.dirty.add("devices"); S.dirty.add("counters");
      break;
    }
    case "aggregate":
      S.counters.messages++;
      {
        const old = S.aggregates.get(ev.payload.id);   // a window's revisions replace it (late frames)
        if (old && old.revision > ev.payload.revision) break;
        if (!old) S.counters.aggregates++;
        S.aggregates.delete(ev.payload.id);
        S.aggregates.set(ev.payload.id, ev.payload);
        if (S.aggregates.size > MAX_ROWS) S.aggregates.delete(S.aggregates.keys().next().value);
      }
      S.dirty.add("aggregates"); S.dirty.add("counters");
      break;
    case "health": {
      S.counters.messages++;
      const old = S.health.get(ev.payload.device);   // the newest window; an older window's revision stays out
      if (!old || ev.payload.window_start > old.window_start ||
          (ev.payload.window_start === old.window_start && ev.payload.revision >= old.revision)) {
        S.health.set(ev.payload.device, ev.payload);
      }
      S.dirty.add("devices");
      break;
    }
    case "stats":
      S.counters.messages++; S.stats = ev.payload; S.dirty.add("counters");
      break;
    case "fleet":
      S.counters.messages++;
      break;
    case "alert":
      S.counters.messages++; S.counters.alerts++;
      S.alerts.delete(ev.payload.id); S.alerts.set(ev.payload.id, ev.payload);
      S.dirty.add("alerts"); S.dirty.add("counters");
      break;
    case "invalid":
      S.counters.messages++; S.counters.invalid++;
      S.invalid.push(ev); if (S.invalid.length > 20) S.invalid.shift();
      S.dirty.add("invalid"); S.dirty.add("counters");
      break;
    case "lagged":
      $("#stream").textContent = `page: live (lost ${ev.lost} events)`;
      break;
  }
  scheduleRender();
}

function device(id) {
  if (!S.devices.has(id)) S.devices.set(id, {detection_messages: 0, detections_count: 0});
  return S.devices.get(id);
}

function setBroker(b) {
  const p = $("#broker");
  p.className = "pill " + (b.connected ? "on" : "off");
  p.textContent = b.connected ? `broker: ${b.url}` : `broker: ${b.error || "disconnected"}`;
}

// ---------------------------------------------------------------- rendering
let pending = false;
function scheduleRender() {
  if (pending) return;
  pending = true;
  // rAF does not run in background tabs; a timeout keeps the DOM current there too.
  setTimeout(() => { pending = false; render(); }, 100);
}

function render() {
  const d = S.dirty;
  if (d.has("counters")) renderCounters();
  if (d.has("devices")) renderDevices();
  if (d.has("live")) renderLive();
  if (d.has("aggregates")) renderAggregates();
  if (d.has("alerts")) renderAlerts();
  if (d.has("invalid")) renderInvalid();
  d.clear();
}

function renderCounters() {
  for (const k of ["messages", "detections", "invalid"]) $(`#count-${k}`).textContent = S.counters[k] ?? 0;
  $("#count-aggregates").textContent = S.aggregates.size;
  $("#count-aggregated-events").textContent = aggregatedDetections();
  let firing = 0; for (const a of S.alerts.values()) if (a.state === "firing") firing++;
  $("#count-alerts").textContent = firing;
  $("#count-dead").textContent = S.stats ? `${S.stats.dead_letters} / ${S.stats.late}` : "–";
}

function renderDevices() {
  const body = $("#devices tbody");
  $("#no-devices").hidden = S.devices.size > 0;
  for (const [id, d] of [...S.devices.entries()].sort()) {
    let tr = body.querySelector(`tr[data-device="${CSS.escape(id)}"]`);
    if (!tr) {
      tr = el("tr", {"data-device": id});
      for (const c of ["device", "state", "fps", "processed", "dropped", "outbox", "latency", "seq", "detections", "job", "model"]) {
        tr.appendChild(el("td", {class: c}));
      }
      body.appendChild(tr);
    }
    const m = d.metrics || {}, st = d.status || {};
    const cell = (c, text, cls) => { const td = tr.querySelector("td." + c); td.textContent = text; if (cls !== undefined) td.className = c + " " + cls; };
    const state = st.state || (d.metrics || d.detections ? "online" : "unknown");
    cell("device", id);
    cell("state", state, "state-" + state);
    cell("fps", fmt(m.fps));
    cell("processed", m.frames ? m.frames.processed : "–");
    cell("dropped", m.frames ? m.frames.dropped : "–", m.frames && m.frames.dropped > 0 ? "warn" : "");
    cell("outbox", m.outbox ? `${m.outbox.depth} queued / ${m.outbox.dropped} dropped` : "–",
      m.outbox && m.outbox.dropped > 0 ? "warn" : "");
    cell("latency", m.latency_ms ? `${fmt(m.latency_ms.p50)} / ${fmt(m.latency_ms.p95)} ms` : "–");
    cell("seq", d.detections ? d.detections.seq : (m.last_seq ?? "–"));
    cell("detections", `${d.detections_count} in ${d.detection_messages} msgs`);
    const h = S.health.get(id);
    cell("job", h ? `${fmt(h.frame_rate)} frames/s (${h.frames} frames, state ${h.state ?? "–"})` : "–");
    // status has the model's id and full hash; a detections message only its hash prefix
    const model = st.model || (d.detections && d.detections.model) || {};
    cell("model", model.id || (model.hash ? model.hash.slice(0, 12) : "–"));
  }
}

function renderLive() {
  const live = $("#live");
  for (const [id, d] of [...S.devices.entries()].sort()) {
    if (!d.detections) continue;
    let card = live.querySelector(`.cam[data-device="${CSS.escape(id)}"]`);
    if (!card) {
      card = el("div", {class: "cam", "data-device": id});
      const h = el("h3"); h.appendChild(el("span", {class: "name"}, id)); h.appendChild(el("span", {class: "meta"}));
      card.appendChild(h);
      card.appendChild(el("canvas", {width: 480, height: 270}));
      card.appendChild(el("ul", {class: "dets"}));
      live.appendChild(card);
    }
    drawFrame(card, d.detections);
  }
}

function edgeSigma(bs) {
  // box_sigma = σ of (cx, cy, w, h); an edge x1 = cx − w/2 has σ = sqrt(σcx² + (σw/2)²).
  if (!bs) return null;
  return [Math.hypot(bs[0], bs[2] / 2), Math.hypot(bs[1], bs[3] / 2)];
}

function drawFrame(card, msg) {
  const canvas = card.querySelector("canvas");
  const W = 480, H = Math.max(60, Math.round(480 * msg.frame.h / msg.frame.w));
  if (canvas.height !== H) canvas.height = H;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, W, H);
  g.strokeStyle = "#1d2731"; g.lineWidth = 1;
  for (let i = 1; i < 4; i++) {
    g.beginPath(); g.moveTo(W * i / 4, 0); g.lineTo(W * i / 4, H); g.moveTo(0, H * i / 4); g.lineTo(W, H * i / 4); g.stroke();
  }
  const ul = card.querySelector("ul.dets");
  ul.textContent = "";
  card.querySelector(".meta").textContent =
    `seq ${msg.seq} · ${msg.frame.w}×${msg.frame.h} · ${msg.detections.length} boxes · ${fmt(msg.latency_ms.inference)} ms`;
  // text labels on the canvas only for the best few boxes, so crowded frames stay readable
  const labelled = new Set([...msg.detections].sort((a, b) => b.score - a.score).slice(0, 8));
  for (const det of msg.detections) {
    const [x1, y1, x2, y2] = det.box;
    const c = colorFor(det.label);
    const es = edgeSigma(det.box_sigma);
    if (es) {
      const [sx, sy] = es;
      g.beginPath();
      g.rect((x1 - sx) * W, (y1 - sy) * H, (x2 - x1 + 2 * sx) * W, (y2 - y1 + 2 * sy) * H);
      const iw = x2 - x1 - 2 * sx, ih = y2 - y1 - 2 * sy;
      if (iw > 0 && ih > 0) g.rect((x1 + sx) * W, (y1 + sy) * H, iw * W, ih * H);
      g.fillStyle = c + "55";
      g.fill("evenodd");
    }
    g.strokeStyle = c; g.lineWidth = 2;
    g.strokeRect(x1 * W, y1 * H, (x2 - x1) * W, (y2 - y1) * H);
    if (labelled.has(det)) {
      const text = `${det.label} ${fmt(det.score, 2)} ` + (det.sigma_mean == null ? "no σ" : `σ̄${fmt(det.sigma_mean, 3)}`);
      g.font = "12px sans-serif"; g.fillStyle = c;
      g.fillText(text, x1 * W + 2, Math.max(12, y1 * H - 3));
    }
    const li = el("li", {"data-label": det.label});
    li.appendChild(el("span", {class: "swatch", style: `background:${c}`}));
    li.appendChild(document.createTextNode(
      `${det.label} score ${fmt(det.score, 2)} ` +
      (det.sigma_mean == null ? "no σ (the model reports no uncertainty)" : `σ̄ ${fmt(det.sigma_mean, 3)}`) +
      (det.box_sigma ? ` box σ (cx,cy,w,h) ${det.box_sigma.map((v) => fmt(v, 3)).join(", ")}` : "")));
    ul.appendChild(li);
  }
}

function renderAggregates() {
  const rows = [...S.aggregates.values()];
  const totals = new Map();  // label -> {count, sigma sum weighted by count, windows, high}
  for (const r of rows) {
    // σ statistics are over the detections with σ (with_sigma); a model without uncertainty has none
    const t = totals.get(r.label) || {count: 0, withSigma: 0, sw: 0, windows: 0, high: 0, max: 0};
    const ws = r.with_sigma ?? r.detections;
    t.count += r.detections; t.windows++;
    if (r.sigma_mean != null) {
      t.withSigma += ws; t.sw += r.sigma_mean * ws; t.high += r.high_sigma_share * ws; t.max = Math.max(t.max, r.sigma_max);
    }
    totals.set(r.label, t);
  }
  const body = $("#class-totals tbody");
  body.textContent = "";
  for (const [label, t] of [...totals.entries()].sort()) {
    const tr = el("tr", {"data-class": label});
    const td = el("td"); td.appendChild(el("span", {class: "swatch", style: `background:${colorFor(label)}`}));
    td.appendChild(document.createTextNode(label)); tr.appendChild(td);
    tr.appendChild(el("td", {class: "count"}, String(t.count)));
    tr.appendChild(el("td", {class: "sigma"}, t.withSigma ? fmt(t.sw / t.withSigma, 3) : "no σ"));
    tr.appendChild(el("td", {class: "sigma-max"}, t.withSigma ? fmt(t.max, 3) : "–"));
    tr.appendChild(el("td", {class: "high"}, t.withSigma ? fmt(100 * t.high / t.withSigma, 1) + " %" : "–"));
    tr.appendChild(el("td", {class: "windows"}, String(t.windows)));
    body.appendChild(tr);
  }
  drawCounts(rows, [...totals.keys()].sort());
  drawSigma(rows);
}

function drawCounts(rows, labels) {
  const canvas = $("#counts-chart"), g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 36, B = 18;
  g.clearRect(0, 0, W, H);
  if (!rows.length) return;
  // detections per (class, window), summed over devices
  const series = new Map(labels.map((l) => [l, new Map()]));
  for (const r of rows) {
    const s = series.get(r.label);
    s.set(r.window_start, (s.get(r.window_start) || 0) + r.detections);
  }
  const starts = rows.map((r) => r.window_start), t0 = Math.min(...starts), t1 = Math.max(...starts, t0 + 1);
  let ymax = 1;
  for (const s of series.values()) for (const v of s.values()) ymax = Math.max(ymax, v);
  const X = (t) => L + (W - L - 8) * (t - t0) / (t1 - t0), Y = (v) => H - B - (H - B - 16) * v / ymax;
  g.strokeStyle = "#2a3642"; g.fillStyle = "#8b97a3"; g.font = "11px sans-serif";
  g.beginPath(); g.moveTo(L, 4); g.lineTo(L, H - B); g.lineTo(W - 4, H - B); g.stroke();
  g.fillText(String(ymax), 4, 20); g.fillText("0", 4, H - B);
  g.fillText(`${series.size ? Math.round(Math.max(...starts) - t0) : 0} s of windows`, W - 110, H - 4);
  labels.forEach((label, i) => {
    const pts = [...series.get(label).entries()].sort((a, b) => a[0] - b[0]);
    g.strokeStyle = colorFor(label); g.fillStyle = colorFor(label); g.lineWidth = 2; g.beginPath();
    pts.forEach(([t, v], j) => (j ? g.lineTo(X(t), Y(v)) : g.moveTo(X(t), Y(v))));
    g.stroke();
    if (pts.length === 1) g.fillRect(X(pts[0][0]) - 2, Y(pts[0][1]) - 2, 5, 5);
    g.fillText(label, L + 8 + i * 90, 12);
  });
}

function drawSigma(rows) {
  // Each window row contributes its mean σ̄ with weight = its detection count.
  const canvas = $("#sigma-chart"), g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, B = 18, n = 24;
  g.clearRect(0, 0, W, H);
  rows = rows.filter((r) => r.sigma_mean != null);   // windows of models without uncertainty have no σ
  if (!rows.length) return;
  const hi = Math.max(0.02, ...rows.map((r) => r.sigma_max)) * 1.05;
  const counts = new Array(n).fill(0);
  let total = 0, mean = 0, high = 0;
  for (const r of rows) {
    const ws = r.with_sigma ?? r.detections;
    counts[Math.min(n - 1, Math.floor(r.sigma_mean / hi * n))] += ws;
    total += ws; mean += r.sigma_mean * ws; high += r.high_sigma_share * ws;
  }
  const cmax = Math.max(1, ...counts), bw = (W - 20) / n;
  counts.forEach((c, i) => {
    const h = (H - B - 8) * c / cmax;
    g.fillStyle = "#4cc9f0"; g.fillRect(10 + i * bw + 1, H - B - h, bw - 2, h);
  });
  g.fillStyle = "#8b97a3"; g.font = "11px sans-serif";
  g.fillText("0", 10, H - 4); g.fillText(fmt(hi, 3), W - 44, H - 4);
  const thr = rows[rows.length - 1].high_sigma_threshold;
  $("#sigma-stats").textContent = `${total} detections in ${rows.length} windows; mean σ̄ ` +
    `${total ? fmt(mean / total, 4) : "–"}; ${total ? fmt(100 * high / total, 1) : "–"} % with σ̄ ≥ ${fmt(thr, 2)}`;
}

function renderAlerts() {
  const ol = $("#alerts");
  ol.textContent = "";
  $("#no-alerts").hidden = S.alerts.size > 0;
  const list = [...S.alerts.values()].sort((a, b) => (a.state === b.state ? b.ts - a.ts : a.state === "firing" ? -1 : 1));
  for (const a of list) {
    const li = el("li", {"data-alert": a.id, class: `alert-${a.state} sev-${a.severity}`});
    li.appendChild(el("span", {class: "when"}, new Date(a.ts * 1000).toLocaleTimeString()));
    li.appendChild(el("span", {class: "state"}, a.state));
    li.appendChild(document.createTextNode(` ${a.severity} · ${a.message}`));
    ol.appendChild(li);
  }
}

function renderInvalid() {
  $("#invalid-section").hidden = S.invalid.length === 0;
  const ol = $("#invalid"); ol.textContent = "";
  for (const e of S.invalid) ol.appendChild(el("li", {}, `${e.topic}: ${e.error}`));
}

// ---------------------------------------------------------------- connection
function connect() {
  if (new URLSearchParams(location.search).has("snapshot")) {   // a still picture (sigmawatch-demo --screenshot)
    fetch("/api/state").then((r) => r.json()).then((snap) => {
      onEvent(snap);
      $("#stream").className = "pill on"; $("#stream").textContent = "page: snapshot";
    });
    return;
  }
  const es = new EventSource("/events");
  es.onopen = () => { $("#stream").className = "pill on"; $("#stream").textContent = "page: live"; };
  es.onerror = () => { $("#stream").className = "pill off"; $("#stream").textContent = "page: reconnecting"; };
  es.onmessage = (m) => onEvent(JSON.parse(m.data));
}
connect();
