// ghost-runner dashboard: node health, patches with diffs, the live event feed, and the
// approve / reject / rollback decisions. Vanilla JS, no build step.
//
// Everything shown comes from the node and may carry untrusted text (diffs, descriptions, file
// names written by a model): it is only ever inserted as text nodes (el() below), never as HTML.
"use strict";

(() => {
  const FEED_MAX = 200; // events kept in the live feed
  const FEED_BACKLOG = 100; // events replayed into the feed when the page opens
  const HEALTH_POLL_MS = 10000;
  const PATCH_EVENT = /^(Patch|Tests)/;
  const HEALTH_EVENT = /^(Actor|Supervisor|Health|Tunnel|Service|Node)/;

  const state = {
    csrfHeader: "X-Ghost-CSRF",
    csrf: "",
    selected: null, // patch id shown in the detail panel
    lastEventId: 0,
    confirming: false, // an inline confirmation is open: keep the detail panel as it is
    detailStale: false, // the patch changed while confirming: show it again afterwards
    health: null, // the last GET /health answer
    tunnels: {}, // name -> {state, url} from TunnelUp/TunnelDown events on the feed
  };

  const $ = (id) => document.getElementById(id);

  // --- DOM helpers: text only ---------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "data") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child)); // strings become text nodes
    }
    return node;
  }

  const badge = (status) => el("span", { class: "badge", data: { status: String(status) } }, status);

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
  }

  function clock(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString();
  }

  function duration(s) {
    s = Math.floor(s || 0);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    return m ? `${m}m ${s % 60}s` : `${s}s`;
  }

  const percent = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);

  let flashTimer = 0;
  function flash(message, kind = "ok") {
    const box = $("flash");
    box.textContent = message;
    box.dataset.kind = kind;
    box.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => (box.hidden = true), kind === "error" ? 12000 : 6000);
  }

  // Coalesce bursts (a catch-up of 100 events) into one call.
  function debounced(fn, ms = 200) {
    let timer = 0;
    return () => {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  // --- API ------------------------------------------------------------------------------------
  class SignedOut extends Error {}

  async function api(method, path, { body, allow = [] } = {}) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers[state.csrfHeader] = state.csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await res.json().catch(() => null);
    if (res.status === 401) {
      showSignin();
      throw new SignedOut("not signed in");
    }
    if (!res.ok && !allow.includes(res.status)) {
      const error = data && data.error;
      throw new Error(error ? `${error.code}: ${error.message}` : `HTTP ${res.status}`);
    }
    return data;
  }

  function showSignin() {
    $("app").hidden = true;
    $("signin").hidden = false;
    setPill($("node-status"), "unknown", "signed out");
  }

  function report(err) {
    if (!(err instanceof SignedOut)) flash(String(err.message || err), "error");
  }

  // --- health -----------------------------------------------------------------------------------
  function setPill(node, status, text) {
    node.dataset.status = status;
    node.textContent = text;
  }

  async function refreshHealth() {
    try {
      const h = await api("GET", "/health", { allow: [503] });
      renderHealth(h);
      return h;
    } catch (err) {
      setPill($("node-status"), "down", "unreachable");
      report(err);
      return null;
    }
  }

  function renderHealth(h) {
    state.health = h;
    setPill($("node-status"), h.status || "unknown", `node ${h.status || "?"}`);
    renderMeta(h);
    renderActorsAndTunnels(h);
  }

  function renderMeta(h) {
    const meta = [];
    if (h.version) meta.push(`v${h.version}`);
    if (h.uptime_s !== undefined) meta.push(`up ${duration(h.uptime_s)}`);
    if (h.position !== undefined) meta.push(`event #${h.position}`);
    if (h.workspaces) meta.push(`workspaces: ${h.workspaces.join(", ")}`);
    // What runs after each patch: the configured or detected command, or why none does.
    for (const [name, t] of Object.entries(h.tests || {})) {
      meta.push(`tests (${name}): ${t.command ? t.command : `none, ${t.reason}`}`);
    }
    $("node-meta").textContent = meta.join(" · ");
  }

  function renderActorsAndTunnels(h) {
    const actors = Object.entries(h.actors || {}).sort(([a], [b]) => a.localeCompare(b));
    $("actors").replaceChildren(
      ...actors.map(([name, a]) =>
        el("tr", { data: { actor: name } },
          el("td", {}, name),
          el("td", {}, badge(a.state || "unknown")),
          el("td", { class: a.restarts ? "num warn" : "num" }, a.restarts || 0)))
    );
    const avail = h.availability || {};
    $("restart-rate").textContent = avail.restarts
      ? `last 24 h: ${avail.restarts} restarts, ${percent(avail.restart_success_rate)} succeeded`
      : "last 24 h: no restarts";

    // /health lists tunnels by availability; the tunnel.<name> actors and TunnelUp/Down events
    // seen on the feed add their state and public URL.
    const actorsByName = h.actors || {};
    const names = new Set([
      ...Object.keys(h.tunnels || {}),
      ...Object.keys(actorsByName).filter((n) => n.startsWith("tunnel.")).map((n) => n.slice(7)),
      ...Object.keys(state.tunnels),
    ]);
    $("tunnels").replaceChildren(
      ...(names.size
        ? [...names].sort().map((name) => {
          const t = { ...(h.tunnels || {})[name], ...state.tunnels[name] };
          const actor = actorsByName[`tunnel.${name}`];
          const status = t.state || (actor && actor.state);
          const url = typeof t.url === "string" && /^https?:\/\//.test(t.url) ? t.url : null;
          return el("li", { data: { tunnel: name } },
            el("strong", {}, name), " ",
            status ? badge(status) : null, " ",
            t.availability !== undefined
              ? el("span", { class: "muted" }, `available ${percent(t.availability)}`) : null,
            url ? el("div", { class: "mono" },
              el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, url)) : null);
        })
        : [el("li", { class: "muted" }, "No tunnels.")])
    );
  }

  // --- patches ----------------------------------------------------------------------------------
  async function refreshPatches() {
    let data;
    try {
      data = await api("GET", "/patches?limit=100");
    } catch (err) {
      report(err);
      return;
    }
    const patches = data.patches || [];
    $("patch-count").textContent = `(${data.total ?? patches.length})`;
    $("no-patches").hidden = patches.length > 0;
    $("patches").replaceChildren(...patches.map(patchRow));
    const waiting = patches.filter((p) => p.status === "pending_approval").length;
    document.title = waiting ? `(${waiting}) ghost-runner` : "ghost-runner";
  }

  function patchRow(p) {
    const files = p.files || [];
    const counts = files.reduce((acc, f) => [acc[0] + (f.added || 0), acc[1] + (f.removed || 0)], [0, 0]);
    return el("tr",
      {
        class: p.patch_id === state.selected ? "selected" : null,
        data: { patchId: p.patch_id, patchStatus: p.status },
        tabindex: "0",
        onclick: () => select(p.patch_id),
        onkeydown: (e) => e.key === "Enter" && select(p.patch_id),
      },
      el("td", { class: "mono" }, p.patch_id),
      el("td", {}, badge(p.status)),
      el("td", {}, p.workspace || ""),
      el("td", { class: "desc" }, p.description || el("span", { class: "muted" }, "—")),
      el("td", { class: "mono" },
        `${files.length} `,
        el("span", { class: "add" }, `+${counts[0]}`), " ",
        el("span", { class: "del" }, `−${counts[1]}`)),
      el("td", {}, p.tests ? badge(p.tests) : el("span", { class: "muted" }, "—")),
      el("td", { class: "muted" }, when(p.received_at)));
  }

  function select(id) {
    location.hash = `patch=${encodeURIComponent(id)}`; // hashchange -> showPatch
  }

  function selectFromHash() {
    const m = /^#patch=(.+)$/.exec(location.hash);
    if (m) showPatch(decodeURIComponent(m[1]));
  }

  async function showPatch(id) {
    if (state.selected !== id) state.confirming = false;
    state.selected = id;
    for (const row of $("patches").children) row.classList.toggle("selected", row.dataset.patchId === id);
    let p;
    try {
      p = await api("GET", `/patches/${encodeURIComponent(id)}`);
    } catch (err) {
      report(err);
      return;
    }
    if (state.selected !== id) return;
    if (state.confirming) state.detailStale = true; // never pull a question from under a click
    else renderDetail(p);
  }

  function renderDetail(p) {
    const panel = $("detail");
    state.detailStale = false;
    panel.hidden = false;
    panel.dataset.patchId = p.patch_id;
    panel.dataset.patchStatus = p.status;
    const parts = [
      el("div", { class: "detail-head" },
        el("h2", {}, "Patch ", el("span", { class: "mono" }, p.patch_id), " ", badge(p.status)),
        el("button", { class: "link", onclick: closeDetail, title: "close" }, "✕")),
      p.description ? el("p", { class: "desc" }, p.description) : null,
      el("p", { class: "muted small" },
        [`workspace ${p.workspace || "?"}`, `format ${p.format || "?"}`,
          p.author ? `by ${p.author}` : null, `received ${when(p.received_at)}`,
          p.dry_run ? "dry run" : null].filter(Boolean).join(" · ")),
      actionBar(p),
      p.error ? el("div", { class: "error-box" },
        el("strong", {}, p.error.code || "error"), ": ", p.error.message || "") : null,
      testsView(p.tests),
      el("h3", {}, "Files"),
      el("ul", { class: "plain files" },
        (p.files || []).map((f) => el("li", { class: "mono" },
          badge(f.action || "?"), " ", f.path || "",
          " ", el("span", { class: "add" }, `+${f.added ?? 0}`),
          " ", el("span", { class: "del" }, `−${f.removed ?? 0}`)))),
      el("h3", {}, "Diff"),
      p.diff ? diffView(p.diff) : el("p", { class: "muted" }, "No diff recorded."),
      el("h3", {}, "History"),
      el("ul", { class: "plain history" },
        (p.events || []).map((e) => el("li", {},
          el("span", { class: "muted mono" }, `#${e.position} ${clock(e.recorded_at)} `),
          e.type)),
        (p.decisions || []).map((d) => el("li", { class: "muted" },
          `${d.decision} by ${d.by || "?"}${d.reason ? ` (${d.reason})` : ""} at ${when(d.at)}`))),
    ];
    panel.replaceChildren(...parts.filter(Boolean));
  }

  function closeDetail() {
    state.selected = null;
    state.confirming = false;
    $("detail").hidden = true;
    history.replaceState(null, "", location.pathname);
    for (const row of $("patches").children) row.classList.remove("selected");
  }

  function testsView(t) {
    if (!t) return el("p", { class: "muted" }, "Tests: not run.");
    const facts = [
      t.exit_code !== undefined && t.exit_code !== null ? `exit ${t.exit_code}` : null,
      t.duration_s !== undefined && t.duration_s !== null ? `${Number(t.duration_s).toFixed(2)} s` : null,
      t.command ? `${[].concat(t.command).join(" ")}` : null,
    ].filter(Boolean).join(" · ");
    return el("div", { class: "tests" },
      el("p", {}, "Tests: ", badge(t.status || "?"), " ", el("span", { class: "muted" }, facts)),
      t.output_tail ? el("pre", { class: "output" }, t.output_tail) : null);
  }

  // A unified diff, line by line, each a text node in a classed span. Inside a hunk the line
  // counts from its @@ header decide what is content, so "--- x" removed lines stay removed.
  function diffView(text) {
    const pre = el("pre", { class: "diff" });
    const lines = text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n");
    let oldLeft = 0, newLeft = 0;
    for (const line of lines) {
      let kind;
      const hunk = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/.exec(line);
      if (hunk) {
        kind = "hunk";
        oldLeft = hunk[1] === undefined ? 1 : Number(hunk[1]);
        newLeft = hunk[2] === undefined ? 1 : Number(hunk[2]);
      } else if (oldLeft > 0 || newLeft > 0) {
        if (line.startsWith("+")) { kind = "add"; newLeft--; }
        else if (line.startsWith("-")) { kind = "del"; oldLeft--; }
        else if (line.startsWith("\\")) kind = "meta";
        else { kind = "ctx"; oldLeft--; newLeft--; }
      } else if (line.startsWith("+++") || line.startsWith("---")) kind = "file";
      else kind = "meta";
      pre.append(el("span", { class: `line ${kind}` }, `${line}\n`));
    }
    return pre;
  }

  // --- decisions ----------------------------------------------------------------------------
  const ACTIONS = {
    approve: { label: "Approve", question: "Apply this patch to the workspace now?" },
    reject: { label: "Reject", question: "Reject this patch? Nothing will be written." },
    rollback: { label: "Roll back", question: "Restore the files as they were before this patch?" },
  };

  function actionsFor(p) {
    if (p.status === "pending_approval") return ["approve", "reject"];
    if ((p.status === "applied" || p.status === "failed") && !p.rolled_back && !p.dry_run) return ["rollback"];
    return [];
  }

  function actionBar(p) {
    const bar = el("div", { class: "actions" });
    const buttons = () => actionsFor(p).map((action) =>
      el("button", { class: `btn ${action}`, data: { action }, onclick: () => ask(action) },
        ACTIONS[action].label));
    const ask = (action) => {
      state.confirming = true;
      bar.replaceChildren(
        el("span", { class: "question" }, ACTIONS[action].question),
        el("button", { class: `btn ${action} confirm`, data: { confirm: action }, onclick: () => decide(action) },
          `Yes, ${ACTIONS[action].label.toLowerCase()}`),
        el("button", { class: "btn cancel", data: { confirm: "cancel" }, onclick: reset }, "Cancel"));
    };
    const reset = () => {
      state.confirming = false;
      if (state.detailStale) showPatch(p.patch_id);
      else bar.replaceChildren(...buttons());
    };
    const decide = async (action) => {
      for (const b of bar.querySelectorAll("button")) b.disabled = true;
      try {
        const r = await api("POST", `/patches/${encodeURIComponent(p.patch_id)}/${action}`);
        flash(`Patch ${p.patch_id}: ${action} → ${r.status}`);
      } catch (err) {
        report(err);
      }
      state.confirming = false;
      refreshPatches();
      if (state.selected === p.patch_id) showPatch(p.patch_id);
    };
    bar.replaceChildren(...buttons());
    return bar;
  }

  // --- live feed ----------------------------------------------------------------------------
  const patchesChanged = debounced(refreshPatches);
  const healthChanged = debounced(refreshHealth, 500);
  const detailChanged = debounced(() => {
    if (state.selected) showPatch(state.selected);
  });

  function summary(e) {
    const d = e.data || {};
    const bits = [d.patch_id, d.actor, d.name, d.status, d.workspace].filter((x) => typeof x === "string");
    return bits.length ? bits.join(" · ") : e.stream;
  }

  function addEvent(e) {
    const list = $("events");
    list.prepend(el("li", { data: { type: e.type, position: String(e.position) } },
      el("span", { class: "muted mono" }, `#${e.position} ${clock(e.recorded_at)}`), " ",
      el("strong", {}, e.type), " ",
      el("span", { class: "muted" }, summary(e))));
    while (list.children.length > FEED_MAX) list.lastElementChild.remove();
  }

  function onEvent(message) {
    let e;
    try {
      e = JSON.parse(message.data);
    } catch {
      return;
    }
    state.lastEventId = Math.max(state.lastEventId, Number(message.lastEventId) || e.position || 0);
    addEvent(e);
    if (state.health && e.position > (state.health.position || 0)) {
      state.health.position = e.position;
      renderMeta(state.health);
    }
    if (PATCH_EVENT.test(e.type)) {
      patchesChanged();
      if (state.selected && e.stream === `patch-${state.selected}`) detailChanged();
    }
    if (e.type === "TunnelUp" || e.type === "TunnelDown") {
      const d = e.data || {};
      const name = String(d.name || e.stream.replace(/^tunnel-/, ""));
      state.tunnels[name] = { state: e.type === "TunnelUp" ? "up" : "down", url: d.url };
    }
    if (HEALTH_EVENT.test(e.type)) healthChanged();
  }

  // EventSource sends the cookie (same origin), asks for text/event-stream and resumes with
  // Last-Event-ID by itself; only a closed stream (401, node restarted) needs a new one.
  function openFeed(after) {
    const source = new EventSource(`/events?after=${after}`);
    const pill = $("feed-status");
    setPill(pill, "connecting", "feed: connecting");
    source.onopen = () => setPill(pill, "ok", "feed: live");
    source.onmessage = onEvent;
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        setPill(pill, "down", "feed: closed");
        setTimeout(() => openFeed(state.lastEventId || after), 5000);
      } else {
        setPill(pill, "degraded", "feed: reconnecting");
      }
    };
  }

  // --- start --------------------------------------------------------------------------------
  async function start() {
    try {
      const session = await api("GET", "/dashboard/session");
      state.csrf = session.csrf;
      state.csrfHeader = session.csrf_header || state.csrfHeader;
    } catch (err) {
      report(err);
      return;
    }
    $("app").hidden = false;
    const health = await refreshHealth();
    await refreshPatches();
    window.addEventListener("hashchange", selectFromHash);
    selectFromHash();
    openFeed(Math.max(0, ((health && health.position) || 0) - FEED_BACKLOG));
    setInterval(refreshHealth, HEALTH_POLL_MS);
  }

  start();
})();
