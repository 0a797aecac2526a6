// The gateway's WebSocket protocol (services/stream/protocol.py) for the page: requests
// answered by id, and subscriptions that survive a reconnect. Each subscription remembers
// the last sequence it received and, after a reconnect, subscribes again with
// `since` = that sequence, so the gateway replays what was missed: no gap, and frames at or
// below it are dropped, so no duplicate either.

const RETRY_MS = [500, 1000, 2000, 5000];

export class GatewayError extends Error {
  constructor(frame) {
    super(frame.message || frame.error);
    this.code = frame.error;
    this.frame = frame;
  }
}

export class Client {
  constructor(url, token) {
    this.url = url;
    this.token = token;
    this.capabilities = [];
    this.onstate = () => {};
    this.onopen = () => {};  // after each (re)connection the gateway has answered
    this._ws = null;
    this._ids = 0;
    this._pending = new Map();   // request id -> {resolve, reject}
    this._subs = new Set();      // Subscription
    this._byServerId = new Map(); // server subscription id -> Subscription
    this._attempt = 0;
    this._ready = null;
  }

  // Connects (again) and resolves once the gateway has answered `status`.
  connect() {
    this._ready = new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this._ws = ws;
      ws.onmessage = (event) => this._frame(JSON.parse(event.data));
      ws.onopen = async () => {
        this._attempt = 0;
        try {
          if (this.token) await this.request("auth", {token: this.token});
          const status = await this.request("status");
          this.capabilities = status.capabilities || [];
          this.onstate("open");
          for (const sub of this._subs) sub._open();
          this.onopen(status);
          resolve(status);
        } catch (error) {
          this.onstate(error.code === "unauthenticated" || error.code === "invalid_token"
            ? "token" : "error", error);
          reject(error);
        }
      };
      ws.onclose = (event) => {
        for (const {reject: fail} of this._pending.values()) {
          fail(new GatewayError({error: "closed", message: "connection closed"}));
        }
        this._pending.clear();
        this._byServerId.clear();
        // Settles a first connection that never opened; the retries below go on regardless.
        reject(new GatewayError({error: "closed", message: event.reason || "connection closed"}));
        if (this._ws !== ws) return;
        if (event.code === 1008) return;  // wrong token: retrying would not help
        const wait = RETRY_MS[Math.min(this._attempt++, RETRY_MS.length - 1)];
        this.onstate("reconnecting", event.reason);
        setTimeout(() => this.connect().catch(() => {}), wait);
      };
    });
    return this._ready;
  }

  close() {
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close();
  }

  has(capability) {
    return this.capabilities.includes(capability);
  }

  request(type, fields = {}) {
    const id = ++this._ids;
    return new Promise((resolve, reject) => {
      if (!this._ws || this._ws.readyState !== WebSocket.OPEN) {
        reject(new GatewayError({error: "closed", message: "not connected"}));
        return;
      }
      this._pending.set(id, {resolve, reject});
      this._ws.send(JSON.stringify({type, id, ...fields}));
    });
  }

  // Follows changes matching `filter` ({project?, session?}); `since` resumes after a
  // sequence already seen. `onchange(frame)` gets each message / parse_error / analysis frame.
  subscribe(filter, since, onchange) {
    const sub = new Subscription(this, filter, since, onchange);
    this._subs.add(sub);
    if (this._ws && this._ws.readyState === WebSocket.OPEN) sub._open();
    return sub;
  }

  _frame(frame) {
    if (frame.subscription !== undefined && frame.sequence !== undefined) {
      const sub = this._byServerId.get(frame.subscription);
      if (sub) sub._change(frame);
      return;
    }
    const waiting = frame.id !== undefined ? this._pending.get(frame.id) : undefined;
    if (waiting) {
      this._pending.delete(frame.id);
      if (frame.type === "error") waiting.reject(new GatewayError(frame));
      else waiting.resolve(frame);
    } else if (frame.type === "store_error") {
      this.onstate(frame.message ? "store_error" : "open", frame.message);
    }
  }
}

class Subscription {
  constructor(client, filter, since, onchange) {
    this.client = client;
    this.filter = filter;
    this.last = since;  // highest sequence received; undefined: live from the next change
    this.onchange = onchange;
    this.serverId = null;
    this.closed = false;
  }

  async _open() {
    const fields = {...this.filter};
    if (this.last !== undefined && this.last !== null) fields.since = this.last;
    let reply;
    try {
      reply = await this.client.request("subscribe", fields);
    } catch (error) {
      // The gateway's head can trail the store's by a moment right after a read.
      if (error.code === "since_beyond_head" && !this.closed) {
        setTimeout(() => this._open(), 200);
      }
      return;
    }
    if (this.closed) {
      this.client.request("unsubscribe", {subscription: reply.subscription}).catch(() => {});
      return;
    }
    this.serverId = reply.subscription;
    if (this.last === undefined || this.last === null) this.last = reply.head;
    this.client._byServerId.set(reply.subscription, this);
  }

  _change(frame) {
    if (frame.sequence <= this.last) return;  // replayed twice across a reconnect
    this.last = frame.sequence;
    this.onchange(frame);
  }

  close() {
    this.closed = true;
    this.client._subs.delete(this);
    if (this.serverId !== null) {
      this.client._byServerId.delete(this.serverId);
      this.client.request("unsubscribe", {subscription: this.serverId}).catch(() => {});
    }
  }
}
