// The player page (templates/streaming/player.html): live numbers beside the <video> and a start estimate.
// TTFB, buffered seconds and stalls are measured here, in the browser; peers, rate and progress come from
// /api/v1/stream/<job>/<file>/stats/ once a second. No library, no build step.
(function () {
  "use strict";
  var video = document.getElementById("player-video");
  if (!video) return;
  var statsUrl = video.dataset.statsUrl;
  var size = Number(video.dataset.size) || 0;
  var started = performance.now();
  var stalls = 0;
  var playing = false;
  var last = null;

  function show(name, text) {
    var node = document.querySelector('[data-stat="' + name + '"]');
    if (node) node.textContent = text;
  }

  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }

  function bufferedAhead() {
    var t = video.currentTime;
    for (var i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= t + 0.05 && video.buffered.end(i) >= t) return video.buffered.end(i) - t;
    }
    return 0;
  }

  // "Ready in about N s": playback can start once the head is here and can go on without stalling once
  // the swarm delivers at least the file's bitrate; below it, wait for the part the rate cannot keep up with.
  function estimate(stats) {
    var rate = stats.download_rate;
    var left = Math.max(0, stats.size_bytes - stats.completed_bytes);
    if (stats.source === "disk" || left === 0) return 0;
    if (!rate) return null;
    var duration = isFinite(video.duration) && video.duration > 0 ? video.duration : null;
    var head = Math.min(stats.size_bytes, 2 * 1024 * 1024);
    if (!duration) return head / rate;
    var bitrate = stats.size_bytes / duration;
    if (rate >= bitrate) return head / rate;
    return Math.max(head / rate, left / rate - duration);
  }

  function render(stats) {
    last = stats;
    show("peers", String(stats.peers));
    show("rate", bytes(stats.download_rate) + "/s");
    show("progress", size ? Math.floor((100 * stats.completed_bytes) / size) + " %" : "–");
    var ready = document.getElementById("player-ready");
    if (playing) { ready.textContent = "Playing."; return; }
    var seconds = estimate(stats);
    ready.textContent = seconds === null ? "Waiting for peers…"
      : seconds < 1 ? "Ready to play." : "Ready to play in about " + Math.ceil(seconds) + " s.";
  }

  function poll() {
    fetch(statsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (stats) { if (stats) render(stats); })
      .catch(function () { /* the next tick tries again */ });
  }

  video.addEventListener("loadedmetadata", function () {
    if (last) render(last);
  });
  video.addEventListener("loadeddata", function () {
    show("ttfb", Math.round(performance.now() - started) + " ms");
  }, { once: true });
  video.addEventListener("playing", function () { playing = true; if (last) render(last); });
  video.addEventListener("waiting", function () { if (playing) { stalls++; show("stalls", String(stalls)); } });
  video.addEventListener("error", function () {
    var ready = document.getElementById("player-ready");
    ready.textContent = "The stream stopped; it will resume when you press play again.";
  });
  setInterval(function () {
    show("buffered", bufferedAhead().toFixed(1) + " s");
  }, 500);
  poll();
  setInterval(poll, 1000);
})();
