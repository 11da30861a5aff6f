// hub.js: the browser client for Hub (SPEC sections 2-6). An ES module whose only
// dependency is the vendored Socket.IO client.
//
// What it guarantees: every subscription sees each publication of its channel at most
// once and in offset order. After any reconnect it resubscribes with `since` (and
// recovers the personal channel through `auth.since`); when history cannot fill a
// gap it says so through the subscription's `onResync(ack)` hook instead of
// pretending nothing was lost.

import { io } from "/static/vendor/socket.io.esm.min.js";
import { Inbox } from "/static/inbox.js";

export { Inbox };

const FINAL_STATES = new Set(["succeeded", "failed", "cancelled"]);
const ACK_TIMEOUT_MS = 10000;
const TRANSIENT = new Set(["unavailable", "rate_limited"]); // worth retrying the subscribe

/**
 * @typedef {{channel: string, offset: number, epoch: string, type: string, data: any,
 *            ts: string, trace_id: string}} Publication
 * @typedef {{ok: boolean, channel?: string, offset?: number, epoch?: string,
 *            recovered?: boolean, publications?: Publication[], snapshot?: object,
 *            error?: {code: string, message: string}}} SubscribeAck
 * @typedef {{id: string, name?: string, state: string,
 *            progress: {current: number|null, total: number|null, percent: number|null,
 *                       message: string|null},
 *            result: any, error: any}} TaskView
 * @typedef {{onResync?: (ack: SubscribeAck) => void}} SubscribeOptions
 */

/** The `sub` claim of a JWT, read without verifying (the server verifies). */
function subjectOf(token) {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "="))).sub;
}

/** Merge a task record or a task.* publication into a task view; final states stick. */
export function mergeTask(view, type, data) {
  const next = { ...view, progress: { ...view.progress } };
  if (type === "task.progress") {
    if (FINAL_STATES.has(view.state)) return view;
    const { current, total, percent, message } = data;
    next.progress = { current, total, percent, message };
    return next;
  }
  if (type === "task.retrying") {
    if (FINAL_STATES.has(view.state)) return view;
    return { ...next, state: "retrying", error: data.error ?? null };
  }
  // A task record: "task.snapshot" (from the subscribe ack), queued, started, final events.
  if (FINAL_STATES.has(view.state) && !FINAL_STATES.has(data.state)) return view;
  for (const key of ["id", "name", "state", "result", "error"]) {
    if (data[key] !== undefined) next[key] = data[key];
  }
  if (data.progress) next.progress = { ...next.progress, ...data.progress };
  return next;
}

/**
 * Connect to Hub.
 * @param {{url?: string, token: string, getToken?: () => Promise<string>}} options
 *   url: the hub's origin (default: this page's); token: a user JWT; getToken: returns
 *   a fresh JWT when the current one is about to expire (and before reconnecting).
 * @returns {Hub}
 */
export function connect({ url = window.location.origin, token, getToken }) {
  return new Hub(url, token, getToken);
}

/** A connection to Hub: subscriptions with recovery, task views, the personal channel
 *  and its inbox. Make one with `connect()`. */
export class Hub {
  constructor(url, token, getToken) {
    /** @type {string} the hub's origin (REST calls go there too) */
    this.url = url;
    this.token = token;
    this.getToken = getToken;
    /** @type {string} the signed-in user id (`sub`) */
    this.user = subjectOf(token);
    this.personalChannel = `user:${this.user}`;
    /** channel -> {listeners, onResync, pos, pending, buffer, ready} */
    this.subs = new Map();
    /** personal-channel listeners by type ("*" for all); `inbox` is one of them */
    this.personal = new Map();
    this.tasks = new Map(); // taskId -> {view, fns}
    this.status = "connecting";
    this.statusListeners = new Set();
    this.generation = 0; // bumps on every (dis)connect: acks from older connections are stale
    this.authFailures = 0;
    this.closing = null;
    /** @type {string|null} the token's expiry as the server last confirmed it (after refresh) */
    this.expiresAt = null;

    // The personal channel is always followed. When its history is lost (and on the first
    // connect) "hub.resync" listeners get the ack: an inbox reloads from REST there.
    this._track(this.personalChannel, (p) => this._dispatchPersonal(p), {
      onResync: (ack) => this._dispatchPersonal({ type: "hub.resync", data: ack }),
    });
    /** @type {Inbox} the user's notifications: call `inbox.load()` to start using it */
    this.inbox = new Inbox(this);
    this.socket = io(url, {
      transports: ["websocket"],
      // Called before every (re)connect: the newest token, and where the personal channel stands.
      auth: (cb) => cb({ token: this.token, ...this._since(this.personalChannel) }),
    });
    this.socket.on("connect", () => this._onConnect());
    this.socket.on("disconnect", (reason) => this._onDisconnect(reason));
    this.socket.on("connect_error", (err) => this._onConnectError(err));
    this.socket.on("token.expiring", () => this._refresh());
    // Why the hub is about to close this connection ({code, message}), if it says.
    this.socket.on("connection.closing", (reason) => { this.closing = reason; });
    this.socket.onAny((event, payload) => this._onPublication(payload));
  }

  // -- public API ----------------------------------------------------------------

  /**
   * Subscribe to a channel. `onResync(ack)` runs when the client holds no continuous
   * history of the channel (first subscribe, or recovery impossible): rebuild from
   * `ack.snapshot` or REST. On `task:` channels it defaults to delivering the snapshot
   * as a publication of type "task.snapshot" (`synthetic: true`, offset = ack.offset).
   * Subscribing again to a channel adds a listener.
   * @param {string} channel
   * @param {(p: Publication) => void} onPublication
   * @param {SubscribeOptions} [options]
   * @returns {Promise<SubscribeAck>} the first ack (rejects when refused)
   */
  subscribe(channel, onPublication, options = {}) {
    const existing = this.subs.get(channel);
    if (existing) {
      existing.listeners.add(onPublication);
      return existing.ready;
    }
    const sub = this._track(channel, onPublication, options);
    if (this.socket.connected) this._sendSubscribe(sub);
    return sub.ready;
  }

  /** Stop following a channel (every listener). @param {string} channel */
  unsubscribe(channel) {
    if (channel === this.personalChannel || !this.subs.delete(channel)) return;
    if (this.socket.connected) {
      this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck("unsubscribe", { channel }).catch(() => {});
    }
  }

  /**
   * Follow a task: `fn(view)` runs with the merged task view after the snapshot and
   * every task.* event.
   * @param {string} taskId
   * @param {(view: TaskView) => void} fn
   * @returns {() => void} stops following
   */
  onTask(taskId, fn) {
    let task = this.tasks.get(taskId);
    if (!task) {
      const view = { id: taskId, state: "queued", result: null, error: null,
        progress: { current: null, total: null, percent: null, message: null } };
      task = { view, fns: new Set(), synced: false };
      this.tasks.set(taskId, task);
      const update = (type, data) => {
        task.synced = true;
        task.view = mergeTask(task.view, type, data);
        for (const f of task.fns) f(task.view);
      };
      // The default resync of task channels delivers the snapshot as "task.snapshot".
      this.subscribe(`task:${taskId}`, (p) => update(p.type, p.data)).catch((err) => console.warn("hub: cannot follow task", taskId, err));
    } else if (task.synced) {
      fn(task.view);
    }
    task.fns.add(fn);
    return () => {
      task.fns.delete(fn);
      if (task.fns.size === 0) {
        this.tasks.delete(taskId);
        this.unsubscribe(`task:${taskId}`);
      }
    };
  }

  // The personal channel. `hub.inbox` (inbox.js) listens here to "notification.created",
  // "notification.read" and "hub.resync" (to fill gaps from REST).

  /**
   * Listen to the personal channel (`user:<sub>`) by event type, or "*" for all. The
   * synthetic type "hub.resync" (data: the subscribe ack) means its history was lost.
   * @param {string} type e.g. "task.succeeded", "notification.created"
   * @param {(p: Publication) => void} fn
   * @returns {() => void} removes the listener
   */
  on(type, fn) {
    if (!this.personal.has(type)) this.personal.set(type, new Set());
    this.personal.get(type).add(fn);
    return () => this.personal.get(type)?.delete(fn);
  }

  /** @param {(status: "connecting"|"connected"|"reconnecting"|"disconnected") => void} fn */
  onStatus(fn) {
    this.statusListeners.add(fn);
    fn(this.status);
    return () => this.statusListeners.delete(fn);
  }

  /** Close the connection for good. */
  close() {
    this.socket.disconnect();
    this._setStatus("disconnected");
  }

  // -- connection lifecycle -------------------------------------------------------

  _setStatus(status) {
    this.status = status;
    for (const fn of this.statusListeners) fn(status);
  }

  _onConnect() {
    this.generation += 1;
    this.authFailures = 0;
    this._setStatus("connected");
    // The server forgot every subscription with the old connection: resubscribe with `since`.
    for (const sub of this.subs.values()) this._sendSubscribe(sub);
  }

  async _onDisconnect(reason) {
    this.generation += 1; // acks still in flight belong to the old connection
    if (reason === "io client disconnect") return;
    const closing = this.closing;
    this.closing = null;
    if (closing?.code === "rate_limited") {
      // Closed for sending too fast: come back after a pause and recover what was missed.
      this._setStatus("reconnecting");
      setTimeout(() => this.socket.connect(), 2000);
    } else if (reason !== "io server disconnect") {
      this._setStatus("reconnecting"); // Socket.IO retries by itself
    } else if (await this._freshToken()) {
      // The server hung up (token expiry): Socket.IO will not retry on its own.
      this._setStatus("reconnecting");
      this.socket.connect();
    } else {
      this._setStatus("disconnected");
    }
  }

  async _onConnectError(err) {
    if (this.socket.active) {
      this._setStatus("reconnecting"); // a transport error: Socket.IO retries by itself
    } else if (err?.data?.code === "unauthorized" && ++this.authFailures <= 5
               && (await this._freshToken())) {
      this._setStatus("reconnecting");
      setTimeout(() => this.socket.connect(), 1000);
    } else {
      this._setStatus("disconnected"); // refused for good
      console.warn("hub: connection refused", err?.data ?? err);
    }
  }

  async _freshToken() {
    if (!this.getToken) return false;
    try {
      this.token = await this.getToken();
      return true;
    } catch (err) {
      console.warn("hub: getToken failed", err);
      return false;
    }
  }

  async _refresh() {
    if (!(await this._freshToken())) return;
    const ack = await this.socket.timeout(ACK_TIMEOUT_MS)
      .emitWithAck("refresh", { token: this.token }).catch((err) => ({ ok: false, err }));
    if (ack.ok) this.expiresAt = ack.expires_at;
    else console.warn("hub: token refresh refused", ack);
  }

  // -- subscriptions and ordering -------------------------------------------------

  _track(channel, onPublication, { onResync }) {
    const sub = { channel, listeners: new Set([onPublication]), onResync, pos: null,
      pending: false, buffer: [] };
    if (!onResync && channel.startsWith("task:")) {
      // Task channels resync from the ack's snapshot: a synthetic "task.snapshot" publication.
      sub.onResync = (ack) => ack.snapshot && this._deliver(sub, {
        channel, offset: ack.offset, epoch: ack.epoch, type: "task.snapshot",
        data: ack.snapshot, synthetic: true });
    }
    sub.ready = new Promise((resolve, reject) => { sub.resolve = resolve; sub.reject = reject; });
    sub.ready.catch(() => {}); // a refusal is the caller's to handle, not an unhandled rejection
    this.subs.set(channel, sub);
    return sub;
  }

  _since(channel) {
    const pos = this.subs.get(channel)?.pos;
    return pos ? { since: { offset: pos.offset, epoch: pos.epoch } } : {};
  }

  /** Subscribe (or resubscribe from where we stand); live publications wait meanwhile. */
  async _sendSubscribe(sub, { fresh = false } = {}) {
    const generation = this.generation;
    sub.pending = true;
    const since = fresh ? {} : this._since(sub.channel);
    let ack;
    try {
      ack = await this.socket.timeout(ACK_TIMEOUT_MS)
        .emitWithAck("subscribe", { channel: sub.channel, ...since });
    } catch (err) {
      ack = { ok: false, error: { code: "unavailable", message: String(err) } };
    }
    if (generation !== this.generation || this.subs.get(sub.channel) !== sub) return;
    if (!ack.ok) {
      if (TRANSIENT.has(ack.error?.code)) {
        // Stay pending (live publications keep waiting in the buffer) and try again.
        setTimeout(() => {
          if (generation === this.generation && this.subs.get(sub.channel) === sub) {
            this._sendSubscribe(sub);
          }
        }, 1000);
        return;
      }
      sub.pending = false;
      sub.reject(Object.assign(new Error(ack.error?.message), { ack }));
      if (sub.pos === null && sub.channel !== this.personalChannel) {
        this.subs.delete(sub.channel); // refused outright: forget it
      }
      return;
    }
    sub.pending = false;
    const buffered = sub.buffer;
    sub.buffer = [];
    if (ack.recovered) {
      this._drain(sub, ack.publications);
    } else {
      // No continuous history (first subscribe, or lost): rebuild, then continue from here.
      sub.pos = { offset: ack.offset, epoch: ack.epoch };
      if (sub.onResync) sub.onResync(ack);
    }
    sub.resolve(ack);
    this._drain(sub, buffered);
  }

  _onPublication(p) {
    if (!p || typeof p.channel !== "string" || typeof p.offset !== "number") return;
    const sub = this.subs.get(p.channel);
    if (sub) this._drain(sub, [p]);
  }

  /** Apply publications in order, or keep them for later while a subscribe is pending. */
  _drain(sub, publications) {
    for (const p of publications) {
      if (sub.pending) sub.buffer.push(p);
      else this._apply(sub, p);
    }
  }

  /** Deliver in order, at most once; a gap or a new epoch sends us back to `subscribe`. */
  _apply(sub, p) {
    const pos = sub.pos;
    if (pos && p.epoch === pos.epoch && p.offset <= pos.offset) return; // seen already
    if (pos && (p.epoch !== pos.epoch || p.offset !== pos.offset + 1)) {
      // Missed something: ask history for it (recovered) or learn it is gone (onResync).
      // Should the gap persist (it cannot, if the server keeps its word), start afresh
      // once, then drop the stray publication rather than loop.
      sub.gaps = (sub.gaps ?? 0) + 1;
      if (sub.gaps > 2) {
        console.warn("hub: dropping a publication that does not follow", pos, p);
        return;
      }
      sub.buffer.push(p);
      this._sendSubscribe(sub, { fresh: sub.gaps === 2 });
      return;
    }
    sub.gaps = 0;
    sub.pos = { offset: p.offset, epoch: p.epoch };
    this._deliver(sub, p);
  }

  _deliver(sub, p) {
    for (const fn of sub.listeners) {
      try {
        fn(p);
      } catch (err) {
        console.error("hub: listener failed", err);
      }
    }
  }

  _dispatchPersonal(p) {
    for (const key of [p.type, "*"]) {
      for (const fn of this.personal.get(key) ?? []) {
        try {
          fn(p);
        } catch (err) {
          console.error("hub: listener failed", err);
        }
      }
    }
  }
}
