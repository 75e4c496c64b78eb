// The Outpost console: dashboard, playground, player, decisions tail. Fed by one
// server-sent-events stream (/console/api/events). No inline script anywhere: the
// page's Content-Security-Policy forbids it.

import { LineChart, fmt } from "./charts.js";

const $ = (id) => document.getElementById(id);
const CLASSES = ["critical", "high", "normal", "low", "bulk"];
const STATUS = ["1xx", "2xx", "3xx", "4xx", "5xx"];

// ---------------------------------------------------------------- navigation

function show(view) {
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${view}`;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  if (view === "playground") playground.open();
}
window.addEventListener("hashchange", () => show(location.hash.slice(1) || "dashboard"));

// ---------------------------------------------------------------- dashboard

const charts = {
  status: new LineChart($("chart-status"), { unit: "/s" }),
  latency: new LineChart($("chart-latency"), { unit: " ms" }),
  classes: new LineChart($("chart-classes"), { unit: "/s" }),
  origins: new LineChart($("chart-origins")),
  guests: new LineChart($("chart-guests"), { unit: " µs" }),
  cache: new LineChart($("chart-cache"), { unit: "/s" }),
};
let previous = null;
let firstChartAt = null;

function rate(now, before, dt) {
  return before === undefined ? 0 : Math.max(0, (now - before) / dt);
}

// The q-quantile of the observations between two cumulative bucket lists.
function quantile(buckets, before, q) {
  const deltas = buckets.map(([le, n], i) => [le, n - (before && before[i] ? before[i][1] : 0)]);
  const total = deltas.length ? deltas[deltas.length - 1][1] : 0;
  if (total <= 0) return null;
  const want = q * total;
  let lowerLe = 0, lowerN = 0;
  for (const [le, n] of deltas) {
    if (n >= want) {
      if (le === "+Inf") return lowerLe * 1e3;
      const span = n - lowerN;
      const frac = span > 0 ? (want - lowerN) / span : 1;
      return (lowerLe + (le - lowerLe) * frac) * 1e3;
    }
    lowerLe = le === "+Inf" ? lowerLe : le;
    lowerN = n;
  }
  return lowerLe * 1e3;
}

function onStats(s) {
  if (previous) {
    const dt = Math.max(0.001, (s.t - previous.t) / 1000);
    const status = {};
    for (const k of STATUS) status[k] = rate(s.responses[k] || 0, previous.responses[k] || 0, dt);
    status.total = STATUS.reduce((a, k) => a + status[k], 0);
    charts.status.push(status);

    const b = s.latency.buckets, pb = previous.latency.buckets;
    charts.latency.push({ p50: quantile(b, pb, 0.5), p90: quantile(b, pb, 0.9), p99: quantile(b, pb, 0.99) });

    const classes = {};
    for (const kind of ["admitted", "queued", "shed"]) {
      const now = s.classes[kind] || {}, then = previous.classes[kind] || {};
      for (const c of CLASSES) {
        const r = rate(now[c] || 0, then[c] || 0, dt);
        if (kind === "admitted" || r > 0 || (charts.classes.series.has(`${kind} ${c}`))) classes[`${kind} ${c}`] = r;
      }
    }
    charts.classes.push(classes);

    const origins = {};
    for (const [name, o] of Object.entries(s.origins)) {
      origins[`${name} limit`] = o.limit;
      origins[`${name} in flight`] = o.in_flight;
      origins[`${name} queued`] = o.queued;
    }
    charts.origins.push(origins);

    const guests = {};
    for (const [name, g] of Object.entries(s.guests)) {
      const p = previous.guests[name] || {};
      const calls = (g.calls || 0) - (p.calls || 0);
      guests[name] = calls > 0 ? (((g.seconds || 0) - (p.seconds || 0)) / calls) * 1e6 : null;
    }
    charts.guests.push(guests);

    const cache = {};
    for (const [k, v] of Object.entries(s.cache)) cache[k] = rate(v, previous.cache[k], dt);
    const lookups = Object.values(cache).reduce((a, v) => a + v, 0);
    if (s.cache_enabled) cache["hit ratio %"] = lookups > 0 ? (100 * ((cache.hit || 0) + (cache.collapsed || 0) + (cache.stale || 0))) / lookups : null;
    charts.cache.push(cache);
    if (firstChartAt === null) {
      firstChartAt = performance.now();
      document.body.dataset.firstChartMs = String(Math.round(firstChartAt));
    }
  }
  previous = s;
  const routes = $("dt-route");
  for (const r of s.routes) {
    if (![...routes.options].some((o) => o.value === r)) routes.append(new Option(r, r));
  }
}

// ---------------------------------------------------------------- decisions tail

const recent = []; // newest last, at most 500
let paused = false;

function guestsText(d) {
  return (d.decision.guests || []).join(" ");
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (c && typeof c === "object") { td.textContent = c.text; td.className = c.cls || ""; } else td.textContent = c ?? "";
    tr.append(td);
  }
  return tr;
}

function time(ms) {
  return new Date(ms).toISOString().slice(11, 23);
}

function matches(d) {
  const route = $("dt-route").value, cls = $("dt-class").value, st = $("dt-status").value, p = $("dt-path").value;
  if (route && d.decision.route !== route) return false;
  if (cls && d.decision.class !== cls) return false;
  if (st && String(d.decision.status)[0] !== st) return false;
  if (p && !d.path.includes(p)) return false;
  return true;
}

function renderTail() {
  const rows = recent.filter(matches).slice(-200).reverse();
  $("dt-rows").replaceChildren(...rows.map((d) => row([
    time(d.t), `${d.method} ${d.path}`, d.decision.route, d.decision.class,
    { text: String(d.decision.status), cls: `s${String(d.decision.status)[0]}` },
    guestsText(d), d.decision.forwarded, d.decision.cache, d.ms.toFixed(1),
  ])));
  $("dt-count").textContent = `${rows.length} shown of ${recent.length} received`;
}
// At most one redraw a frame, however fast decisions arrive.
let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; renderTail(); });
}
for (const id of ["dt-route", "dt-class", "dt-status", "dt-path"]) $(id).addEventListener("input", renderTail);
$("dt-pause").addEventListener("click", () => {
  paused = !paused;
  $("dt-pause").textContent = paused ? "Resume" : "Pause";
});

function onDecision(d) {
  if (paused) return;
  recent.push(d);
  if (recent.length > 500) recent.shift();
  if (!$("view-decisions").hidden) scheduleRender();
  player.decision(d);
  playground.recent(d);
}

// ---------------------------------------------------------------- events

function connect() {
  const es = new EventSource("api/events");
  es.addEventListener("open", () => { $("link").textContent = "live"; });
  es.addEventListener("error", () => { $("link").textContent = "reconnecting…"; });
  es.addEventListener("stats", (e) => onStats(JSON.parse(e.data)));
  es.addEventListener("decision", (e) => onDecision(JSON.parse(e.data)));
}

// ---------------------------------------------------------------- playground

const playground = (() => {
  let wasm = null;
  let presets = [];
  let harEntries = [];
  const recentRequests = [];

  async function load() {
    if (wasm) return wasm;
    const mod = await import("./playground.js");
    await mod.default({ module_or_path: new URL("playground_bg.wasm", import.meta.url) });
    wasm = mod;
    try { $("pg-version").textContent = JSON.parse(mod.version()).contract ? `contract ${JSON.parse(mod.version()).contract}` : ""; } catch { /* shown without */ }
    return wasm;
  }

  async function open() {
    await load();
    if (!presets.length) {
      presets = await (await fetch("api/guests")).json();
      for (const g of presets) $("pg-preset").append(new Option(`${g.name} (${g.wasm})`, g.name));
      pickPreset(defaultPreset($("pg-guest").value));
    }
  }

  function defaultPreset(kind) {
    return presets.find((g) => g.wasm === `builtin:${kind}`) || null;
  }

  function pickPreset(g) {
    if (!g) return;
    $("pg-config").value = g.config;
    const kind = ["rewrite", "rendition", "shed"].find((k) => g.wasm === `builtin:${k}`);
    if (kind) { $("pg-guest").value = kind; kindChanged(); }
  }

  function kindChanged() {
    for (const el of document.querySelectorAll(".rendition-only")) el.hidden = $("pg-guest").value !== "rendition";
  }

  // "GET /path?q HTTP/1.1\nHost: h\nName: value" to the playground's request JSON.
  function parseRequest(text) {
    const lines = text.replace(/\r/g, "").split("\n");
    const [method = "GET", target = "/"] = (lines.shift() || "").trim().split(/\s+/);
    const headers = [];
    for (const l of lines) {
      if (!l.trim()) break;
      const i = l.indexOf(":");
      if (i > 0) headers.push([l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()]);
    }
    let url;
    try { url = new URL(target, "http://placeholder"); } catch { url = new URL("http://placeholder/"); }
    const host = headers.find(([k]) => k === "host");
    const q = target.indexOf("?");
    return {
      method, scheme: "http", authority: host ? host[1] : (url.host === "placeholder" ? "" : url.host),
      path: q >= 0 ? target.slice(0, q).replace(/^https?:\/\/[^/]*/, "") : target.replace(/^https?:\/\/[^/]*/, ""),
      query: q >= 0 ? target.slice(q + 1) : "",
      headers, client_ip: "192.0.2.10", country: null,
    };
  }

  function requestText(method, path, headers) {
    return `${method} ${path} HTTP/1.1\n` + headers.map(([k, v]) => `${k}: ${v}`).join("\n");
  }

  function showConfigErrors(errors) {
    const box = $("pg-errors");
    box.replaceChildren(...errors.map((e) => {
      const p = document.createElement("div");
      p.className = "error";
      p.textContent = `line ${e.line}, column ${e.column}${e.key ? ` (${e.key})` : ""}: ${e.message}`;
      return p;
    }));
    const bad = new Set(errors.map((e) => e.line));
    const lines = $("pg-config").value.split("\n");
    $("pg-config-lines").replaceChildren(...(errors.length ? lines.map((l, i) => {
      const div = document.createElement("div");
      if (bad.has(i + 1)) div.className = "err";
      const n = document.createElement("span");
      n.className = "lineno";
      n.textContent = String(i + 1);
      div.append(n, l || " ");
      return div;
    }) : []));
  }

  function showForwarded(req, out) {
    const box = $("pg-forwarded");
    box.replaceChildren();
    if (out.action === "respond" && out.response) {
      box.append(`answered at the edge: ${out.response.status}\n`);
      for (const [k, v] of out.response.headers || []) box.append(`${k}: ${v}\n`);
      if (out.response.body) box.append(`\n${out.response.body}`);
      return;
    }
    if (!out.forwarded) return;
    const line = document.createElement("div");
    line.textContent = `to the origin: ${out.forwarded}`;
    if (out.forwarded !== `${req.method} ${req.path}${req.query ? `?${req.query}` : ""}`) line.className = "changed";
    box.append(line);
    const set = new Map((out.headers_set || []).map((h) => [h.slice(0, h.indexOf(":")).toLowerCase(), h]));
    const removed = new Set((out.headers_removed || []).map((h) => h.toLowerCase()));
    for (const [k, v] of req.headers) {
      if (set.has(k)) continue;
      const d = document.createElement("div");
      d.textContent = `${k}: ${v}`;
      if (removed.has(k)) d.className = "removed";
      box.append(d);
    }
    for (const h of set.values()) {
      const d = document.createElement("div");
      d.className = "changed";
      d.textContent = h;
      box.append(d);
    }
  }

  // A line diff (longest common subsequence) of two texts.
  function diff(a, b) {
    const x = a.split("\n"), y = b.split("\n");
    const n = x.length, m = y.length;
    const L = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
    for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    const out = [];
    let i = 0, j = 0;
    while (i < n && j < m) {
      if (x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; } else if (L[i + 1][j] >= L[i][j + 1]) out.push(["-", x[i++]]); else out.push(["+", y[j++]]);
    }
    while (i < n) out.push(["-", x[i++]]);
    while (j < m) out.push(["+", y[j++]]);
    return out;
  }

  function showDiff(before, after) {
    const box = $("pg-diff");
    if (after === null || after === undefined) { box.replaceChildren(); return; }
    box.replaceChildren(...diff(before, after).map(([op, l]) => {
      const d = document.createElement("div");
      d.className = op === "+" ? "add" : op === "-" ? "del" : "";
      d.textContent = `${op} ${l}`;
      return d;
    }));
  }

  async function run() {
    const w = await load();
    const kind = $("pg-guest").value;
    const config = $("pg-config").value;
    const req = parseRequest($("pg-request").value);
    let out;
    if (kind === "rewrite") out = JSON.parse(w.rewrite(config, JSON.stringify(req)));
    else if (kind === "shed") out = JSON.parse(w.classify(config, JSON.stringify(req), JSON.stringify(load_())));
    else {
      const response = { status: 200, headers: [["content-type", $("pg-ctype").value]], request: req };
      out = JSON.parse(w.rendition(config, JSON.stringify(response), $("pg-manifest").value, JSON.stringify(load_())));
    }
    $("pg-raw").textContent = JSON.stringify(out, null, 2);
    showConfigErrors(out.config_errors || []);
    if (out.error) { $("pg-summary").textContent = `error: ${out.error}`; return out; }
    if (kind === "rewrite") {
      $("pg-summary").textContent = out.action === "respond" ? `answered at the edge (${out.response && out.response.status})` : "forwarded";
      showForwarded(req, out);
      showDiff("", null);
    } else if (kind === "shed") {
      $("pg-summary").textContent = `admit: ${JSON.stringify(out.decision)}`;
      $("pg-forwarded").replaceChildren();
      showDiff("", null);
    } else {
      $("pg-summary").textContent = `${out.action}${out.body_replaced ? ", manifest trimmed" : ""}`;
      $("pg-forwarded").replaceChildren(...(out.headers_set || []).map((h) => { const d = document.createElement("div"); d.className = "changed"; d.textContent = h; return d; }));
      showDiff($("pg-manifest").value, out.body_replaced ? out.body : null);
    }
    return out;
  }

  function load_() {
    return { utilization: Number($("pg-load").value) };
  }

  function recent(d) {
    if (recentRequests.some((r) => r.path === d.path && r.method === d.method)) return;
    recentRequests.push(d);
    if (recentRequests.length > 50) recentRequests.shift();
    const sel = $("pg-recent");
    sel.replaceChildren(new Option("from the decisions tail…", ""), ...recentRequests.map((r, i) => new Option(`${r.method} ${r.path}`, String(i))));
  }

  $("pg-guest").addEventListener("change", () => { kindChanged(); pickPreset(defaultPreset($("pg-guest").value)); });
  $("pg-preset").addEventListener("change", () => pickPreset(presets.find((g) => g.name === $("pg-preset").value)));
  $("pg-recent").addEventListener("change", () => {
    const r = recentRequests[Number($("pg-recent").value)];
    if (r) $("pg-request").value = requestText(r.method, r.path, [["host", "example.com"], ...(r.cmcd.length ? [["cmcd-request", r.cmcd.join(",")]] : [])]);
  });
  $("pg-har").addEventListener("change", async () => {
    const file = $("pg-har").files[0];
    if (!file) return;
    try {
      const har = JSON.parse(await file.text());
      harEntries = (har.log && har.log.entries) || [];
    } catch (e) { $("pg-summary").textContent = `not a HAR file: ${e.message}`; return; }
    const sel = $("pg-har-entries");
    sel.hidden = false;
    sel.replaceChildren(...harEntries.map((e, i) => new Option(`${e.request.method} ${e.request.url}`.slice(0, 120), String(i))));
    sel.dispatchEvent(new Event("change"));
  });
  $("pg-har-entries").addEventListener("change", () => {
    const e = harEntries[Number($("pg-har-entries").value)];
    if (!e) return;
    const url = new URL(e.request.url);
    const headers = (e.request.headers || []).filter((h) => !h.name.startsWith(":")).map((h) => [h.name.toLowerCase(), h.value]);
    if (!headers.some(([k]) => k === "host")) headers.unshift(["host", url.host]);
    $("pg-request").value = requestText(e.request.method, url.pathname + url.search, headers);
    const text = e.response && e.response.content && e.response.content.text;
    if (text) $("pg-manifest").value = e.response.content.encoding === "base64" ? atob(text) : text;
  });
  $("pg-load").addEventListener("input", () => { $("pg-load-value").textContent = $("pg-load").value; });
  $("pg-run").addEventListener("click", () => { run().catch((e) => { $("pg-summary").textContent = `error: ${e}`; }); });
  $("pg-manifest").value = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n360p/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720\n720p/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=6000000,RESOLUTION=1920x1080\n1080p/index.m3u8\n";

  // For tests and scripts: the playground's own functions, loaded.
  window.outpostPlayground = {
    load,
    run,
    async rewriteBatch(config, requests) {
      const w = await load();
      return JSON.parse(w.rewrite_batch(config, JSON.stringify(requests)));
    },
    async rendition(config, response, body, loadSignals) {
      const w = await load();
      return JSON.parse(w.rendition(config, JSON.stringify(response), body, JSON.stringify(loadSignals || {})));
    },
  };
  return { open, recent };
})();

// ---------------------------------------------------------------- player

const player = (() => {
  let hls = null;
  let path = null;

  function loadHls() {
    if (window.Hls) return Promise.resolve(window.Hls);
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = "hls.min.js";
      s.onload = () => resolve(window.Hls);
      s.onerror = () => reject(new Error("hls.js did not load"));
      document.head.append(s);
    });
  }

  async function play() {
    const Hls = await loadHls();
    const url = $("pl-url").value.trim() || "/live/master.m3u8";
    path = url.startsWith("/") ? url : `/${url}`;
    const dir = path.slice(0, path.lastIndexOf("/") + 1);
    $("pl-decisions").replaceChildren();
    if (hls) hls.destroy();
    hls = new Hls({ cmcd: { sessionId: `console-${Date.now()}`, useHeaders: false } });
    const video = $("pl-video");
    hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => {
      $("pl-offered").textContent = data.levels.map((l) => `${l.height}p ${Math.round(l.bitrate / 1000)}k`).join(", ");
      document.body.dataset.offered = data.levels.map((l) => l.bitrate).join(",");
      video.play().catch(() => {});
    });
    hls.on(Hls.Events.FRAG_LOADED, (_, data) => {
      const l = hls.levels[data.frag.level];
      if (l) $("pl-level").textContent = `${l.height}p ${Math.round(l.bitrate / 1000)}k (fragment ${data.frag.sn})`;
    });
    hls.on(Hls.Events.ERROR, (_, data) => { if (data.fatal) $("pl-state").textContent = `error: ${data.details}`; });
    video.addEventListener("timeupdate", () => { $("pl-state").textContent = `played ${video.currentTime.toFixed(1)} s`; document.body.dataset.played = String(video.currentTime); });
    hls.loadSource(`play${path}`);
    hls.attachMedia(video);
    path = dir;
  }

  function decision(d) {
    if (!path || !d.path.startsWith(path)) return;
    const body = $("pl-decisions");
    body.prepend(row([
      time(d.t), d.path.replace(/[?&]CMCD=[^&]*/, "").slice(0, 60),
      { text: String(d.decision.status), cls: `s${String(d.decision.status)[0]}` },
      guestsText(d) + (d.decision.body_replaced ? " (body replaced)" : ""),
      d.decision.cache, d.cmcd.join(" "), d.cmsd.join(" "),
    ]));
    while (body.children.length > 100) body.lastChild.remove();
  }

  $("pl-play").addEventListener("click", () => { play().catch((e) => { $("pl-state").textContent = String(e); }); });
  return { decision, play };
})();

window.outpostConsole = { charts, player, recent, quantile };
connect();
show(location.hash.slice(1) || "dashboard");
