// inbox.js: a user's durable notifications (SPEC sections 4-6), kept live through the
// personal channel `user:<sub>` of a hub.js client, with REST for pages and gaps.
//
// SQL is the truth; the channel only brings news. So:
//   - `load()` / `loadMore()` read pages of `GET /api/v1/me/notifications`;
//   - `notification.created` / `notification.read` update the list and the unread count live;
//   - whenever the personal channel resynchronises (its history was lost: "hub.resync"),
//     everything newer than the newest id we hold is fetched with `since_id`, so nothing
//     sent during the gap is lost, and the unread count is taken from that response.
// Items are deduplicated by id, kept newest first, and never go from read back to unread.

const PAGE_SIZE = 20;
const GAP_PAGE_SIZE = 100; // the API's maximum
const MAX_GAP_PAGES = 50; // a bound, not an expectation: 5000 notifications in one gap
const ACK_TIMEOUT_MS = 10000;

/**
 * @typedef {{id: number, user: string, title: string, body: string|null, data: any,
 *            category: string|null, created_at: string, read_at: string|null,
 *            read: boolean}} Notification
 * @typedef {{items: Notification[], unread_count: number, next_cursor: number|null}} InboxPage
 */

/**
 * A user's inbox on top of a hub.js client (`hub.inbox`). Read `items` (newest first) and
 * `unreadCount`; `onChange` tells when either changed.
 */
export class Inbox {
  /** @param {import("./hub.js").Hub} hub */
  constructor(hub) {
    this.hub = hub;
    /** @type {Notification[]} newest first, one per id */
    this.items = [];
    /** @type {number|null} unread notifications in SQL, as last learned (null: not yet) */
    this.unreadCount = null;
    /** @type {boolean} whether older pages remain for `loadMore()` */
    this.hasMore = false;
    /** @type {boolean} whether `load()` has been called (gap filling starts then) */
    this.started = false;

    this._loaded = false; // a first page arrived
    this._byId = new Map();
    this._nextCursor = null;
    this._newestId = 0; // the newest id we know of: where a gap fill starts
    this._readIds = new Set(); // read as far as events and acks told us (read is final)
    this._allReadUpTo = 0; // "mark all read" covered every id up to this one
    this._listeners = new Set();
    this._queue = Promise.resolve(); // REST reads run one at a time, in order
    this._gapFloor = null; // a gap fill is queued: fetch what is newer than this id
    this._loadedNewest = 0; // the newest id of the latest `load()` page
    this._countStamp = 0; // bumps whenever a live event or ack sets the count

    hub.on("notification.created", (p) => this._onCreated(p.data));
    hub.on("notification.read", (p) => this._onRead(p.data));
    hub.on("hub.resync", () => this._onResync());
  }

  // -- public API ----------------------------------------------------------------

  /**
   * Call `fn(inbox)` whenever `items`, `unreadCount` or `hasMore` change.
   * @param {(inbox: Inbox) => void} fn
   * @returns {() => void} removes the listener
   */
  onChange(fn) {
    this._listeners.add(fn);
    return () => this._listeners.delete(fn);
  }

  /**
   * Fetch the newest page (merging with what live events already brought). From then on,
   * every resync of the personal channel fills the gap.
   * @param {{limit?: number}} [options]
   * @returns {Promise<Inbox>}
   */
  load({ limit = PAGE_SIZE } = {}) {
    this.started = true;
    return this._enqueue(() => this._loadFirstPage(limit));
  }

  /**
   * Fetch the next older page (after `load()`); does nothing when none remains.
   * @param {{limit?: number}} [options]
   * @returns {Promise<Inbox>}
   */
  loadMore({ limit = PAGE_SIZE } = {}) {
    return this._enqueue(async () => {
      if (this._nextCursor == null) return null;
      const page = await this._fetchPage({ limit, after_id: this._nextCursor });
      this._nextCursor = page.next_cursor;
      this.hasMore = page.next_cursor != null;
      if (!this._merge(page.items)) this._changed(); // hasMore may have changed
      return page;
    });
  }

  /**
   * Mark notifications read, through the socket (`notifications.read`) or, while it is
   * disconnected, through REST. Every tab of the user hears `notification.read`.
   * @param {number[]} ids up to 1000 of the user's notification ids
   * @throws when an id is not the user's (`not_found`) or the hub refuses
   * @returns {Promise<number>} the unread count afterwards
   */
  markRead(ids) {
    const wanted = [...new Set(ids)].filter((id) => Number.isInteger(id) && id > 0);
    if (wanted.length === 0) return Promise.resolve(this.unreadCount ?? 0);
    return this._markRead({ ids: wanted });
  }

  /**
   * Mark every notification of the user read.
   * @returns {Promise<number>} the unread count afterwards (0 unless new ones arrived)
   */
  markAllRead() {
    return this._markRead({ all: true });
  }

  // -- live events -----------------------------------------------------------------

  _onCreated(data) {
    if (!data?.notification) return;
    this._setCount(data.unread_count);
    if (!this._merge([data.notification])) this._changed(); // at least the count moved
  }

  _onRead(data) {
    if (!data) return;
    this._applyRead(data.ids ?? [], data.all === true);
    this._setCount(data.unread_count);
    this._changed();
  }

  /**
   * The personal channel lost continuity: fetch whatever is newer than what we held
   * before the gap. Live items merged after this moment (buffered behind the resubscribe)
   * may be newer than the missed ones, so the starting point is taken now; when `load()`
   * is still in flight, its page's newest id counts too.
   */
  _onResync() {
    if (!this.started) return; // load() will fetch it all anyway
    const queued = this._gapFloor !== null;
    this._gapFloor = Math.min(this._gapFloor ?? Infinity, this._newestId);
    if (queued) return;
    this._enqueue(async () => {
      const since = Math.max(this._gapFloor, this._loadedNewest);
      this._gapFloor = null;
      // A load() that failed (the hub was unreachable) is retried instead: there is no
      // "before the gap" to start from.
      await (this._loaded ? this._fillGap(since) : this._loadFirstPage());
    }).catch((err) => console.warn("hub: inbox gap fill failed", err));
  }

  async _loadFirstPage(limit = PAGE_SIZE) {
    const page = await this._fetchPage({ limit });
    this._loaded = true;
    this._loadedNewest = page.items.reduce((max, item) => Math.max(max, item.id), 0);
    this._nextCursor = page.next_cursor;
    this.hasMore = page.next_cursor != null;
    if (!this._merge(page.items)) this._changed(); // hasMore may have changed
  }

  /** Every notification newer than `since`, page by page (newest first within the gap). */
  async _fillGap(since) {
    let cursor = null;
    for (let pages = 0; pages < MAX_GAP_PAGES; pages += 1) {
      const query = { since_id: since, limit: GAP_PAGE_SIZE };
      if (cursor != null) query.after_id = cursor;
      const page = await this._fetchPage(query);
      this._merge(page.items);
      cursor = page.next_cursor;
      if (cursor == null) return;
    }
    console.warn("hub: inbox gap too large; showing the newest", MAX_GAP_PAGES * GAP_PAGE_SIZE);
  }

  // -- state -----------------------------------------------------------------------

  /** Add or update items (deduplicated by id, newest first); read is never undone. */
  _merge(incoming) {
    let changed = false;
    for (const raw of incoming) {
      const known = this._byId.get(raw.id);
      const read = Boolean(raw.read || known?.read || this._readIds.has(raw.id)
                           || raw.id <= this._allReadUpTo);
      const item = { ...known, ...raw, read, read_at: raw.read_at ?? known?.read_at ?? null };
      if (known && known.read === item.read && known.read_at === item.read_at) continue;
      this._byId.set(item.id, item);
      this._newestId = Math.max(this._newestId, item.id);
      changed = true;
    }
    if (changed) {
      this.items = [...this._byId.values()].sort((a, b) => b.id - a.id);
      this._changed();
    }
    return changed;
  }

  /**
   * Mark ids read locally; with `all`, every id up to `upTo` too. An event's ids are the
   * ones it changed, all created before the mark, so their maximum is a safe `upTo`; a
   * newer item we already hold may have been created after the mark and stays unread.
   */
  _applyRead(ids, all, upTo = Math.max(0, ...ids)) {
    for (const id of ids) this._readIds.add(id);
    if (all) this._allReadUpTo = Math.max(this._allReadUpTo, upTo);
    let changed = false;
    for (const [id, item] of this._byId) {
      if (!item.read && (this._readIds.has(id) || id <= this._allReadUpTo)) {
        this._byId.set(id, { ...item, read: true, read_at: item.read_at ?? new Date().toISOString() });
        changed = true;
      }
    }
    if (changed) this.items = [...this._byId.values()].sort((a, b) => b.id - a.id);
  }

  /** A count from a live event or an ack: the newest word on it. */
  _setCount(count) {
    if (typeof count !== "number") return;
    this._countStamp += 1;
    this.unreadCount = count;
  }

  _changed() {
    for (const fn of this._listeners) {
      try {
        fn(this);
      } catch (err) {
        console.error("hub: inbox listener failed", err);
      }
    }
  }

  // -- I/O -------------------------------------------------------------------------

  _enqueue(job) {
    const run = this._queue.then(job);
    this._queue = run.catch(() => {});
    return run.then(() => this);
  }

  /** One page; its unread count wins unless a live event set one while it was in flight. */
  async _fetchPage(query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) params.set(key, String(value));
    const stamp = this._countStamp;
    /** @type {InboxPage} */
    const page = await this._request("GET", `/api/v1/me/notifications?${params}`);
    if (stamp === this._countStamp && typeof page.unread_count === "number"
        && page.unread_count !== this.unreadCount) {
      this.unreadCount = page.unread_count;
      this._changed();
    }
    return page;
  }

  async _markRead(payload) {
    const newestBefore = this._newestId; // what "all" covers for sure: we held it already
    let count;
    if (this.hub.socket.connected) {
      let ack;
      try {
        ack = await this.hub.socket.timeout(ACK_TIMEOUT_MS)
          .emitWithAck("notifications.read", payload);
      } catch (err) {
        ack = null; // no ack in time (the connection dropped): REST below
      }
      if (ack && !ack.ok) {
        throw Object.assign(new Error(ack.error?.message || "cannot mark read"), { ack });
      }
      count = ack?.unread_count;
    }
    if (count === undefined) {
      count = (await this._request("POST", "/api/v1/me/notifications/read", payload)).unread_count;
    }
    // Confirmed by the hub: true whether or not our own notification.read event reaches us.
    this._applyRead(payload.ids ?? [], payload.all === true, newestBefore);
    this._setCount(count);
    this._changed();
    return count;
  }

  /** REST with the client's current token; one retry with a fresh token on 401. */
  async _request(method, path, body) {
    for (let attempt = 0; ; attempt += 1) {
      const response = await fetch(new URL(path, this.hub.url), {
        method,
        headers: { Authorization: `Bearer ${this.hub.token}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (response.status === 401 && attempt === 0 && (await this.hub._freshToken())) continue;
      const data = await response.json().catch(() => ({}));
      if (!response.ok) {
        throw Object.assign(new Error(data.detail || data.title || `HTTP ${response.status}`),
          { status: response.status, problem: data });
      }
      return data;
    }
  }
}
