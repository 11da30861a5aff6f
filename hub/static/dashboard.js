// The dashboard: sign in, run and follow tasks, read notifications, watch the beat
// schedule. Everything live comes through hub.js (and its inbox); REST is only used for
// the initial task list.

import { connect, mergeTask } from "/static/hub.js";

const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const FEED_SIZE = 20;
const $ = (selector, root = document) => root.querySelector(selector);

const dev = document.body.dataset.dev === "true";
const scheduleEntries = JSON.parse(document.body.dataset.schedules || "[]");

/** For tests and debugging: per task, the offsets applied in order and how many snapshots
 *  (first subscribe and every resync); the connection statuses seen. */
const debug = { offsets: {}, snapshots: {}, statuses: [] };
window.hubDebug = debug;

let client = null;
let session = null; // {user, token}
const rows = new Map(); // taskId -> {el, view, stop}

// -- REST ------------------------------------------------------------------------

async function api(method, path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || data.title || `HTTP ${response.status}`);
  return data;
}

const devToken = async (user) => (await api("POST", "/dashboard/dev-token", { user })).token;

function showError(testid, error) {
  const el = $(`[data-testid="${testid}"]`);
  el.textContent = error ? String(error.message || error) : "";
  el.hidden = !error;
}

// -- connection status -------------------------------------------------------------

const STATUS_TEXT = {
  "signed-out": "signed out", connecting: "connecting…", connected: "connected",
  reconnecting: "reconnecting…", disconnected: "disconnected",
};

function setStatus(status) {
  debug.statuses.push(status);
  const el = $('[data-testid="conn-status"]');
  el.dataset.status = status;
  el.textContent = STATUS_TEXT[status] || status;
}

// -- tasks -----------------------------------------------------------------------

function renderTask(taskId, view) {
  const row = rows.get(taskId);
  row.view = view;
  const { el } = row;
  const percent = Math.max(0, Math.min(100, Math.round(view.progress?.percent ?? 0)));
  el.dataset.state = view.state;
  $(".name", el).textContent = view.name || "task";
  $(".state", el).textContent = view.state;
  $(".state", el).className = `state state-${view.state}`;
  const bar = $(".bar", el);
  bar.dataset.percent = String(percent);
  bar.title = `${percent}%`;
  $(".fill", bar).style.width = `${percent}%`;
  const message = view.error ? `error: ${view.error.message || view.error}` : view.progress?.message;
  $(".message", el).textContent = message || "";
  if (FINAL.has(view.state) && row.stop) {
    row.stop();
    row.stop = null;
  }
}

/** Show a task row (newest on top) from a task record; follow it live unless finished. */
function addTask(record, { top = true } = {}) {
  if (rows.has(record.id)) return rows.get(record.id);
  const el = $("#task-row").content.firstElementChild.cloneNode(true);
  el.dataset.taskId = record.id;
  $(".id", el).textContent = record.id.slice(0, 8);
  $(".id", el).title = record.id;
  const list = $('[data-testid="task-list"]');
  if (top) list.prepend(el);
  else list.append(el);
  $('[data-testid="tasks-empty"]').hidden = true;
  const row = { el, view: mergeTask({ progress: {} }, "snapshot", record), stop: null };
  rows.set(record.id, row);
  renderTask(record.id, row.view);
  if (!FINAL.has(record.state)) follow(record.id);
  return row;
}

function follow(taskId) {
  const row = rows.get(taskId);
  const channel = `task:${taskId}`;
  const offsets = (debug.offsets[taskId] = []);
  debug.snapshots[taskId] = 0;
  const stop = client.onTask(taskId, (view) => renderTask(taskId, view));
  // A second listener on the same channel, only to record what was applied.
  client.subscribe(channel, (p) => {
    if (p.synthetic) debug.snapshots[taskId] += 1;
    else offsets.push(p.offset);
  }).catch(() => {});
  // onTask may finish synchronously for a known task; only keep stop if still following.
  if (!FINAL.has(row.view.state)) row.stop = stop;
  else stop();
}

async function runDemo(event) {
  event.preventDefault();
  showError("tasks-error", null);
  const steps = Number($('[data-testid="demo-steps"]').value);
  const delay = Number($('[data-testid="demo-delay"]').value);
  try {
    const record = await api("POST", "/dashboard/demo-task", { steps, delay }, session.token);
    addTask(record);
  } catch (error) {
    showError("tasks-error", error);
  }
}

async function loadRecentTasks() {
  const page = await api("GET", "/api/v1/me/tasks?limit=20", undefined, session.token);
  for (const record of page.items) addTask(record, { top: false });
}

// -- inbox -----------------------------------------------------------------------

function renderInbox(inbox) {
  const count = inbox.unreadCount ?? inbox.items.filter((item) => !item.read).length;
  const badge = $('[data-testid="unread-badge"]');
  badge.dataset.count = String(count);
  badge.textContent = count > 99 ? "99+" : String(count);
  badge.title = `${count} unread`;
  $('[data-testid="mark-all-read"]').disabled = count === 0;
  $('[data-testid="inbox-empty"]').hidden = inbox.items.length > 0;
  $('[data-testid="load-more"]').hidden = !inbox.hasMore;
  const list = $('[data-testid="notification-list"]');
  const existing = new Map([...list.children].map((el) => [el.dataset.id, el]));
  let previous = null;
  for (const item of inbox.items) {
    let el = existing.get(String(item.id));
    existing.delete(String(item.id));
    if (!el) el = notificationElement(item);
    el.dataset.read = String(item.read);
    el.setAttribute("aria-label", `${item.title}${item.read ? "" : " (unread)"}`);
    // Keep the DOM in the inbox's order (newest first) without rebuilding it.
    const want = previous ? previous.nextElementSibling : list.firstElementChild;
    if (want !== el) list.insertBefore(el, want);
    previous = el;
  }
  for (const el of existing.values()) el.remove();
}

function notificationElement(item) {
  const el = $("#notification-item").content.firstElementChild.cloneNode(true);
  el.dataset.id = String(item.id);
  if (item.category) el.dataset.category = item.category;
  $(".title", el).textContent = item.title;
  $(".body", el).textContent = item.body || "";
  $(".body", el).hidden = !item.body;
  const when = $(".when", el);
  when.dateTime = item.created_at;
  when.textContent = new Date(item.created_at).toLocaleTimeString();
  when.title = new Date(item.created_at).toLocaleString();
  return el;
}

async function inboxAction(action) {
  showError("inbox-error", null);
  try {
    await action();
  } catch (error) {
    showError("inbox-error", error);
  }
}

function onNotificationActivate(event) {
  if (event.type === "keydown" && event.key !== "Enter" && event.key !== " ") return;
  const el = event.target.closest('[data-testid="notification-item"]');
  if (!el || !client) return;
  if (event.type === "keydown") event.preventDefault();
  if (el.dataset.read !== "true") inboxAction(() => client.inbox.markRead([Number(el.dataset.id)]));
}

// -- schedules --------------------------------------------------------------------

function addScheduleItem(feed, p) {
  const { entry, task_id: taskId, state, result, ran_at: ranAt } = p.data;
  const li = document.createElement("li");
  li.dataset.testid = "schedule-item";
  li.dataset.state = state;
  const time = document.createElement("time");
  time.dateTime = ranAt || p.ts;
  time.textContent = new Date(ranAt || p.ts).toLocaleTimeString();
  const text = document.createElement("span");
  text.textContent = ` ${entry} ${state}${taskId ? ` (${String(taskId).slice(0, 8)})` : ""}`;
  const res = document.createElement("code");
  res.textContent = result == null ? "" : JSON.stringify(result);
  li.append(time, text, " ", res);
  li.className = `state-${state}`;
  feed.prepend(li);
  while (feed.children.length > FEED_SIZE) feed.lastElementChild.remove();
}

function followSchedules() {
  for (const entry of scheduleEntries) {
    const feed = $(`[data-testid="schedule-feed"][data-entry="${CSS.escape(entry)}"]`);
    client.subscribe(`schedule:${entry}`, (p) => {
      if (p.type === "schedule.ran") addScheduleItem(feed, p);
    }).catch((error) => console.warn("cannot follow schedule", entry, error));
  }
}

// -- session ----------------------------------------------------------------------

function resetView() {
  for (const row of rows.values()) row.stop?.();
  rows.clear();
  $('[data-testid="task-list"]').replaceChildren();
  $('[data-testid="tasks-empty"]').hidden = false;
  $('[data-testid="notification-list"]').replaceChildren();
  for (const feed of document.querySelectorAll('[data-testid="schedule-feed"]')) {
    feed.replaceChildren();
  }
}

async function start(user, token, getToken) {
  if (client) client.close();
  resetView();
  session = { user, token };
  client = connect({
    url: window.location.origin,
    token,
    getToken: getToken && (async () => (session.token = await getToken())),
  });
  window.hubClient = client;
  client.onStatus(setStatus);
  // Final task events also reach the personal channel: other tabs see tasks finish.
  for (const state of FINAL) {
    client.on(`task.${state}`, (p) => {
      const row = rows.get(p.data.id) || addTask(p.data);
      renderTask(p.data.id, mergeTask(row.view, p.type, p.data));
    });
  }
  const who = $('[data-testid="current-user"]');
  who.textContent = client.user;
  who.hidden = false;
  $("#tasks").hidden = false;
  $("#inbox").hidden = false;
  $("#schedules").hidden = false;
  const { inbox } = client;
  inbox.onChange((changed) => changed === client?.inbox && renderInbox(changed));
  renderInbox(inbox);
  followSchedules();
  await Promise.all([
    loadRecentTasks().catch((error) => showError("tasks-error", error)),
    inbox.load().catch((error) => showError("inbox-error", error)),
  ]);
}

async function signIn(event) {
  event.preventDefault();
  showError("signin-error", null);
  const user = $('[data-testid="signin-user"]').value.trim();
  try {
    const token = await devToken(user);
    await start(user, token, () => devToken(user));
  } catch (error) {
    showError("signin-error", error);
  }
}

function init() {
  if (dev) {
    $('[data-testid="signin-form"]').addEventListener("submit", signIn);
    $('[data-testid="demo-form"]').addEventListener("submit", runDemo);
  }
  const list = $('[data-testid="notification-list"]');
  list.addEventListener("click", onNotificationActivate);
  list.addEventListener("keydown", onNotificationActivate);
  $('[data-testid="mark-all-read"]').addEventListener(
    "click", () => inboxAction(() => client.inbox.markAllRead()));
  $('[data-testid="load-more"]').addEventListener(
    "click", () => inboxAction(() => client.inbox.loadMore()));
  signInFromFragment();
  window.addEventListener("hashchange", signInFromFragment);
}

/** Outside development a token arrives as `#token=...`; it leaves the address bar at once. */
function signInFromFragment() {
  const token = new URLSearchParams(window.location.hash.slice(1)).get("token");
  if (!token) return;
  history.replaceState(null, "", window.location.pathname + window.location.search);
  start(null, token).catch((error) => showError("signin-error", error));
}

init();
