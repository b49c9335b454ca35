/* Live job events over /ws/events/ (session cookie auth).
 *
 * Protocol (downloads/consumers.py): connect, receive {"type":"hello","cursor":N}; every later message is an
 * EventMessage {id, ts, job, kind, code, data} in increasing id order. We remember the last id seen and
 * reconnect with ?after=<id> (exponential backoff, at most ~10 s), so the server replays what we missed:
 * no gap, no duplicate. The first hello (and a reconnect that had no id yet) asks the page for a REST
 * snapshot: subscribe first, then fetch, then apply events newer than the cursor. */
(function () {
  "use strict";

  const MAX_DELAY_MS = 10000;
  const PING_MS = 25000;
  const CLOSE_UNAUTHENTICATED = 4401;

  class LiveEvents {
    /**
     * @param {object} options
     * @param {string} options.path  websocket path, e.g. "/ws/events/"
     * @param {(event: object) => void} options.onEvent  called once per event, in id order
     * @param {(cursor: number) => void} [options.onSnapshotNeeded]  load the REST snapshot now
     * @param {(state: string, detail?: string) => void} [options.onState]  connecting|live|reconnecting|signed_out
     */
    constructor(options) {
      this.options = options;
      this.lastId = null;
      this.attempts = 0;
      this.socket = null;
      this.pingTimer = null;
      this.retryTimer = null;
      this.stopped = false;
    }

    url() {
      const scheme = window.location.protocol === "https:" ? "wss" : "ws";
      const after = this.lastId === null ? "" : `?after=${this.lastId}`;
      return `${scheme}://${window.location.host}${this.options.path}${after}`;
    }

    state(name, detail) {
      if (this.options.onState) this.options.onState(name, detail);
    }

    start() {
      this.stopped = false;
      this.connect();
      window.addEventListener("online", () => { if (!this.socket) this.retryNow(); });
    }

    stop() {
      this.stopped = true;
      window.clearTimeout(this.retryTimer);
      window.clearInterval(this.pingTimer);
      if (this.socket) this.socket.close(1000);
    }

    connect() {
      this.state(this.attempts ? "reconnecting" : "connecting");
      let socket;
      try {
        socket = new WebSocket(this.url());
      } catch (err) {
        this.scheduleRetry();
        return;
      }
      this.socket = socket;
      socket.addEventListener("message", (msg) => this.receive(msg));
      socket.addEventListener("close", (ev) => this.closed(ev));
    }

    receive(msg) {
      let data;
      try {
        data = JSON.parse(msg.data);
      } catch (err) {
        return;
      }
      if (data.type === "hello") {
        const needSnapshot = this.lastId === null;
        if (needSnapshot) this.lastId = data.cursor;
        this.attempts = 0;
        this.state("live");
        window.clearInterval(this.pingTimer);
        this.pingTimer = window.setInterval(() => this.ping(), PING_MS);
        if (needSnapshot && this.options.onSnapshotNeeded) this.options.onSnapshotNeeded(data.cursor);
        return;
      }
      if (data.type === "pong" || typeof data.id !== "number") return;
      if (this.lastId !== null && data.id <= this.lastId) return; // already applied
      this.lastId = data.id;
      this.options.onEvent(data);
    }

    ping() {
      if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: "ping" }));
    }

    closed(ev) {
      window.clearInterval(this.pingTimer);
      this.socket = null;
      if (this.stopped) return;
      if (ev.code === CLOSE_UNAUTHENTICATED) {
        this.state("signed_out");
        return;
      }
      this.scheduleRetry();
    }

    scheduleRetry() {
      const delay = Math.min(MAX_DELAY_MS, 500 * 2 ** this.attempts) * (0.8 + Math.random() * 0.4);
      this.attempts += 1;
      this.state("reconnecting", `${Math.ceil(delay / 1000)}`);
      window.clearTimeout(this.retryTimer);
      this.retryTimer = window.setTimeout(() => this.connect(), Math.min(delay, MAX_DELAY_MS));
    }

    retryNow() {
      window.clearTimeout(this.retryTimer);
      this.connect();
    }
  }

  /** Show the connection state on a `.live-status` element (dot + aria-live text). */
  function indicator(root) {
    const dot = root && root.querySelector(".live-dot");
    const text = root && root.querySelector(".live-text");
    const labels = {
      connecting: "Connecting…",
      live: "Live",
      reconnecting: "Reconnecting…",
      signed_out: "Signed out — reload the page to sign in again",
    };
    let last = "";
    return (state, detail) => {
      if (!root) return;
      dot.classList.toggle("on", state === "live");
      let label = labels[state] || state;
      if (state === "reconnecting" && detail) label = `Offline, retrying in ${detail} s…`;
      // Only announce real changes: retry countdowns would chatter on screen readers.
      if (state !== last || state !== "reconnecting") text.textContent = label;
      root.dataset.state = state;
      document.documentElement.dataset.live = state; // the phone bar's dot
      last = state;
    };
  }

  /** Start the page's live stream with the page's `.live-status` indicator (window.flotillaLive for tests). */
  function startLive(config, onEvent, onSnapshotNeeded) {
    const live = new LiveEvents({
      path: config.wsPath,
      onEvent,
      onSnapshotNeeded,
      onState: indicator(document.querySelector(".live-status")),
    });
    live.start();
    window.flotillaLive = live;
    return live;
  }

  window.Flotilla = window.Flotilla || {};
  window.Flotilla.LiveEvents = LiveEvents;
  window.Flotilla.liveIndicator = indicator;
  window.Flotilla.startLive = startLive;
})();
