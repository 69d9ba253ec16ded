// keyward's dashboard: reads the API with the token the user pasted, kept
// in this tab's sessionStorage, and renders what it gets as text (never as
// HTML). Served under a Content-Security-Policy that allows this file only.
"use strict";

const tokenKey = "keyward-token";
const $ = (id) => document.getElementById(id);

function token() { return sessionStorage.getItem(tokenKey) || ""; }

// api calls path (GET, or POST with body) and returns the decoded JSON, or
// throws an Error carrying keyward's error message.
async function api(path, body) {
  const headers = { "Accept": "application/json" };
  if (token()) headers["Authorization"] = "Bearer " + token();
  const init = { headers, credentials: "omit", cache: "no-store", redirect: "error" };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  let out = null;
  try { out = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) {
    const msg = out && out.error && out.error.message ? out.error.message : resp.status + " " + resp.statusText;
    const err = new Error(msg);
    err.status = resp.status;
    throw err;
  }
  return out;
}

function showError(msg) {
  const e = $("error");
  e.textContent = msg || "";
  e.hidden = !msg;
}

function el(tag, text) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  return e;
}

// table renders rows (objects) as a table of the given columns:
// [heading, function(row) -> text].
function table(target, columns, rows, empty) {
  target.replaceChildren();
  if (!rows || rows.length === 0) {
    target.append(el("p", empty));
    target.firstChild.className = "empty";
    return;
  }
  const t = el("table"), head = el("tr");
  for (const [h] of columns) head.append(el("th", h));
  t.append(el("thead"), el("tbody"));
  t.tHead.append(head);
  for (const r of rows) {
    const tr = el("tr");
    for (const [, f] of columns) tr.append(el("td", f(r) ?? ""));
    t.tBodies[0].append(tr);
  }
  target.append(t);
}

function when(s) {
  if (!s) return "-";
  const d = new Date(s);
  return isNaN(d) ? s : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function ago(s) {
  if (!s) return "-";
  const secs = (Date.now() - new Date(s).getTime()) / 1000;
  if (secs < 120) return Math.max(0, Math.round(secs / 60)) + "m ago";
  if (secs < 2 * 86400) return Math.round(secs / 3600) + "h ago";
  return Math.round(secs / 86400) + "d ago";
}

const views = {
  async inventory(section) {
    const q = new URLSearchParams();
    const add = (name, id) => { const v = $(id).value.trim(); if (v) q.set(name, v); };
    add("kind", "inventory-kind");
    add("unused_for", "inventory-unused");
    add("not_rotated_for", "inventory-rotated");
    add("expiring_within", "inventory-expiring");
    const out = await api("/v1/inventory?" + q);
    table(section.querySelector(".result"), [
      ["Kind", (i) => i.kind], ["ID", (i) => i.id + (i.name ? " (" + i.name + ")" : "")],
      ["Scope", (i) => i.scope + (i.secret ? " (" + i.secret + ")" : "")], ["Owner", (i) => i.owner || "-"],
      ["Created", (i) => when(i.created_at)], ["Rotated", (i) => ago(i.rotated_at)],
      ["Expires", (i) => when(i.expires_at)],
      ["Last used", (i) => !i.use_tracked ? "-" : !i.last_used_at ? "never" : ago(i.last_used_at) + (i.last_used_from ? " from " + i.last_used_from : "")],
      ["State", (i) => i.state],
    ], out.items, "No credential matches.");
  },
  async alerts(section) {
    const out = await api("/v1/alerts?since=168h");
    table(section.querySelector(".result"), [
      ["Time", (a) => when(a.time)], ["Anomaly", (a) => a.kind], ["Credential", (a) => a.subject_kind + " " + a.subject],
      ["Count", (a) => String(a.count)], ["Detail", (a) => a.detail || "-"], ["Response", (a) => a.response],
    ], out.alerts, "No anomaly in the last 7 days.");
  },
  async usage(section) {
    const out = await api("/v1/usage?since=1h");
    const sums = new Map();
    for (const r of out.usage || []) {
      const k = r.kind + "\u0000" + r.subject + "\u0000" + r.status;
      sums.set(k, { kind: r.kind, subject: r.subject, status: r.status, count: (sums.get(k)?.count || 0) + r.count });
    }
    table(section.querySelector(".result"), [
      ["Kind", (r) => r.kind], ["Subject", (r) => r.subject], ["Status", (r) => String(r.status)], ["Requests", (r) => String(r.count)],
    ], [...sums.values()], "No request in the last hour (nodes write their counts every 10 seconds).");
  },
  // audit shows a page of the newest entries that match the filters, newest
  // first; "Older entries" shows the page before it (the API's older
  // cursor), until none is left.
  async audit(section, before) {
    const q = new URLSearchParams({ newest: "true", limit: "100" });
    const add = (name, id) => { const v = $(id).value.trim(); if (v) q.set(name, v); };
    add("principal", "audit-principal");
    add("resource_prefix", "audit-resource");
    add("outcome", "audit-outcome");
    add("since", "audit-since");
    if (before) q.set("before", before);
    const out = await api("/v1/audit?" + q);
    const entries = (out.entries || []).slice().reverse();
    auditOlder = out.older || "";
    $("audit-older").hidden = !auditOlder || entries.length === 0;
    $("audit-page").textContent = entries.length === 0 ? "" :
      "Entries " + entries[entries.length - 1].seq + " to " + entries[0].seq + (before ? " (older page)" : " (newest)");
    table(section.querySelector(".result"), [
      ["Seq", (e) => String(e.seq)], ["Time", (e) => when(e.time)], ["Principal", (e) => e.principal || "-"],
      ["Action", (e) => e.action], ["Resource", (e) => e.resource || "-"], ["Outcome", (e) => e.outcome + " (" + e.status + ")"],
      ["From", (e) => e.source_addr || "-"],
    ], entries, "No entries.");
  },
  async access(section) {
    const q = new URLSearchParams();
    const state = $("access-state").value;
    if (state) q.set("state", state);
    const out = await api("/v1/access/requests?" + q);
    table(section.querySelector(".result"), [
      ["ID", (r) => r.id], ["State", (r) => r.state], ["Requester", (r) => r.requester],
      ["Policies", (r) => (r.policies || []).join(", ")], ["For", (r) => r.ttl], ["Reason", (r) => r.reason],
      ["Asked", (r) => ago(r.created_at)], ["Decided by", (r) => r.decided_by ? r.decided_by + (r.note ? ": " + r.note : "") : "-"],
      ["Waits until", (r) => r.expires_at ? when(r.expires_at) : "-"],
    ], out.requests, state ? "No " + state + " request." : "No request in the last 7 days.");
  },
};

async function show(name, arg) {
  showError("");
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== name;
  try {
    await views[name]($(name), arg);
  } catch (e) {
    showError(e.status === 403 ? "Your token may not read this: " + e.message : e.message);
    if (e.status === 401) signOut();
  }
}

async function signIn() {
  showError("");
  const t = $("token").value.trim();
  if (!t) { showError("Paste a token first."); return; }
  sessionStorage.setItem(tokenKey, t);
  sessionStorage.removeItem(ownKey);
  $("token").value = "";
  await start();
}

// login gets a token with the user's password (and TOTP code), which the
// dashboard owns: it revokes it on sign-out.
async function login() {
  showError("");
  sessionStorage.removeItem(tokenKey);
  const body = { username: $("username").value.trim(), password: $("password").value };
  const totp = $("totp").value.trim();
  if (totp) body.totp = totp;
  $("password").value = "";
  $("totp").value = "";
  try {
    const out = await api("/v1/auth/password/login", body);
    sessionStorage.setItem(tokenKey, out.token);
    sessionStorage.setItem(ownKey, "1");
  } catch (e) {
    showError(e.message);
    return;
  }
  await start();
}

// auditOlder is the cursor of the page older than the one shown.
let auditOlder = "";

// ownKey marks a token the dashboard got by password, revoked on sign-out.
const ownKey = "keyward-token-own";

function signOut() {
  if (token() && sessionStorage.getItem(ownKey)) {
    api("/v1/auth/token/revoke-self", {}).catch(() => {}); // best effort: it expires anyway
  }
  sessionStorage.removeItem(ownKey);
  sessionStorage.removeItem(tokenKey);
  $("who").textContent = "";
  for (const id of ["inventory-kind", "inventory-unused", "inventory-rotated", "inventory-expiring",
    "audit-principal", "audit-resource", "audit-outcome", "audit-since"]) $(id).value = "";
  $("access-state").value = "pending";
  for (const r of document.querySelectorAll(".result")) r.replaceChildren(); // nothing of the last session stays
  $("audit-page").textContent = "";
  $("audit-older").hidden = true;
  auditOlder = "";
  $("signout").hidden = true;
  $("tabs").hidden = true;
  for (const s of document.querySelectorAll("section.tab")) s.hidden = true;
  $("signin").hidden = false;
}

async function start() {
  if (!token()) { signOut(); return; }
  try {
    const me = await api("/v1/auth/token/lookup-self");
    $("who").textContent = "Signed in as " + me.principal + " (" + (me.policies || []).join(", ") + ")";
  } catch (e) {
    signOut();
    showError(e.message);
    return;
  }
  $("signin").hidden = true;
  $("signout").hidden = false;
  $("tabs").hidden = false;
  await show("inventory");
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-button").addEventListener("click", signIn);
  $("login-button").addEventListener("click", login);
  $("password").addEventListener("keydown", (e) => { if (e.key === "Enter") login(); });
  $("token").addEventListener("keydown", (e) => { if (e.key === "Enter") signIn(); });
  $("signout").addEventListener("click", signOut);
  $("inventory-load").addEventListener("click", () => show("inventory"));
  $("audit-load").addEventListener("click", () => show("audit"));
  $("audit-older").addEventListener("click", () => show("audit", auditOlder));
  $("access-load").addEventListener("click", () => show("access"));
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.tab));
  start();
});
