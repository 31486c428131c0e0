// The sluice dashboard: logs in with an app token (which starts a cookie session), then follows
// the database WebSocket (runtime status, profiles, notifications) and writes through the REST
// API with the session's CSRF token. Plain DOM, no build step, no inline script (strict CSP).
"use strict";

const $ = (id) => document.getElementById(id);
let csrf = "";
let ws = null;
let op = 0;
const handlers = new Map();

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const res = await fetch(`/api/v1/${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const text = await res.text();
  const data = text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text;
  if (!res.ok) throw new Error(data?.error ? `${data.error.message}${data.error.data?.problems ? "\n" + data.error.data.problems.map((p) => `line ${p.line}:${p.column}: ${p.message}`).join("\n") : ""}` : `${res.status}`);
  return data;
}

function send(cmd, arg, onReply) {
  const id = String(++op);
  handlers.set(id, onReply);
  ws.send(`${id}|${cmd}|${arg}`);
  return id;
}

function connect() {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/database/v1`);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (ev) => {
    const text = typeof ev.data === "string" ? ev.data : new TextDecoder().decode(ev.data);
    const [id, type, key, ...rest] = text.split("|");
    const payload = rest.join("|");
    handlers.get(id)?.(type, key, payload ? JSON.parse(payload.slice(1)) : null);
  };
  ws.onopen = () => {
    send("qsub", "query runtime:system/status", (type, _k, rec) => rec && showStatus(rec));
    const profiles = new Map();
    send("qsub", "query core:profiles/", (type, key, rec) => {
      if (type === "del") profiles.delete(key);
      else if (rec) profiles.set(key, rec);
      if (type !== "ok") showProfiles([...profiles.values()]);
    });
    const notes = new Map();
    send("qsub", "query notifications:all/", (type, key, rec) => {
      if (type === "del") notes.delete(key);
      else if (rec) notes.set(key, rec);
      showPrompts([...notes.values()]);
    });
    setTimeout(() => showProfiles([...profiles.values()]), 300);
  };
  ws.onclose = (ev) => {
    $("state").textContent = `disconnected (${ev.reason || ev.code}); reconnecting…`;
    setTimeout(start, 2000);
  };
}

function showStatus(s) {
  const p = s.packetPath || {};
  $("state").textContent = `${s.state} · sluice ${s.version}`;
  const rows = { "packet path": p.status, rules: p.rules, reloads: p.reloads, received: p.received, firewall: p.firewall, "HTTP server": s.api.uws.native ? "uWebSockets.js (native)" : "uWebSockets.js JS fallback (slow)" };
  $("status").replaceChildren(...Object.entries(rows).flatMap(([k, v]) => [el("dt", k), el("dd", String(v ?? "–"))]));
  $("queues").tBodies[0].replaceChildren(...(p.queues || []).map((q) => row([q.queue, q.running ? "yes" : "no", q.received, q.restarts])));
}

function showProfiles(list) {
  $("profiles").replaceChildren(...list.sort((a, b) => a.ID.localeCompare(b.ID)).map((p) => {
    const box = el("div", "", "profile");
    const rules = el("textarea");
    rules.value = p.Rules.join("\n");
    const save = el("button", "Save rules");
    save.onclick = async () => {
      $("profile-error").textContent = "";
      try {
        await api("PUT", `profiles/${encodeURIComponent(p.ID)}`, { Default: p.Default, Sources: p.Sources, Rules: rules.value.split("\n").filter((l) => l.trim()), ...(p.Fallback ? { Fallback: p.Fallback } : {}) });
      } catch (err) {
        $("profile-error").textContent = `${p.ID}: ${err.message}`;
      }
    };
    box.append(el("h3", `${p.ID} — default ${p.Default}${p.Sources.length ? `, devices ${p.Sources.join(", ")}` : " (every other device)"}`), rules, save);
    return box;
  }));
}

function showPrompts(list) {
  const active = list.filter((n) => n.Type === 2 && n.State === "active");
  $("no-prompts").hidden = active.length > 0;
  $("prompts").replaceChildren(...active.map((n) => {
    const li = el("li", n.Message + " ");
    for (const a of n.AvailableActions) {
      const b = el("button", a.Text);
      b.onclick = () => send("update", `notifications:all/${n.EventID}|J${JSON.stringify({ EventID: n.EventID, SelectedActionID: a.ID })}`, () => {});
      li.append(b);
    }
    return li;
  }));
}

function el(tag, text = "", cls = "") {
  const e = document.createElement(tag);
  if (text) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = el("tr");
  tr.append(...cells.map((c) => el("td", String(c))));
  return tr;
}

async function start() {
  const perms = await api("GET", "auth/permissions").catch(() => null);
  if (!perms || perms.Read < 3 || !perms.CSRFToken) {
    $("login").hidden = false;
    $("app").hidden = true;
    return;
  }
  csrf = perms.CSRFToken;
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  connect();
}

$("login-form").onsubmit = async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  const res = await fetch("/api/v1/auth/bearer", { headers: { Authorization: `Bearer ${$("token").value.trim()}` }, credentials: "same-origin" });
  if (!res.ok) {
    const e = await res.json().catch(() => null);
    $("login-error").textContent = e?.error?.message || `login failed (${res.status})`;
    return;
  }
  $("token").value = "";
  start();
};

$("logout").onclick = async () => {
  await fetch("/api/v1/auth/reset", { credentials: "same-origin" });
  ws?.close();
  location.reload();
};

start();
