// sigmawatch dashboard: one EventSource to our server, plain DOM + canvas, no dependencies.
"use strict";

const PALETTE = ["#4cc9f0", "#f72585", "#b5e48c", "#ffb703", "#9b5de5", "#00f5d4", "#fb8500", "#e63946"];
const classColors = new Map();
function colorFor(label) {
  if (!classColors.has(label)) classColors.set(label, PALETTE[classColors.size % PALETTE.length]);
  return classColors.get(label);
}

const S = {
  devices: new Map(),    // device -> {status, metrics, detections, detection_messages, detections_count, last_seen}
  aggregates: new Map(), // id -> aggregate payload (one device, one class, one window)
  health: new Map(),     // device -> latest health payload (the Flink job's view of the device)
  stats: null,           // latest job stats payload (dead letters, late events)
  alerts: new Map(),     // alert id -> latest alert payload (firing | cleared)
  alertTopics: new Map(),// alert id -> its MQTT topic (an empty retained message there clears it)
  tracks: new Map(),     // device -> {tracks: Map(track id -> state incl. trail), events: [log entries, oldest first]}
  removed: [],           // the last devices forgotten, with the reason
  invalid: [],
  // the server's settings (ViewSettings): when a device is stale / forgotten, the charts' time spans
  view: {stale_after_s: 60, forget_after_s: 3600, recent_s: 300, history_s: 1800, track_timeout_s: 30},
  offset: 0,             // server clock minus this browser's clock, s ("last seen" is on the server's clock)
  counters: {messages: 0, detections: 0, aggregates: 0, alerts: 0, invalid: 0},
  dirty: new Set(),
};
const MAX_ROWS = 5000;
const MAX_TRACK_EVENTS = 40;   // per camera, as the server keeps (dashboard/tracks.py)
const aggregatedDetections = () => { let n = 0; for (const a of S.aggregates.values()) n += a.detections; return n; };
const $ = (sel) => document.querySelector(sel);
function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
const fmt = (v, d = 1) => (v === undefined || v === null || Number.isNaN(v)) ? "–" : Number(v).toFixed(d);
const serverNow = () => Date.now() / 1000 + S.offset;
const pad2 = (n) => String(n).padStart(2, "0");
// clock time in the browser's time zone: HH:MM:SS, or HH:MM when seconds carry nothing
function clock(t, seconds = true) {
  const d = new Date(t * 1000);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}` + (seconds ? `:${pad2(d.getSeconds())}` : "");
}
function duration(s) {
  s = Math.max(0, Math.floor(s));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}
const SVG_NS = "http://www.w3.org/2000/svg";
function svgEl(parent, tag, attrs = {}, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  parent.appendChild(e);
  return e;
}

// ---------------------------------------------------------------- event handling
function onEvent(ev) {
  switch (ev.kind) {
    case "snapshot":
      S.devices.clear(); S.aggregates = []; S.alerts = []; S.invalid = [];
      S.view = Object.assign({}, S.view, ev.view);
      S.offset = ev.now - Date.now() / 1000;
      for (const [dev, d] of Object.entries(ev.devices)) {
        S.devices.set(dev, {status: d.status, metrics: d.metrics, detections: d.detections, objects: d.objects,
          detection_messages: d.detection_messages, detections_count: d.detections_count, last_seen: d.last_seen});
      }
      S.aggregates = new Map(ev.aggregates.map((a) => [a.payload.id, a.payload]));
      S.health = new Map(Object.entries(ev.health).map(([k, v]) => [k, v.payload]));
      S.stats = ev.stats ? ev.stats.payload : null;
      S.alerts = new Map(ev.alerts.map((a) => [a.payload.id, a.payload]));
      S.alertTopics = new Map(ev.alerts.map((a) => [a.payload.id, a.topic]));
      S.invalid = ev.invalid.slice();
      S.removed = (ev.removed || []).map((r) => ({device: r.device, reason: r.reason, at: r.received})).reverse();
      S.counters = Object.assign({}, ev.counters);
      S.tracks = new Map(Object.entries(ev.tracks || {}).map(([dev, c]) =>
        [dev, {tracks: new Map(c.tracks.map((t) => [t.track, t])), events: c.events.slice()}]));
      setBroker(ev.broker);
      ["devices", "live", "tracks", "aggregates", "alerts", "invalid", "counters"].forEach((k) => S.dirty.add(k));
      break;
    case "broker": setBroker(ev); break;
    case "status": case "metrics": case "detections": case "events": case "objects": {
      const d = device(ev.device);
      if (ev.kind !== "events") d[ev.kind] = ev.payload;     // events: the tracks event that follows has them
      // the tracks card shows the counts and whether the camera is offline: a status that arrives after the last
      // counts (an agent stopping) must redraw it too
      if (ev.kind === "objects" || ev.kind === "status") S.dirty.add("tracks");
      d.last_seen = ev.last_seen;
      S.counters.messages++;
      if (ev.kind === "detections") {
        d.detection_messages++; d.detections_count += ev.payload.detections.length;
        S.counters.detections += ev.payload.detections.length;
        S.dirty.add("live");
      }
      S.dirty.add("devices"); S.dirty.add("counters");
      break;
    }
    case "tracks": {   // what one message changed about a camera's tracks (dashboard/tracks.py)
      if (!S.tracks.has(ev.device)) S.tracks.set(ev.device, {tracks: new Map(), events: []});
      const cam = S.tracks.get(ev.device);
      for (const id of ev.removed) cam.tracks.delete(id);
      for (const t of ev.tracks) cam.tracks.set(t.track, t);
      cam.events.push(...ev.events);
      if (cam.events.length > MAX_TRACK_EVENTS) cam.events.splice(0, cam.events.length - MAX_TRACK_EVENTS);
      S.dirty.add("tracks");
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
      S.alerts.delete(ev.payload.id); S.alerts.set(ev.payload.id, ev.payload); S.alertTopics.set(ev.payload.id, ev.topic);
      S.dirty.add("alerts"); S.dirty.add("counters");
      break;
    case "cleared":   // an empty retained message: the server dropped what that topic held (a status: the device)
      S.counters.messages++;
      if (S.devices.has(ev.device) && ["metrics", "detections", "objects"].includes(ev.part)) {
        delete S.devices.get(ev.device)[ev.part];
        S.dirty.add("devices"); S.dirty.add("live"); S.dirty.add("tracks");
      } else if (ev.part === "health") {
        S.health.delete(ev.device); S.dirty.add("devices");
      } else if (ev.part === "alert") {
        for (const [id, topic] of S.alertTopics) if (topic === ev.topic) { S.alerts.delete(id); S.alertTopics.delete(id); }
        S.dirty.add("alerts"); S.dirty.add("counters");
      }
      S.dirty.add("counters");
      break;
    case "device_removed":   // forgotten (not heard from for too long) or its retained status cleared
      S.devices.delete(ev.device); S.health.delete(ev.device); S.tracks.delete(ev.device);
      S.dirty.add("tracks");
      S.removed.unshift({device: ev.device, reason: ev.reason, at: ev.received});
      S.removed.length = Math.min(S.removed.length, 5);
      S.dirty.add("devices"); S.dirty.add("live");
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
  if (d.has("tracks")) renderTracks();
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

// the device table's columns: cell class -> its name (the header, and the label of each line on a phone)
const DEVICE_COLUMNS = {device: "device", state: "state", seen: "last seen", fps: "fps", processed: "processed",
  dropped: "dropped", outbox: "outbox", latency: "inference p50 / p95", seq: "last seq", detections: "detections",
  job: "seen by the job (last window)", model: "model"};

function renderDevices() {
  const body = $("#devices tbody");
  $("#no-devices").hidden = S.devices.size > 0;
  $("#freshness-hint").textContent = `stale after ${duration(S.view.stale_after_s)} without a message, ` +
    `forgotten after ${duration(S.view.forget_after_s)}`;
  for (const tr of [...body.querySelectorAll("tr")]) if (!S.devices.has(tr.dataset.device)) tr.remove();
  const rm = $("#removed"); rm.textContent = "";
  for (const r of S.removed) rm.appendChild(el("li", {"data-device": r.device}, `${r.device} removed at ${clock(r.at)}: ${r.reason}`));
  const now = serverNow();
  for (const [id, d] of [...S.devices.entries()].sort()) {
    let tr = body.querySelector(`tr[data-device="${CSS.escape(id)}"]`);
    if (!tr) {
      tr = el("tr", {"data-device": id});
      for (const [c, name] of Object.entries(DEVICE_COLUMNS)) tr.appendChild(el("td", {class: c, "data-label": name}));
      body.appendChild(tr);
    }
    const m = d.metrics || {}, st = d.status || {};
    const cell = (c, text, cls) => { const td = tr.querySelector("td." + c); td.textContent = text; if (cls !== undefined) td.className = c + " " + cls; };
    const age = d.last_seen == null ? null : now - d.last_seen;
    const said = st.state || (d.metrics || d.detections ? "online" : "unknown");
    // a device that says online but has been silent longer than stale-after is not believed
    const state = said !== "offline" && age !== null && age > S.view.stale_after_s ? "stale" : said;
    cell("device", id);
    cell("state", state, "state-" + state);
    tr.querySelector("td.state").title = state === "stale" ? `last said ${said}; silent for ${duration(age)}` : "";
    cell("seen", age === null ? "–" : `${duration(age)} ago`);
    tr.querySelector("td.seen").title = d.last_seen == null ? "" : new Date(d.last_seen * 1000).toLocaleString();
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
  for (const card of [...live.querySelectorAll(".cam")]) {
    const d = S.devices.get(card.dataset.device);
    if (!d || !d.detections) card.remove();
  }
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

function drawBoxWithBand(g, box, boxSigma, color, bandAlpha, W, H) {
  // the box, and around its edges the ±1σ band (box_sigma, the edges' σ: edgeSigma) filled in the box's colour
  const [x1, y1, x2, y2] = box;
  const es = edgeSigma(boxSigma);
  if (es) {
    const [sx, sy] = es;
    g.beginPath();
    g.rect((x1 - sx) * W, (y1 - sy) * H, (x2 - x1 + 2 * sx) * W, (y2 - y1 + 2 * sy) * H);
    const iw = x2 - x1 - 2 * sx, ih = y2 - y1 - 2 * sy;
    if (iw > 0 && ih > 0) g.rect((x1 + sx) * W, (y1 + sy) * H, iw * W, ih * H);
    g.fillStyle = color + bandAlpha;
    g.fill("evenodd");
  }
  g.strokeStyle = color; g.lineWidth = 2;
  g.strokeRect(x1 * W, y1 * H, (x2 - x1) * W, (y2 - y1) * H);
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
    const [x1, y1] = det.box;
    const c = colorFor(det.label);
    drawBoxWithBand(g, det.box, det.box_sigma, c, "55", W, H);
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

// ---------------------------------------------------------------- tracked objects
const EVENT_WORDS = {new: () => "new", end: () => "ended", entered: (e) => `entered ${e.zone}`,
  left: (e) => `left ${e.zone}`, crossed: (e) => `crossed ${e.line} (${e.direction})`, update: () => "relabelled"};

function renderTracks() {
  const root = $("#tracks");
  $("#track-timeout").textContent = duration(S.view.track_timeout_s);
  // every camera with tracks, events or object counts (a camera that tracks but has seen nothing yet: "nothing present")
  const none = {tracks: new Map(), events: []};
  const shown = [...S.devices.entries()].map(([id, d]) => [id, S.tracks.get(id) || none, d])
    .filter(([, c, d]) => c.tracks.size || c.events.length || d.objects)
    .sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const ids = new Set(shown.map(([id]) => id));
  for (const card of [...root.querySelectorAll(".trk")]) if (!ids.has(card.dataset.device)) card.remove();
  $("#no-tracks").hidden = shown.length > 0;
  for (const [id, cam] of shown) {
    let card = root.querySelector(`.trk[data-device="${CSS.escape(id)}"]`);
    if (!card) {
      card = el("div", {class: "trk", "data-device": id});
      const left = el("div");
      const h = el("h3"); h.appendChild(el("span", {class: "name"}, id)); h.appendChild(el("span", {class: "meta"}));
      left.appendChild(h);
      left.appendChild(el("canvas", {width: 480, height: 270}));
      const side = el("div", {class: "side"});
      side.appendChild(el("h4", {}, "objects present (the agent's counts)"));
      side.appendChild(el("ul", {class: "present"}));
      side.appendChild(el("h4", {}, "tracks"));
      side.appendChild(el("ul", {class: "track-list"}));
      side.appendChild(el("h4", {}, "recent events"));
      side.appendChild(el("ol", {class: "track-events"}));
      card.appendChild(left); card.appendChild(side);
      root.appendChild(card);
    }
    drawTracks(card, id, cam);
  }
}

function drawTracks(card, id, cam) {
  const d = S.devices.get(id) || {};
  const frame = (d.detections && d.detections.frame) || {w: 16, h: 9};   // events-only cameras: no frame size
  const canvas = card.querySelector("canvas");
  const W = 480, H = Math.max(60, Math.round(480 * frame.h / frame.w));
  if (canvas.height !== H) canvas.height = H;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, W, H);
  g.strokeStyle = "#1d2731"; g.lineWidth = 1;
  for (let i = 1; i < 4; i++) {
    g.beginPath(); g.moveTo(W * i / 4, 0); g.lineTo(W * i / 4, H); g.moveTo(0, H * i / 4); g.lineTo(W, H * i / 4); g.stroke();
  }
  const tracks = [...cam.tracks.values()].sort((a, b) => a.track - b.track);
  card.querySelector(".meta").textContent = `${tracks.length} track${tracks.length === 1 ? "" : "s"}`;
  const list = card.querySelector("ul.track-list");
  list.textContent = "";
  for (const t of tracks) {
    const c = colorFor(t.label);
    if (t.box) {
      const [x1, y1] = t.box;
      drawBoxWithBand(g, t.box, t.box_sigma, c, "44", W, H);
      g.font = "12px sans-serif"; g.fillStyle = c;
      g.fillText(`#${t.track} ${t.label}`, x1 * W + 2, Math.max(12, y1 * H - 3));
    }
    if (t.trail.length) {   // the trail: the last box centres, oldest to newest, a hue per track, ending in a white dot
      g.strokeStyle = `hsl(${(t.track * 137.508) % 360}, 85%, 68%)`; g.lineWidth = 2; g.beginPath();
      t.trail.forEach(([x, y], i) => (i ? g.lineTo(x * W, y * H) : g.moveTo(x * W, y * H)));
      g.stroke();
      const [x, y] = t.trail[t.trail.length - 1];
      g.fillStyle = "#ffffff"; g.beginPath(); g.arc(x * W, y * H, 3, 0, 2 * Math.PI); g.fill();
    }
    const li = el("li", {"data-track": t.track, "data-label": t.label, "data-trail": t.trail.length,
      "data-head": t.trail.length ? t.trail[t.trail.length - 1].join(",") : ""});
    li.appendChild(el("span", {class: "swatch", style: `background:${c}`}));
    const span = t.first_ts != null && t.last_ts != null ? t.last_ts - t.first_ts : null;
    const seen = span === null ? "–" : span < 10 ? `${span.toFixed(1)} s` : duration(span);
    const sigma = t.box_sigma ? `σ (cx,cy,w,h) ${t.box_sigma.map((v) => fmt(v, 3)).join(", ")} (${t.sigma_from === "track" ? "tracker" : "model"})` : "no σ";
    li.appendChild(document.createTextNode(`#${t.track} ${t.label} · seen ${seen} · ` +
      (t.zones.length ? `in ${t.zones.join(", ")} · ` : "") + sigma));
    list.appendChild(li);
  }
  const present = card.querySelector("ul.present");
  present.textContent = "";
  const counts = d.objects;
  if (!counts) present.appendChild(el("li", {class: "hint"}, "no counts received"));
  else {
    if (d.status && d.status.state === "offline") {   // a killed agent's last retained counts: say how old they are
      present.appendChild(el("li", {class: "warn offline"}, `camera offline; its last counts, at ${clock(counts.ts)}:`));
    }
    const labels = Object.entries(counts.objects).sort();
    if (!labels.length) present.appendChild(el("li", {"data-label": ""}, "nothing present"));
    for (const [label, n] of labels) present.appendChild(el("li", {"data-label": label}, `${label} present: ${n}`));
    for (const [zone, per] of Object.entries(counts.zones).sort()) {
      present.appendChild(el("li", {"data-zone": zone},
        `in ${zone}: ` + Object.entries(per).sort().map(([l, n]) => `${l} ${n}`).join(", ")));
    }
  }
  const ol = card.querySelector("ol.track-events");
  ol.textContent = "";
  for (const e of [...cam.events].reverse()) {
    const li = el("li", {"data-type": e.type, "data-track": e.track, "data-seq": e.seq});
    li.appendChild(el("span", {class: "when", title: new Date(e.ts * 1000).toLocaleString()}, clock(e.ts)));
    li.appendChild(document.createTextNode(`#${e.track} ${e.label} ${(EVENT_WORDS[e.type] || (() => e.type))(e)}`));
    ol.appendChild(li);
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
    tr.appendChild(el("td", {class: "high"}, t.withSigma ? fmt(100 * t.high / t.withSigma, 1) + "\u00a0%" : "–"));
    tr.appendChild(el("td", {class: "windows"}, String(t.windows)));
    body.appendChild(tr);
  }
  // The charts follow the newest window (event time, so a browser or job with another clock does not matter):
  // the counts over the last history_s, the σ̄ histogram over the last recent_s, both by window end.
  let newest = -Infinity;
  for (const r of rows) newest = Math.max(newest, r.window_end);
  const within = (span) => rows.filter((r) => r.window_end > newest - span);
  const history = within(S.view.history_s);
  drawCounts(history, [...new Set(history.map((r) => r.label))].sort());
  drawSigma(within(S.view.recent_s), newest);
}

const NICE_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
// time ticks at round clock times of the browser's zone, at most maxTicks of them over [t0, t1]
function timeTicks(t0, t1, maxTicks) {
  const span = Math.max(t1 - t0, 1e-9);
  const step = NICE_STEPS.find((s) => span / s <= maxTicks - 1) || Math.ceil(span / (maxTicks - 1) / 86400) * 86400;
  const zone = -new Date(t0 * 1000).getTimezoneOffset() * 60;
  const ticks = [];
  for (let t = Math.ceil((t0 + zone) / step - 1e-9) * step - zone; t <= t1 + 1e-9; t += step) ticks.push(t);
  return {ticks, step};
}

function chartCanvas(id) {
  const svg = $(id);
  svg.textContent = "";
  const W = Math.max(200, Math.round(svg.getBoundingClientRect().width) || 640);
  const H = Number(svg.getAttribute("height"));
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  return {svg, W, H};
}

function drawCounts(rows, labels) {
  const {svg, W, H} = chartCanvas("#counts-chart");
  const L = 36, R = 30, T = 10, B = 22;
  const legend = $("#counts-legend"); legend.textContent = "";
  $("#counts-span").textContent = `last ${duration(S.view.history_s)} of windows`;
  if (!rows.length) return;
  // detections per (class, window start), summed over devices
  const series = new Map(labels.map((l) => [l, new Map()]));
  for (const r of rows) {
    const s = series.get(r.label);
    s.set(r.window_start, (s.get(r.window_start) || 0) + r.detections);
  }
  let t0 = Infinity, t1 = -Infinity, ymax = 1;
  for (const r of rows) { t0 = Math.min(t0, r.window_start); t1 = Math.max(t1, r.window_start); }
  if (t1 === t0) t1 = t0 + Math.max(1, rows[0].window_end - rows[0].window_start);   // one window: its width
  for (const s of series.values()) for (const v of s.values()) ymax = Math.max(ymax, v);
  const X = (t) => L + (W - L - R) * (t - t0) / (t1 - t0), Y = (v) => H - B - (H - B - T) * v / ymax;
  svgEl(svg, "path", {class: "axis", d: `M${L},${T} V${H - B} H${W - R / 2}`});
  svgEl(svg, "text", {class: "y-tick", x: L - 4, y: Y(ymax) + 4, "text-anchor": "end"}, String(ymax));
  svgEl(svg, "text", {class: "y-tick", x: L - 4, y: H - B + 4, "text-anchor": "end"}, "0");
  const {ticks, step} = timeTicks(t0, t1, Math.max(2, Math.floor((W - L - R) / 64)));
  for (const t of ticks) {
    svgEl(svg, "path", {class: "grid", d: `M${X(t)},${T} V${H - B}`});
    const day = new Date(t * 1000);                    // a history of days (--history): the date instead
    svgEl(svg, "text", {class: "x-tick", x: X(t), y: H - 6, "text-anchor": "middle", "data-t": t},
      step >= 86400 ? `${day.getFullYear()}-${pad2(day.getMonth() + 1)}-${pad2(day.getDate())}` : clock(t, step < 60));
  }
  for (const label of labels) {
    const pts = [...series.get(label).entries()].sort((a, b) => a[0] - b[0]);
    const c = colorFor(label);
    svgEl(svg, "polyline", {points: pts.map(([t, v]) => `${X(t)},${Y(v)}`).join(" "), fill: "none", stroke: c,
      "stroke-width": 2, "data-label": label});
    for (const [t, v] of pts) svgEl(svg, "circle", {class: "pt", cx: X(t), cy: Y(v), r: 2.5, fill: c,
      "data-label": label, "data-t": t, "data-v": v});
    const item = el("span", {"data-label": label});
    item.appendChild(el("span", {class: "swatch", style: `background:${c}`}));
    item.appendChild(document.createTextNode(label));
    legend.appendChild(item);
  }
}

function drawSigma(rows, newest) {
  // Each recent window contributes its mean σ̄ with weight = its detections with σ.
  const {svg, W, H} = chartCanvas("#sigma-chart");
  const L = 36, R = 14, T = 10, B = 22, n = 24;
  const span = `the windows that ended in the last ${duration(S.view.recent_s)} before the newest one's end`;
  rows = rows.filter((r) => r.sigma_mean != null);   // windows of models without uncertainty have no σ
  if (!rows.length) {
    $("#sigma-span").textContent = span;
    $("#sigma-stats").textContent = "no windows with σ in that span";
    return;
  }
  let first = Infinity;
  for (const r of rows) first = Math.min(first, r.window_start);
  $("#sigma-span").textContent = `${span} (${clock(first)}–${clock(newest)})`;
  let hi = 0.02;
  for (const r of rows) hi = Math.max(hi, r.sigma_max);
  hi *= 1.05;
  const counts = new Array(n).fill(0);
  let total = 0, mean = 0, high = 0;
  for (const r of rows) {
    const ws = r.with_sigma ?? r.detections;
    counts[Math.min(n - 1, Math.floor(r.sigma_mean / hi * n))] += ws;
    total += ws; mean += r.sigma_mean * ws; high += r.high_sigma_share * ws;
  }
  const cmax = Math.max(1, ...counts), bw = (W - L - R) / n;
  svgEl(svg, "path", {class: "axis", d: `M${L},${T} V${H - B} H${W - R}`});
  svgEl(svg, "text", {class: "y-tick", x: L - 4, y: T + 4, "text-anchor": "end"}, String(cmax));
  svgEl(svg, "text", {class: "y-tick", x: L - 4, y: H - B + 4, "text-anchor": "end"}, "0");
  counts.forEach((c, i) => {
    const h = (H - B - T) * c / cmax;
    svgEl(svg, "rect", {class: "bin", x: L + i * bw + 1, y: H - B - h, width: Math.max(1, bw - 2), height: h,
      "data-lo": hi * i / n, "data-hi": hi * (i + 1) / n, "data-count": c});
  });
  for (const f of [0, 0.5, 1]) {
    svgEl(svg, "text", {class: "x-tick", x: L + f * (W - L - R), y: H - 6, "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle"},
      (f === 0.5 ? "σ̄ " : "") + fmt(hi * f, 3));
  }
  const thr = rows[rows.length - 1].high_sigma_threshold;
  $("#sigma-stats").textContent = `${total} detections in ${rows.length} window${rows.length === 1 ? "" : "s"}; mean σ̄ ` +
    `${total ? fmt(mean / total, 4) : "–"}; ${total ? fmt(100 * high / total, 1) : "–"} % with σ̄ ≥ ${fmt(thr, 2)}`;
}

function renderAlerts() {
  const ol = $("#alerts");
  ol.textContent = "";
  $("#no-alerts").hidden = S.alerts.size > 0;
  const list = [...S.alerts.values()].sort((a, b) => (a.state === b.state ? b.ts - a.ts : a.state === "firing" ? -1 : 1));
  for (const a of list) {
    const li = el("li", {"data-alert": a.id, class: `alert-${a.state} sev-${a.severity}`});
    li.appendChild(el("span", {class: "when", title: new Date(a.ts * 1000).toLocaleString()}, clock(a.ts)));
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
  setInterval(() => { if (S.devices.size) { S.dirty.add("devices"); scheduleRender(); } }, 1000);  // "last seen" ticks
  window.addEventListener("resize", () => { S.dirty.add("aggregates"); scheduleRender(); });
  const es = new EventSource("/events");
  es.onopen = () => { $("#stream").className = "pill on"; $("#stream").textContent = "page: live"; };
  es.onerror = () => { $("#stream").className = "pill off"; $("#stream").textContent = "page: reconnecting"; };
  es.onmessage = (m) => onEvent(JSON.parse(m.data));
}
connect();
