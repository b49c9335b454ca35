/* The player page (templates/streaming/player.html): a start estimate and live numbers beside the <video>.
 *
 * Measured here, in the browser: time to first byte and to first frame, how long the last seek took, seconds
 * buffered ahead of the playhead, stalls. From /api/v1/stream/<job>/<file>/stats/ (polled): peers, download
 * rate, bytes downloaded and where the bytes come from. The file's bitrate is its size over the duration the
 * browser reads from the file's header; the estimate compares it with the swarm's rate. */
(function () {
  "use strict";

  const F = window.Flotilla;
  const media = document.getElementById("player-media");
  if (!media) return;

  const POLL_MS = 1000; // while the file downloads
  const POLL_DONE_MS = 5000; // once it is all on disk (peers and rate still change while it seeds)
  const HEAD_BYTES = 2 * 1024 * 1024; // what a player reads before its first frame, about (header + first GOPs)
  const START_SECONDS = 4; // media a player buffers before it starts
  const RETRIES = 3; // automatic reloads after a network error while the download goes on

  const src = media.getAttribute("src");
  const statsUrl = media.dataset.statsUrl;
  const size = Number(media.dataset.size) || 0;
  const ready = document.getElementById("player-ready");
  const errorBox = document.getElementById("player-error");
  const errorText = document.getElementById("player-error-text");
  const retryButton = document.getElementById("player-retry");

  let loadStart = performance.now();
  let seekStart = null;
  let stalls = 0;
  let started = false; // the first `playing` happened
  let stats = null; // the last stats body
  let retries = 0;
  let resumeAt = null; // position to restore after a reload
  let pollTimer = null;

  function show(name, text) {
    const node = document.querySelector(`[data-stat="${name}"]`);
    if (node && node.textContent !== text) node.textContent = text;
  }

  function ms(value) {
    return value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(1)} s`;
  }

  function duration() {
    return Number.isFinite(media.duration) && media.duration > 0 ? media.duration : null;
  }

  /** Bytes per second the file needs to play without pausing (null until the duration is known). */
  function bitrate() {
    const d = duration();
    return d && size ? size / d : null;
  }

  function bufferedAhead() {
    const t = media.currentTime;
    for (let i = 0; i < media.buffered.length; i++) {
      if (media.buffered.start(i) <= t + 0.05 && media.buffered.end(i) >= t) return media.buffered.end(i) - t;
    }
    return 0;
  }

  /** Seconds until playback can start and go on without stalling; 0 = now, null = no rate to judge by.
   * It can start once the first seconds are here; it goes on without a stall if what is left arrives before
   * the playhead needs it: with rate r below bitrate b, wait until left/r − duration. */
  function estimate() {
    if (!stats) return null;
    const left = Math.max(0, stats.size_bytes - stats.completed_bytes);
    if (stats.source === "disk" || left === 0) return 0;
    const rate = stats.download_rate;
    if (!rate) return null;
    const b = bitrate();
    const startBytes = Math.min(left, Math.max(HEAD_BYTES, (b || 0) * START_SECONDS));
    const startup = startBytes / rate;
    if (!b || rate >= b) return startup;
    return Math.max(startup, left / rate - duration());
  }

  function roughly(seconds) {
    if (seconds < 10) return `${Math.ceil(seconds)} s`;
    if (seconds < 60) return `${Math.ceil(seconds / 5) * 5} s`;
    return `${Math.ceil(seconds / 60)} min`;
  }

  // States worth announcing to a screen reader, once each time they are reached; the others (an estimate
  // counting down, playing slower or faster than the download) change too often to announce.
  const ANNOUNCED = new Set(["ready", "playing", "stopped", "retrying"]);
  let announced = null;

  /** The line under the player. */
  function say(state, text) {
    if (ready.textContent !== text) ready.textContent = text;
    if (ready.dataset.state === state) return;
    ready.dataset.state = state;
    if (ANNOUNCED.has(state) && announced !== state) {
      announced = state;
      F.announce(text);
    }
  }

  function fail(text) {
    say("error", "Playback stopped.");
    errorText.textContent = text;
    errorBox.hidden = false;
  }

  function renderState() {
    if (!errorBox.hidden) return;
    const b = bitrate();
    const downloading = stats && stats.source !== "disk" && stats.completed_bytes < stats.size_bytes;
    if (started && !media.paused) {
      if (media.readyState < media.HAVE_FUTURE_DATA && !media.seeking) {
        say("stalled", "Waiting for data…");
      } else if (downloading && b && stats.download_rate < b) {
        say("playing-slow", `Playing. The download (${F.formatRate(stats.download_rate)}) is slower than the `
          + `${media.tagName === "AUDIO" ? "audio" : "video"} (${F.formatRate(b)}): it may pause to catch up.`);
      } else {
        say("playing", "Playing.");
      }
      return;
    }
    if (media.readyState >= media.HAVE_FUTURE_DATA) {
      const seconds = estimate();
      if (seconds === null || seconds < 1) say("ready", "Ready to play.");
      else say("estimate", `Can start now; to play through without pausing, wait about ${roughly(seconds)}.`);
      return;
    }
    if (stats && stats.source === "none") {
      say("stopped", "This download is not running, and the file is not complete: it cannot be played now.");
      return;
    }
    const seconds = estimate();
    if (seconds === null) say("waiting-peers", stats && !stats.peers ? "Waiting for peers…" : "Estimating when playback can start…");
    else if (seconds < 1) say("ready", "Ready to play.");
    else say("estimate", `Ready to play in about ${roughly(seconds)}.`);
  }

  function renderStats() {
    if (!stats) return;
    show("peers", `${stats.peers} (${stats.seeds} seeds)`);
    show("rate", F.formatRate(stats.download_rate));
    show("progress", size ? `${Math.floor((100 * stats.completed_bytes) / size)} % of ${F.formatBytes(size)}` : "–");
    const sources = { disk: "the finished file", engine: "the download, as it arrives",
      backend: "the download's backend", none: "nowhere yet" };
    show("source", sources[stats.source] || stats.source);
  }

  async function poll() {
    pollTimer = null;
    if (!document.hidden) {
      try {
        const response = await fetch(statsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.status === 404) {
          fail("This download is gone (deleted, or no longer yours).");
          return; // nothing more to poll
        }
        if (response.ok) {
          stats = await response.json();
          renderStats();
          renderState();
        }
      } catch (err) {
        // Offline for a moment: the next tick tries again.
      }
    }
    const done = stats && stats.source === "disk";
    pollTimer = window.setTimeout(poll, done ? POLL_DONE_MS : POLL_MS);
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && pollTimer !== null) {
      window.clearTimeout(pollTimer);
      poll();
    }
  });

  // --- what the browser measures -------------------------------------------------------------------------

  /** Time to first byte: Resource Timing when the browser reports the media request, else the first
   * `progress` event (fired once bytes have arrived). */
  function firstByte() {
    const entry = performance.getEntriesByType("resource").find((e) => e.name.endsWith(src) && e.responseStart > 0);
    return entry ? entry.responseStart - entry.startTime : performance.now() - loadStart;
  }

  media.addEventListener("loadstart", () => { loadStart = performance.now(); });
  media.addEventListener("progress", () => {
    if (document.querySelector('[data-stat="ttfb"]').textContent === "–") show("ttfb", ms(firstByte()));
  });
  media.addEventListener("loadedmetadata", () => {
    const b = bitrate();
    if (b) show("bitrate", `${F.formatRate(b)} (${((b * 8) / 1e6).toFixed(1)} Mbit/s)`);
    if (resumeAt !== null) {
      media.currentTime = resumeAt;
      resumeAt = null;
    }
    renderState();
  });
  media.addEventListener("loadeddata", () => {
    if (document.querySelector('[data-stat="first-frame"]').textContent === "–") {
      show("first-frame", ms(performance.now() - loadStart));
    }
    if (document.querySelector('[data-stat="ttfb"]').textContent === "–") show("ttfb", ms(firstByte()));
    renderState();
  });
  media.addEventListener("canplay", renderState);
  media.addEventListener("pause", renderState);
  media.addEventListener("seeking", () => { seekStart = performance.now(); });
  media.addEventListener("seeked", () => {
    if (seekStart !== null) show("seek", ms(performance.now() - seekStart));
    seekStart = null;
    renderState();
  });
  media.addEventListener("playing", () => {
    started = true;
    retries = 0;
    renderState();
  });
  media.addEventListener("waiting", () => {
    // A pause for data while playing; the wait a seek causes is counted as the seek's time instead.
    if (started && !media.seeking) {
      stalls += 1;
      show("stalls", String(stalls));
    }
    renderState();
  });

  // --- errors: a cut stream reloads where it was (the download goes on); else the user decides ------------

  const ERRORS = {
    1: "Playback was aborted.",
    2: "The stream was interrupted.",
    3: "The browser could not decode this file.",
    4: "The browser cannot play this file, or the stream is not available right now.",
  };

  function reload() {
    errorBox.hidden = true;
    resumeAt = media.currentTime || null;
    const wasPlaying = started;
    media.src = src;
    media.load();
    if (wasPlaying) media.play().catch(() => { /* autoplay refused: the user presses play */ });
    renderState();
  }

  media.addEventListener("error", () => {
    const code = media.error ? media.error.code : 0;
    const base = ERRORS[code] || "The stream stopped.";
    const downloading = stats && (stats.source === "engine" || stats.source === "backend");
    if (downloading && code !== 3 && retries < RETRIES) {
      retries += 1;
      const wait = 1000 * 2 ** (retries - 1);
      say("retrying", `${base} Trying again in ${wait / 1000} s…`);
      window.setTimeout(reload, wait);
      return;
    }
    fail(base);
    explain();
  });

  /** The media element does not say why a request failed; ask the stream for one byte and show its `detail`
   * (e.g. the files were removed, too many streams, the piece did not arrive in time). */
  async function explain() {
    try {
      const response = await fetch(src, { credentials: "same-origin", headers: { Range: "bytes=0-0" } });
      if (response.ok) return;
      const body = await response.json();
      if (body && body.detail && !errorBox.hidden) errorText.textContent = body.detail;
    } catch (err) {
      // No better reason to give: the generic one stays.
    }
  }
  retryButton.addEventListener("click", () => {
    retries = 0;
    reload();
    media.focus();
  });

  window.setInterval(() => {
    show("buffered", `${bufferedAhead().toFixed(1)} s`);
    if (started) renderState();
  }, 500);
  poll();
})();
