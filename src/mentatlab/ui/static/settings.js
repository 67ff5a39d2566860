// The settings view: who the caller is (/api/v1/me), API keys (/api/v1/keys: create with
// the secret shown once, revoke, rotate), people and roles (/api/v1/members), the org's
// quotas (/api/v1/quotas) and the audit log (/api/v1/audit, paged with its cursor). Each
// part exists only when the page was rendered for a role allowed to use it; every change
// goes through the REST API and its errors show next to the field they name.
import { fetchApi, formatCount } from "./chart.js";
import { cell, message, when } from "./table.js";
import { clearErrors, confirmAction, sendJson, showErrors } from "./apiform.js";

const view = document.getElementById("settings");
const { api, org, installation } = view.dataset;
const can = {
  keys: view.dataset.canKeys === "yes",
  members: view.dataset.canMembers === "yes" && org !== "",
  quotas: view.dataset.canQuotas === "yes" && org !== "",
  audit: view.dataset.canAudit === "yes",
};
const AUDIT_PAGE = 25;
const LIMITS = [
  ["key_ingest_requests_per_s", "Ingest requests per second, per key"],
  ["org_ingest_requests_per_s", "Ingest requests per second, whole org"],
  ["key_ingest_spans_per_min", "Spans per minute, per key"],
  ["org_ingest_spans_per_min", "Spans per minute, whole org"],
  ["key_queries_per_min", "Queries per minute, per key or person"],
  ["org_queries_per_min", "Queries per minute, whole org"],
];

function button(text, onClick, className = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (className) {
    b.className = className;
  }
  b.addEventListener("click", onClick);
  return b;
}

function scopeText(orgId, projectId) {
  if (!orgId) {
    return "installation";
  }
  return projectId ? `project ${orgId}/${projectId}` : `org ${orgId}`;
}

function showError(text) {
  const box = document.getElementById("error");
  box.textContent = text;
  box.hidden = false;
}

// --- you ------------------------------------------------------------------------------

async function loadMe() {
  const me = await fetchApi(api, "/me", {});
  const set = (name, text) => {
    view.querySelector(`[data-me="${name}"]`).textContent = text;
  };
  const who = me.kind === "anonymous" ? "nobody (authentication is off)"
    : `${me.name || me.id} (${me.kind === "key" ? "API key" : "person"})`;
  set("who", who);
  set("role", me.role);
  set("scope", scopeText(me.org_id, me.project_id));
  set("permissions", me.permissions.join(", ") || "nothing");
}

async function loadOrgs() {
  const list = document.getElementById("org-list");
  if (!list) {
    return;
  }
  const answer = await fetchApi(api, "/orgs", {});
  list.replaceChildren(...answer.orgs.map((o) => {
    const option = document.createElement("option");
    option.value = o.id;
    option.textContent = o.name;
    return option;
  }));
}

// --- keys -----------------------------------------------------------------------------

const includeRevoked = document.getElementById("include-revoked");

async function loadKeys() {
  const answer = await fetchApi(api, "/keys", {
    include_revoked: includeRevoked.checked ? "true" : "",
    org_id: installation === "yes" ? org : "",
  });
  const body = view.querySelector("#keys tbody");
  if (answer.keys.length === 0) {
    message(body, "No API key yet: create one below.", 8);
    return;
  }
  body.replaceChildren();
  for (const key of answer.keys) {
    const tr = document.createElement("tr");
    tr.dataset.keyId = key.id;
    cell(tr, key.name, "name", key.id);
    cell(tr, key.role);
    cell(tr, scopeText(key.org_id, key.project_id), "name wide-only");
    cell(tr, `${key.prefix}…`, "mono wide-only", "The key's public prefix");
    cell(tr, when(key.created_at), "wide-only", key.created_by ? `by ${key.created_by}` : "");
    cell(tr, when(key.last_used_at), "wide-only");
    const revoked = Boolean(key.revoked_at);
    if (revoked) {
      cell(tr, "revoked", "state-disabled", `revoked ${when(key.revoked_at)}`);
    } else if (key.expires_at) {
      cell(tr, "retiring", "", `stops working at ${when(key.expires_at)}`);
    } else {
      cell(tr, "active");
    }
    const actions = cell(tr, "", "actions");
    if (!revoked) {
      actions.append(
        button("Rotate", () => rotateKey(key), "small"),
        button("Revoke", () => revokeKey(key), "small danger"),
      );
      for (const b of actions.querySelectorAll("button")) {
        b.setAttribute("aria-label", `${b.textContent} key ${key.name}`);
      }
    }
    body.append(tr);
  }
}

function showSecret(key) {
  const box = document.getElementById("new-secret");
  box.querySelector('[data-secret="name"]').textContent =
    `“${key.name}” (${key.role}, ${scopeText(key.org_id, key.project_id)})`;
  const input = document.getElementById("secret-value");
  input.value = key.secret;
  document.getElementById("copy-status").textContent = "";
  box.hidden = false;
  box.focus();
}

async function copySecret() {
  const input = document.getElementById("secret-value");
  const status = document.getElementById("copy-status");
  try {
    await navigator.clipboard.writeText(input.value);
    status.textContent = "Copied to the clipboard.";
  } catch (e) {
    // no clipboard permission (an embedded or headless browser): leave it selected
    input.select();
    status.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
  }
}

function hideSecret() {
  const box = document.getElementById("new-secret");
  document.getElementById("secret-value").value = "";
  box.hidden = true;
}

async function createKey(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const data = new FormData(form);
  const body = { name: data.get("name").trim(), role: data.get("role") };
  for (const name of ["project_id", "org_id"]) {
    const value = (data.get(name) || "").trim();
    if (value) {
      body[name] = value;
    }
  }
  const answer = await sendJson(api, "/keys", "POST", body);
  if (!answer.ok) {
    showErrors(form, answer);
    return;
  }
  form.reset();
  await loadKeys();
  showSecret(answer.body.key);
}

async function revokeKey(key) {
  const yes = await confirmAction(`Revoke key “${key.name}” (${key.prefix}…)? Everything ` +
    "using it is refused from now on; this cannot be undone.", "Revoke key");
  if (!yes) {
    return;
  }
  const answer = await sendJson(api, `/keys/${encodeURIComponent(key.id)}`, "DELETE");
  if (!answer.ok) {
    showError(`Could not revoke ${key.name}: ${answer.body.error}`);
    return;
  }
  await loadKeys();
  await loadAudit(true);
}

async function rotateKey(key) {
  const chosen = await confirmAction(`Rotate key “${key.name}”? A new secret with the same ` +
    "name, role and scope is issued; the old one stops after the grace time.", "Rotate key", true);
  if (!chosen) {
    return;
  }
  const answer = await sendJson(api, `/keys/${encodeURIComponent(key.id)}/rotate`, "POST",
    { grace_s: chosen.graceS });
  if (!answer.ok) {
    showError(`Could not rotate ${key.name}: ${answer.body.error}` +
      (answer.body.errors || []).map((e) => ` (${e.field}: ${e.reason})`).join(""));
    return;
  }
  await loadKeys();
  showSecret(answer.body.key);
  await loadAudit(true);
}

// --- members --------------------------------------------------------------------------

async function loadMembers() {
  const answer = await fetchApi(api, "/members", { org_id: org });
  const body = view.querySelector("#members tbody");
  if (answer.members.length === 0) {
    message(body, "Nobody yet: add people below (or they join by signing in with OIDC).", 5);
    return;
  }
  body.replaceChildren();
  for (const member of answer.members) {
    const tr = document.createElement("tr");
    cell(tr, member.email, "name", member.user_id);
    cell(tr, member.name || "—", "name wide-only");
    cell(tr, member.role);
    cell(tr, member.source, "wide-only");
    const actions = cell(tr, "", "actions");
    const remove = button("Remove", () => removeMember(member), "small danger");
    remove.setAttribute("aria-label", `Remove ${member.email}`);
    actions.append(remove);
    body.append(tr);
  }
}

async function saveMember(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const data = new FormData(form);
  const answer = await sendJson(api, "/members", "POST", {
    email: data.get("email").trim(), name: data.get("name").trim(), role: data.get("role"),
    org_id: org,
  });
  if (!answer.ok) {
    showErrors(form, answer);
    return;
  }
  form.reset();
  await loadMembers();
  await loadAudit(true);
}

async function removeMember(member) {
  const yes = await confirmAction(`Remove ${member.email} (${member.role}) from ${org}? ` +
    "Their sessions in this org end now.", "Remove person");
  if (!yes) {
    return;
  }
  const answer = await sendJson(api,
    `/members/${encodeURIComponent(member.user_id)}?org_id=${encodeURIComponent(org)}`, "DELETE");
  if (!answer.ok) {
    showError(`Could not remove ${member.email}: ${answer.body.error}` +
      (answer.body.errors || []).map((e) => ` (${e.reason})`).join(""));
    return;
  }
  await loadMembers();
  await loadAudit(true);
}

// --- quotas ---------------------------------------------------------------------------

let overrides = {};

function limitText(value) {
  return value === 0 ? "unlimited" : formatCount(value);
}

async function loadQuotas() {
  const answer = await fetchApi(api, "/quotas", { org_id: org });
  const quota = answer.quotas[0];
  overrides = quota.overrides;
  const body = view.querySelector("#quotas tbody");
  body.replaceChildren();
  for (const [name, label] of LIMITS) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = label;
    tr.append(th);
    cell(tr, limitText(answer.defaults[name]), "num wide-only");
    cell(tr, limitText(quota.limits[name]), "num", name in overrides ? "overridden" : "the setting");
    const td = cell(tr, "");
    const input = document.createElement("input");
    input.type = "number";
    input.min = "0";
    input.step = "1";
    input.name = `limits.${name}`;
    input.className = "limit";
    input.placeholder = "setting";
    input.setAttribute("aria-label", `Override: ${label}`);
    input.value = name in overrides ? String(overrides[name]) : "";
    td.append(input);
    tr.append(td);
    body.append(tr);
  }
}

async function saveQuotas(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const limits = {};
  for (const [name] of LIMITS) {
    const raw = form.elements[`limits.${name}`].value.trim();
    if (raw === "") {
      if (name in overrides) {
        limits[name] = null;
      }
    } else if (String(overrides[name]) !== raw) {
      // sent as typed when it is not a whole number: the API names the field and why
      limits[name] = /^\d+$/.test(raw) ? Number(raw) : raw;
    }
  }
  const status = document.getElementById("quota-status");
  if (Object.keys(limits).length === 0) {
    status.textContent = "Nothing changed.";
    return;
  }
  const answer = await sendJson(api, "/quotas", "PUT", { org_id: org, limits });
  if (!answer.ok) {
    status.textContent = "";
    showErrors(form, answer);
    return;
  }
  await loadQuotas();
  status.textContent = `Saved: ${Object.keys(limits).join(", ")}.`;
  await loadAudit(true);
}

async function resetQuotas() {
  const form = document.getElementById("quota-form");
  clearErrors(form);
  const yes = await confirmAction(`Drop every quota override of ${org}? The server's settings ` +
    "apply to it again.", "Back to the settings");
  if (!yes) {
    return;
  }
  const answer = await sendJson(api, `/quotas?org_id=${encodeURIComponent(org)}`, "DELETE");
  if (!answer.ok) {
    showErrors(form, answer);
    return;
  }
  await loadQuotas();
  document.getElementById("quota-status").textContent = answer.body.cleared
    ? "Overrides dropped." : "There were no overrides.";
  await loadAudit(true);
}

// --- audit ----------------------------------------------------------------------------

let auditCursor = null;

function detailsText(details) {
  const entries = Object.entries(details || {});
  return entries.map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(", ");
}

async function loadAudit(fresh) {
  if (!can.audit) {
    return;
  }
  const filter = document.getElementById("audit-filter");
  const data = new FormData(filter);
  const answer = await fetchApi(api, "/audit", {
    action: data.get("action"), actor: data.get("actor").trim(), limit: AUDIT_PAGE,
    cursor: fresh ? null : auditCursor, org_id: installation === "yes" ? org : "",
  });
  const body = view.querySelector("#audit tbody");
  if (fresh) {
    body.replaceChildren();
  }
  if (fresh && answer.entries.length === 0) {
    message(body, "No entry matches.", 5);
  }
  for (const entry of answer.entries) {
    const tr = document.createElement("tr");
    tr.dataset.seq = entry.seq;
    cell(tr, when(entry.at, true), "", `#${entry.seq}`);
    cell(tr, entry.action, "mono");
    cell(tr, entry.actor, "name mono", entry.actor);
    cell(tr, entry.target || "—", "name mono wide-only", entry.target || "");
    const details = detailsText(entry.details);
    cell(tr, details || "—", "name wide-only", details);
    body.append(tr);
  }
  auditCursor = answer.next_cursor;
  document.getElementById("audit-more").hidden = auditCursor === null;
}

async function filterAudit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  try {
    await loadAudit(true);
  } catch (e) {
    const box = form.querySelector(".form-error");
    box.textContent = e.message;
    box.hidden = false;
  }
}

// --- start ----------------------------------------------------------------------------

function wire() {
  if (can.keys) {
    document.getElementById("key-form").addEventListener("submit", createKey);
    includeRevoked.addEventListener("change", () => loadKeys().catch((e) => showError(e.message)));
    document.getElementById("copy-secret").addEventListener("click", copySecret);
    document.getElementById("hide-secret").addEventListener("click", hideSecret);
  }
  if (can.members) {
    document.getElementById("member-form").addEventListener("submit", saveMember);
  }
  if (can.quotas) {
    document.getElementById("quota-form").addEventListener("submit", saveQuotas);
    document.getElementById("quota-reset").addEventListener("click", resetQuotas);
  }
  if (can.audit) {
    document.getElementById("audit-filter").addEventListener("submit", filterAudit);
    document.getElementById("audit-more").addEventListener("click",
      () => loadAudit(false).catch((e) => showError(e.message)));
  }
}

async function load() {
  wire();
  await Promise.all([
    loadMe(),
    loadOrgs(),
    can.keys ? loadKeys() : null,
    can.members ? loadMembers() : null,
    can.quotas ? loadQuotas() : null,
    loadAudit(true),
  ]);
}

load()
  .catch((e) => showError(`Could not load the settings: ${e.message}`))
  .finally(() => view.setAttribute("aria-busy", "false"));
