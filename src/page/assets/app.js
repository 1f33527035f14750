// The history page: reads /api/v1/ (same origin, the browser's own
// credentials) and draws it. The view lives in the URL, with the API's
// parameter names, so a pasted link opens the same view.
"use strict";

const API = "/api/v1/";
const PAGE_LIMIT = 1000; // the API's largest page
const MAX_EPISODES = 20000; // what the timeline loads before it says it stopped
const ROW_HEIGHT = 22; // px, as .row in style.css
const BAR_HEIGHT = 14;
const SPARK_BUCKETS = 48;
const STATS_ROWS = 20;
const RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3 };
const DEFAULT_RANGE = "24h";

const $ = (id) => document.getElementById(id);

// ---- state in the URL -------------------------------------------------

/** The view the URL describes. */
function readState() {
  const q = new URLSearchParams(location.search);
  return {
    view: q.get("view") === "noisy" ? "noisy" : "timeline",
    since: q.get("since") || "",
    until: q.get("until") || "",
    alertname: q.get("alertname") || "",
    labels: q.getAll("label"),
    status: q.get("status") || "",
    fingerprint: q.get("fingerprint") || "",
    startsAt: q.get("starts_at") || "",
  };
}

function writeState(state, push = true) {
  const q = new URLSearchParams();
  if (state.view !== "timeline") q.set("view", state.view);
  for (const k of ["since", "until", "alertname", "status"]) if (state[k]) q.set(k, state[k]);
  for (const l of state.labels) q.append("label", l);
  if (state.fingerprint) {
    q.set("fingerprint", state.fingerprint);
    q.set("starts_at", state.startsAt);
  }
  const url = q.toString() ? "?" + q : location.pathname;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

/** [since, until] in ms; until is now when the URL has none. */
function windowOf(state) {
  const until = state.until ? Date.parse(state.until) : Date.now();
  const since = state.since ? Date.parse(state.since) : until - RANGES[DEFAULT_RANGE];
  return [since, until];
}

/** The API's filters for this state (window included). */
function filterParams(state, [since, until]) {
  const q = new URLSearchParams();
  q.set("since", iso(since));
  if (state.until) q.set("until", iso(until));
  if (state.alertname) q.set("alertname", state.alertname);
  for (const l of state.labels) q.append("label", l);
  if (state.status) q.set("status", state.status);
  return q;
}

// ---- helpers ------------------------------------------------------------

const iso = (ms) => new Date(ms).toISOString().replace(".000Z", "Z");

/** `2026-11-23 19:14:38` (UTC), the page's one way of showing a time. */
function fmtTime(value) {
  if (value == null) return "—";
  return new Date(value).toISOString().slice(0, 19).replace("T", " ");
}

function fmtDuration(seconds) {
  if (seconds == null || !isFinite(seconds)) return "—";
  seconds = Math.round(seconds);
  const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

/** An element; strings become text nodes (never HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c != null) el.append(c instanceof Node ? c : String(c));
  return el;
}

/** A link only for http(s) targets; anything else is shown as text. */
function safeLink(url, text) {
  try {
    const u = new URL(url);
    if (u.protocol === "http:" || u.protocol === "https:") {
      return h("a", { href: u.href, rel: "noopener noreferrer", target: "_blank" }, text || url);
    }
  } catch (_) { /* not a URL */ }
  return h("span", {}, url || "—");
}

const SEVERITIES = ["critical", "warning", "info"];
const severityOf = (labels) => (SEVERITIES.includes(labels.severity) ? labels.severity : "other");

/** The labels but alertname, `k=v` joined: a row's name after its alertname. */
const labelText = (labels) =>
  Object.keys(labels).filter((k) => k !== "alertname").sort().map((k) => `${k}=${labels[k]}`).join(" ");

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** `signal` aborts it when a newer view replaces the one that asked. */
async function getJson(path, params, signal) {
  const url = API + path + (params && params.toString() ? "?" + params : "");
  const response = await fetch(url, { headers: { Accept: "application/json" }, signal });
  const text = await response.text();
  let body;
  try { body = JSON.parse(text); } catch (_) { body = { error: "bad_answer", detail: text.slice(0, 200) }; }
  if (!response.ok) {
    throw new ApiError(`${url}: ${response.status} ${body.error || ""}: ${body.detail || ""}`, response.status);
  }
  return body;
}

/**
 * Views replace each other: a newer one aborts the older one's requests,
 * and an older answer arriving late never draws over a newer view.
 */
class Views {
  constructor() { this.controller = null; }

  /** A signal for a new view; the previous one is aborted. */
  next() {
    if (this.controller) this.controller.abort();
    this.controller = new AbortController();
    return this.controller.signal;
  }
}

const superseded = (error) => error && error.name === "AbortError";

/** Throws an AbortError if `signal`'s view was replaced meanwhile. */
function live(signal) {
  if (signal.aborted) throw new DOMException("replaced by a newer view", "AbortError");
}

function showError(error) {
  const el = $("error");
  if (!error) { el.hidden = true; el.textContent = ""; return; }
  el.hidden = false;
  el.textContent = error instanceof ApiError ? error.message : `Error: ${error.message || error}`;
}

// ---- the timeline -------------------------------------------------------

const timeline = {
  rows: [], // [{fingerprint, alertname, labels, severity, episodes: [...]}]
  range: [0, 1],
  hover: null,
  frame: 0,
};

/** Every episode overlapping the window: started in it, or started before and still firing at its start. */
async function loadEpisodes(state, range, signal) {
  const episodes = new Map();
  let truncated = false;
  const take = async (params) => {
    for (;;) {
      const room = MAX_EPISODES - episodes.size;
      if (room <= 0) { truncated = true; return; }
      params.set("limit", String(Math.min(PAGE_LIMIT, room)));
      const page = await getJson("alerts", params, signal);
      for (const e of page.items) episodes.set(e.fingerprint + "@" + e.starts_at, e);
      if (!page.next_cursor) return;
      params.set("cursor", page.next_cursor);
    }
  };
  await take(filterParams(state, range));
  if (!truncated) {
    const before = filterParams(state, range);
    before.delete("since");
    before.delete("until");
    before.set("active_at", iso(range[0]));
    await take(before);
  }
  return { episodes: [...episodes.values()], truncated };
}

function groupRows(episodes) {
  const rows = new Map();
  for (const e of episodes) {
    let row = rows.get(e.fingerprint);
    if (!row) {
      row = { fingerprint: e.fingerprint, alertname: e.alertname, episodes: [] };
      rows.set(e.fingerprint, row);
    }
    row.episodes.push({ ...e, start: Date.parse(e.starts_at), end: e.ends_at ? Date.parse(e.ends_at) : null });
  }
  const list = [...rows.values()];
  for (const r of list) {
    r.episodes.sort((a, b) => a.start - b.start);
    const last = r.episodes[r.episodes.length - 1];
    r.labels = last.labels;
    r.severity = severityOf(last.labels);
    r.text = labelText(last.labels);
  }
  list.sort((a, b) => a.alertname.localeCompare(b.alertname) || a.text.localeCompare(b.text));
  nameByDifferences(list);
  return list;
}

/**
 * A row's short name: the labels that tell it from the other rows of its
 * alertname (pod=…, not cluster=… shared by all), those first; the full
 * set stays in its title and tooltip.
 */
function nameByDifferences(rows) {
  const byName = new Map();
  for (const r of rows) (byName.get(r.alertname) || byName.set(r.alertname, []).get(r.alertname)).push(r);
  for (const group of byName.values()) {
    if (group.length < 2) { for (const r of group) r.short = r.text; continue; }
    const keys = new Set(group.flatMap((r) => Object.keys(r.labels)));
    const names = [...keys].filter((k) => k !== "alertname").sort();
    const differing = names.filter((k) => !group.every((r) => r.labels[k] === group[0].labels[k]));
    const shared = names.filter((k) => !differing.includes(k));
    for (const r of group) {
      const text = (ks) => ks.filter((k) => k in r.labels).map((k) => `${k}=${r.labels[k]}`);
      r.short = [...text(differing), ...text(shared)].join(" ");
    }
  }
}

async function showTimeline(state, signal) {
  const range = windowOf(state);
  $("summary").textContent = "Loading…";
  const { episodes, truncated } = await loadEpisodes(state, range, signal);
  live(signal);
  performance.mark("episodes-loaded"); // load/page-render.sh reads it
  timeline.rows = groupRows(episodes);
  timeline.range = range;
  renderRows();
  redraw();
  const n = timeline.rows.length;
  $("summary").textContent =
    `${n} label set${n === 1 ? "" : "s"}, ${episodes.length} episode${episodes.length === 1 ? "" : "s"} ` +
    `from ${fmtTime(range[0])} to ${state.until ? fmtTime(range[1]) : "now"} UTC` +
    (truncated ? ` — only the newest ${MAX_EPISODES} episodes: the window's oldest are left out; narrow the window or the filters` : "");
  $("timeline").dataset.episodes = String(episodes.length); // load/page-render.sh reads it
}

function renderRows() {
  const list = $("rows");
  list.replaceChildren(
    ...timeline.rows.map((r, i) =>
      h("button", {
        type: "button", class: "row", role: "listitem", dataset: { fingerprint: r.fingerprint, index: i },
        title: `${r.alertname} ${r.text}`,
        onclick: () => openLatest(r),
      },
      h("span", { class: `sev ${r.severity}`, "aria-label": r.severity }),
      h("span", { class: "name" }, r.alertname || "(no alertname)"),
      h("span", { class: "labels" }, r.short)),
    ),
  );
  $("lane").style.height = `${timeline.rows.length * ROW_HEIGHT}px`;
  if (!timeline.rows.length) list.append(h("p", { class: "summary" }, "No episode in this window matches."));
}

function openLatest(row) {
  const e = row.episodes[row.episodes.length - 1];
  openEpisode(e.fingerprint, e.starts_at);
}

const xOf = (t, width) => ((t - timeline.range[0]) / (timeline.range[1] - timeline.range[0])) * width;

/** A canvas sized for its box at the screen's pixel density. */
function fit(canvas, height) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  canvas.width = Math.max(1, Math.round(width * ratio));
  canvas.height = Math.max(1, Math.round(height * ratio));
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return [ctx, width];
}

/** Round steps for the axis: the first that gives ticks >= 90 px apart. */
const STEPS = [60e3, 300e3, 900e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3, 7 * 86400e3];

function ticks(width) {
  const [a, b] = timeline.range;
  const step = STEPS.find((s) => (s / (b - a)) * width >= 90) || STEPS[STEPS.length - 1];
  const out = [];
  for (let t = Math.ceil(a / step) * step; t <= b; t += step) out.push(t);
  return { step, out };
}

function drawAxis() {
  const canvas = $("axis");
  const [ctx, width] = fit(canvas, 28);
  ctx.clearRect(0, 0, width, 28);
  ctx.fillStyle = cssVar("--muted");
  ctx.font = "11px system-ui, sans-serif";
  const { step, out } = ticks(width);
  for (const t of out) {
    const x = xOf(t, width);
    const text = step >= 86400e3 ? fmtTime(t).slice(5, 10) : fmtTime(t).slice(step >= 3600e3 ? 5 : 11, 16);
    ctx.fillRect(x, 20, 1, 8);
    ctx.fillText(text, Math.min(x + 3, width - 60), 14);
  }
}

/** The axis and the bars: after new data, a resize or a theme change. */
function redraw() {
  drawAxis();
  drawBars();
}

function scheduleDraw() {
  if (!timeline.frame) timeline.frame = requestAnimationFrame(() => { timeline.frame = 0; drawBars(); });
}

/** The bars of the rows in view only: thousands of rows cost what a screenful does. */
function drawBars() {
  const scroller = $("scroller");
  const canvas = $("bars");
  const height = Math.min(scroller.clientHeight, timeline.rows.length * ROW_HEIGHT) || 1;
  const [ctx, width] = fit(canvas, height);
  ctx.clearRect(0, 0, width, height);
  const top = scroller.scrollTop;
  const first = Math.floor(top / ROW_HEIGHT);
  const last = Math.min(timeline.rows.length - 1, Math.ceil((top + height) / ROW_HEIGHT));
  const { out } = ticks(width);
  ctx.fillStyle = cssVar("--line");
  for (const t of out) ctx.fillRect(xOf(t, width), 0, 1, height);
  const colors = { critical: cssVar("--critical"), warning: cssVar("--warning"), info: cssVar("--info"), other: cssVar("--other") };
  const now = Date.now();
  for (let i = first; i <= last; i++) {
    const row = timeline.rows[i];
    const y = i * ROW_HEIGHT - top + (ROW_HEIGHT - BAR_HEIGHT) / 2;
    // One label set, one severity.
    ctx.fillStyle = colors[row.severity];
    for (const e of row.episodes) {
      const [x0, x1] = barOf(e, width, now);
      if (x1 < 0 || x0 > width) continue;
      ctx.globalAlpha = e === timeline.hover ? 1 : 0.85;
      ctx.fillRect(x0, y, x1 - x0, BAR_HEIGHT);
      if (e.end == null) {
        // Still firing: an open end.
        ctx.globalAlpha = 1;
        ctx.beginPath();
        ctx.moveTo(x1, y - 2); ctx.lineTo(x1 + 6, y + BAR_HEIGHT / 2); ctx.lineTo(x1, y + BAR_HEIGHT + 2);
        ctx.fill();
      }
      if (e === timeline.hover) {
        ctx.globalAlpha = 1;
        ctx.strokeStyle = cssVar("--fg");
        ctx.strokeRect(x0 - 0.5, y - 0.5, x1 - x0 + 1, BAR_HEIGHT + 1);
      }
    }
  }
  ctx.globalAlpha = 1;
  const nowX = xOf(now, width);
  if (nowX >= 0 && nowX <= width) {
    ctx.fillStyle = cssVar("--accent");
    ctx.fillRect(nowX, 0, 1, height);
  }
}

/** An episode's bar, clipped to the window, at least 3 px wide. */
function barOf(e, width, now) {
  const end = e.end == null ? Math.max(now, timeline.range[1]) : e.end;
  const x0 = Math.max(-8, xOf(e.start, width));
  const x1 = Math.min(width + 8, Math.max(x0 + 3, xOf(end, width)));
  return [x0, x1];
}

function episodeAt(offsetX, offsetY) {
  const scroller = $("scroller");
  const row = timeline.rows[Math.floor((scroller.scrollTop + offsetY) / ROW_HEIGHT)];
  if (!row) return null;
  const width = $("bars").clientWidth, now = Date.now();
  let best = null;
  for (const e of row.episodes) {
    const [x0, x1] = barOf(e, width, now);
    if (offsetX >= x0 - 3 && offsetX <= x1 + 3) best = e;
  }
  return best;
}

/** `<dt>name</dt><dd>value</dd>`, sorted by name; `*_url` values as links. */
function terms(obj) {
  return Object.keys(obj).sort().flatMap((k) => [
    h("dt", {}, k),
    h("dd", {}, /_url$/.test(k) ? safeLink(obj[k]) : obj[k]),
  ]);
}

function showTooltip(e, clientX, clientY) {
  const tip = $("tooltip");
  if (!e) { tip.hidden = true; return; }
  tip.replaceChildren(
    h("strong", {}, e.alertname || "(no alertname)"), " ",
    h("span", { class: `badge ${e.status}` }, e.status),
    h("div", {}, `${fmtTime(e.starts_at)} → ${e.ends_at ? fmtTime(e.ends_at) : "still firing"}` +
      (e.end != null ? ` (${fmtDuration((e.end - e.start) / 1000)})` : "")),
    h("dl", {}, terms(e.labels)),
    Object.keys(e.annotations).length ? h("dl", {}, terms(e.annotations)) : null,
  );
  tip.hidden = false;
  const x = Math.min(clientX + 14, window.innerWidth - tip.offsetWidth - 8);
  const y = Math.min(clientY + 14, window.innerHeight - tip.offsetHeight - 8);
  tip.style.left = `${Math.max(4, x)}px`;
  tip.style.top = `${Math.max(4, y)}px`;
}

function wireTimeline() {
  const canvas = $("bars");
  $("scroller").addEventListener("scroll", scheduleDraw, { passive: true });
  window.addEventListener("resize", redraw);
  canvas.addEventListener("mousemove", (ev) => {
    const e = episodeAt(ev.offsetX, ev.offsetY);
    if (e !== timeline.hover) { timeline.hover = e; scheduleDraw(); }
    showTooltip(e, ev.clientX, ev.clientY);
  });
  canvas.addEventListener("mouseleave", () => { timeline.hover = null; showTooltip(null); scheduleDraw(); });
  canvas.addEventListener("click", (ev) => {
    const e = episodeAt(ev.offsetX, ev.offsetY);
    if (e) openEpisode(e.fingerprint, e.starts_at);
  });
  $("rows").addEventListener("keydown", (ev) => {
    if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
    const i = Number(document.activeElement?.dataset?.index);
    if (Number.isNaN(i)) return;
    const next = $("rows").children[i + (ev.key === "ArrowDown" ? 1 : -1)];
    if (next) { next.focus(); ev.preventDefault(); }
  });
}

// ---- the episode view ---------------------------------------------------

let lastFocus = null;
const episodeViews = new Views();

function openEpisode(fingerprint, startsAt) {
  const state = readState();
  state.fingerprint = fingerprint;
  state.startsAt = startsAt;
  writeState(state);
  const signal = episodeViews.next();
  showEpisode(state, signal)
    .catch((error) => { if (!superseded(error)) showError(error); })
    .finally(() => { if (!signal.aborted) markReady(); });
}

/** Every view ends here: tests and load/page-render.sh wait for it. */
function markReady() {
  document.body.dataset.ready = "true";
  performance.mark("view-ready"); // load/page-render.sh reads it
}

function closeEpisode() {
  const state = readState();
  if (!state.fingerprint) return;
  episodeViews.next();
  state.fingerprint = state.startsAt = "";
  writeState(state);
  $("episode").hidden = true;
  if (lastFocus && document.contains(lastFocus)) lastFocus.focus();
}

const EPISODE_PAGES = 20; // of 100: how far back an episode is looked for

/** The episode in its label set's history, following cursors until found. */
async function findEpisode(fingerprint, startsAt, signal) {
  const wanted = Date.parse(startsAt);
  const params = new URLSearchParams({ limit: "100" });
  let siblings = [];
  for (let pages = 0; pages < EPISODE_PAGES; pages++) {
    let page;
    try {
      page = await getJson(`alerts/${encodeURIComponent(fingerprint)}`, params, signal);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return { episode: null, siblings, more: false };
      throw error;
    }
    siblings = siblings.concat(page.items);
    const episode = page.items.find((e) => Date.parse(e.starts_at) === wanted);
    if (episode || !page.next_cursor) return { episode, siblings, more: Boolean(page.next_cursor) };
    params.set("cursor", page.next_cursor);
  }
  return { episode: null, siblings, more: true };
}

const NOTIFICATIONS_SHOWN = 200;

async function showEpisode(state, signal) {
  const panel = $("episode"), body = $("episode-body");
  if (panel.hidden) lastFocus = document.activeElement;
  panel.hidden = false;
  $("episode-title").textContent = "Episode";
  delete body.dataset.fingerprint;
  delete body.dataset.startsAt;
  body.replaceChildren(h("p", { class: "summary" }, "Loading…"));
  panel.focus();
  const { episode, siblings, more } = await findEpisode(state.fingerprint, state.startsAt, signal);
  live(signal);
  if (!episode) {
    $("episode-title").textContent = "Episode not found";
    body.replaceChildren(h("p", {}, `No episode of ${state.fingerprint} started at ${state.startsAt} is stored` +
      (more ? ` among its newest ${siblings.length}.` : " (retention may have removed it).")));
    return;
  }
  const notes = await getJson(
    `alerts/${encodeURIComponent(state.fingerprint)}/notifications`,
    new URLSearchParams({ starts_at: episode.starts_at, limit: String(NOTIFICATIONS_SHOWN + 1) }),
    signal,
  );
  live(signal);
  $("episode-title").replaceChildren(
    episode.alertname || "(no alertname)", " ", h("span", { class: `badge ${episode.status}` }, episode.status),
  );
  body.replaceChildren(...episodeSections(episode, { siblings, more }, notes.items));
  body.dataset.fingerprint = episode.fingerprint;
  body.dataset.startsAt = episode.starts_at;
}

function episodeSections(e, { siblings, more }, notifications) {
  const cut = notifications.length > NOTIFICATIONS_SHOWN;
  notifications = notifications.slice(0, NOTIFICATIONS_SHOWN);
  const kv = (obj) => h("dl", { class: "kv" }, terms(obj));
  const duration = e.ends_at ? fmtDuration((Date.parse(e.ends_at) - Date.parse(e.starts_at)) / 1000) : "still firing";
  return [
    h("dl", { class: "kv", id: "episode-times" },
      h("dt", {}, "started"), h("dd", {}, fmtTime(e.starts_at)),
      h("dt", {}, "ended"), h("dd", {}, e.ends_at ? fmtTime(e.ends_at) : "—"),
      h("dt", {}, "lasted"), h("dd", {}, duration),
      h("dt", {}, "fingerprint"), h("dd", {}, h("code", {}, e.fingerprint)),
      h("dt", {}, "receiver"), h("dd", {}, e.receiver),
      h("dt", {}, "source"), h("dd", {}, e.generator_url ? safeLink(e.generator_url, "generatorURL ↗") : "—"),
    ),
    h("h3", {}, "Labels"), kv(e.labels),
    h("h3", {}, "Annotations"), Object.keys(e.annotations).length ? kv(e.annotations) : h("p", {}, "none"),
    h("h3", {}, "Events"),
    h("ol", { class: "events", id: "episode-events" }, e.events.map((ev) =>
      h("li", { class: ev.status },
        h("strong", {}, ev.status), ` received ${fmtTime(ev.received_at)}`,
        ev.ends_at ? ` · ends ${fmtTime(ev.ends_at)}` : ""))),
    h("h3", {}, `Notifications (${cut ? `the first ${NOTIFICATIONS_SHOWN}` : notifications.length})`),
    notifications.length
      ? h("table", { id: "episode-notifications" },
        h("thead", {}, h("tr", {}, ["received", "status", "alerts", "Alertmanager"].map((t) => h("th", {}, t)))),
        h("tbody", {}, notifications.map((n) =>
          h("tr", { title: `group ${n.group_key} · receiver ${n.receiver}` },
            h("td", {}, fmtTime(n.received_at)), h("td", {}, n.status),
            h("td", { class: "num" }, n.alert_count + (n.truncated_alerts ? ` (+${n.truncated_alerts} left out)` : "")),
            h("td", {}, n.external_url ? safeLink(n.external_url, "open ↗") : "—")))))
      : h("p", {}, "none stored for its receiver and group"),
    h("h3", {}, `Episodes of this label set (${more ? `the newest ${siblings.length}` : siblings.length})`),
    h("div", { class: "episodes-list" }, siblings.map((s) =>
      h("button", {
        type: "button", "aria-pressed": s.starts_at === e.starts_at ? "true" : "false",
        onclick: () => openEpisode(s.fingerprint, s.starts_at),
      }, fmtTime(s.starts_at)))),
  ];
}

// ---- noisy and flapping -------------------------------------------------

function sparkline(series) {
  const w = 140, hgt = 24, max = Math.max(1, ...series);
  const step = series.length > 1 ? w / (series.length - 1) : w;
  const points = series.map((n, i) => `${(i * step).toFixed(1)},${(hgt - 2 - (n / max) * (hgt - 4)).toFixed(1)}`).join(" ");
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", hgt);
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `episodes per slice of the window: ${series.join(", ")}`);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points);
  svg.append(line);
  return svg;
}

async function showNoisy(state, signal) {
  const [since, until] = windowOf(state);
  const params = (extra) => {
    const q = filterParams(state, [since, until]);
    q.set("limit", String(STATS_ROWS));
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return q;
  };
  $("noisy-summary").textContent = "Loading…";
  const filterBy = (name) => () => {
    const s = readState();
    Object.assign(s, { view: "timeline", alertname: name, fingerprint: "", startsAt: "" });
    navigate(s);
  };
  const tables = [
    ["noisy", 3, getJson("stats/top", params({ buckets: String(SPARK_BUCKETS) }), signal), (r) =>
      h("tr", { dataset: { alertname: r.value } },
        h("td", {}, h("button", { type: "button", class: "link", onclick: filterBy(r.value) }, r.value || "(none)")),
        h("td", { class: "num" }, r.episodes),
        h("td", {}, sparkline(r.series || [])))],
    ["flapping", 4, getJson("stats/flapping", params({ buckets: String(SPARK_BUCKETS) }), signal), (r) =>
      h("tr", { dataset: { fingerprint: r.fingerprint } },
        h("td", { class: "set", title: labelText(r.labels) },
          h("button", { type: "button", class: "link", onclick: () => openEpisode(r.fingerprint, r.last_starts_at) }, r.alertname || "(no alertname)"),
          h("span", { class: "labels" }, labelText(r.labels))),
        h("td", { class: "num" }, r.episodes),
        h("td", {}, sparkline(r.series || [])),
        h("td", {}, fmtTime(r.last_starts_at)))],
    ["durations", 5, getJson("stats/durations", params({}), signal), (r) =>
      h("tr", { dataset: { alertname: r.alertname } },
        h("td", {}, h("button", { type: "button", class: "link", onclick: filterBy(r.alertname) }, r.alertname || "(none)")),
        h("td", { class: "num" }, r.resolved),
        h("td", { class: "num" }, fmtDuration(r.median_seconds)),
        h("td", { class: "num" }, fmtDuration(r.p90_seconds)),
        h("td", {}, h("div", { class: "meter", title: "p90", dataset: { p90: r.p90_seconds } })))],
  ];
  // Each table on its own: a stat that times out over a long window
  // leaves the others shown, and says so in its own place.
  for (const [id, columns] of tables) fill(id, [h("tr", {}, h("td", { colspan: columns }, "Loading…"))], columns);
  await Promise.allSettled(tables.map(([id, columns, answer, row]) => answer.then(
    (value) => { if (!signal.aborted) fill(id, value.items.map(row), columns); },
    (error) => {
      if (!superseded(error) && !signal.aborted) {
        fill(id, [h("tr", {}, h("td", { colspan: columns, class: "error" }, error.message))], columns);
      }
    },
  )));
  live(signal);
  const meters = [...document.querySelectorAll("#durations .meter")];
  const longest = Math.max(1, ...meters.map((m) => Number(m.dataset.p90)));
  for (const m of meters) m.style.width = `${Math.round((Number(m.dataset.p90) / longest) * 120)}px`;
  $("noisy-summary").textContent =
    `Episodes matching the filters, started from ${fmtTime(since)} to ${state.until ? fmtTime(until) : "now"} UTC; ` +
    `the sparklines count them in ${SPARK_BUCKETS} slices of the window.`;
}

function fill(tableId, rows, columns) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: columns }, "none in this window"))]));
}

// ---- the page -----------------------------------------------------------

/** Filters form ⇄ state. datetime-local values are read as UTC. */
function toInput(value) {
  const t = Date.parse(value);
  return value && !Number.isNaN(t) ? new Date(t).toISOString().slice(0, 19) : "";
}
function fromInput(value) { return value ? iso(Date.parse(value + "Z")) : ""; }

/** An empty `from` is the rolling last 24 hours, not a time frozen at load. */
function fillForm(state) {
  $("since").value = toInput(state.since);
  $("until").value = toInput(state.until);
  $("alertname").value = state.alertname;
  $("label").value = state.labels.join(" ");
  $("status").value = state.status;
}

function formState() {
  const s = readState();
  s.since = fromInput($("since").value);
  s.until = fromInput($("until").value);
  s.alertname = $("alertname").value.trim();
  s.labels = $("label").value.split(/\s+/).filter(Boolean);
  s.status = $("status").value;
  s.fingerprint = s.startsAt = "";
  return s;
}

/** What a pasted URL can get wrong, said before anything is asked. */
function checkState(state) {
  // With its offset, as the API wants it: without one a browser would read
  // it in its own time zone, not UTC.
  const rfc3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/i;
  for (const [name, value] of [["since", state.since], ["until", state.until], ["starts_at", state.startsAt]]) {
    if (value && (!rfc3339.test(value) || Number.isNaN(Date.parse(value)))) {
      throw new Error(`${name}: not an RFC 3339 time with its offset, e.g. 2026-11-23T18:00:00Z`);
    }
  }
  const bad = state.labels.find((l) => !/^[^=]+=/.test(l));
  if (bad) throw new Error(`label "${bad}" must be name=value`);
  const [since, until] = windowOf(state);
  if (since >= until) throw new Error("the window is empty: since must be before until");
}

const views = new Views();

/** Whether the panel already shows the episode `state` names. */
function isShown(state) {
  const body = $("episode-body");
  return Boolean(state.fingerprint) && !$("episode").hidden && body.dataset.fingerprint === state.fingerprint &&
    Date.parse(body.dataset.startsAt) === Date.parse(state.startsAt);
}

async function route() {
  const signal = views.next();
  const state = readState();
  fillForm(state);
  showError(null);
  for (const view of ["timeline", "noisy"]) {
    $(`${view}-view`).hidden = state.view !== view;
    if (state.view === view) $(`tab-${view}`).setAttribute("aria-current", "page");
    else $(`tab-${view}`).removeAttribute("aria-current");
  }
  try {
    checkState(state);
    // The episode panel is a view of its own: its errors are its own, and
    // one already shown is not fetched again (a tab switch, Back).
    const episodeSignal = isShown(state) ? null : episodeViews.next();
    let episode = null;
    if (!state.fingerprint) $("episode").hidden = true;
    else if (episodeSignal) {
      episode = showEpisode(state, episodeSignal).catch((error) => { if (!superseded(error)) showError(error); });
    }
    await Promise.all([state.view === "timeline" ? showTimeline(state, signal) : showNoisy(state, signal), episode]);
  } catch (error) {
    if (superseded(error)) return;
    showError(error);
    $("summary").textContent = "";
  }
  if (!signal.aborted) markReady();
}

async function loadAlertnames() {
  const top = await getJson("stats/top", new URLSearchParams({ since: iso(Date.now() - 30 * 86400e3), limit: "200" }));
  $("alertnames").replaceChildren(...top.items.map((r) => h("option", { value: r.value })));
}

const THEMES = ["auto", "light", "dark"];

function applyTheme(theme) {
  if (theme === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  $("theme").textContent = `Theme: ${theme}`;
}

function cycleTheme() {
  const next = THEMES[(THEMES.indexOf(localStorage.getItem("theme") || "auto") + 1) % THEMES.length];
  localStorage.setItem("theme", next);
  applyTheme(next);
  redraw(); // the canvas's colours come from the theme
}

/** A new view: into the URL (history), then drawn. */
function navigate(state) {
  writeState(state);
  route();
}

function wirePage() {
  $("filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    navigate(formState());
  });
  for (const b of document.querySelectorAll("[data-range]")) {
    b.addEventListener("click", () => {
      const s = formState();
      s.since = iso(Date.now() - RANGES[b.dataset.range]);
      s.until = "";
      navigate(s);
    });
  }
  for (const a of document.querySelectorAll(".tabs a")) {
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      const s = readState();
      s.view = a.dataset.view;
      navigate(s);
    });
  }
  $("episode-close").addEventListener("click", closeEpisode);
  $("theme").addEventListener("click", cycleTheme);
  window.addEventListener("popstate", route);
  document.addEventListener("keydown", (ev) => {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(ev.target.tagName);
    if (ev.key === "Escape") closeEpisode();
    else if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    else if (ev.key === "/") { ev.preventDefault(); $("alertname").focus(); }
    else if (ev.key === "t") cycleTheme();
  });
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redraw);
}

wireTimeline();
wirePage();
applyTheme(localStorage.getItem("theme") || "auto");
route();
// The alertname suggestions (a 30-day stat) only when someone types one.
$("alertname").addEventListener("focus", () => {
  loadAlertnames().catch(() => { /* a convenience; route() reports API errors */ });
}, { once: true });
