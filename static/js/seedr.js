/* The Seedr panel (templates/seedr/panel.html): connect by device code (or password), add magnets, batches
 * and .torrent files, the queue table and the account widget. The page renders its first state on the server;
 * this keeps it live: any job event re-reads /api/v1/seedr/status/ (debounced), the websocket only accelerates.
 * Text from the server is always set with textContent, never as HTML. */
(function () {
  "use strict";

  const F = window.Flotilla;
  const config = F.readJSON("seedr-config");
  const $ = (selector) => document.querySelector(selector);
  const BUSY = new Set(["starting", "fetching_metadata", "transferring", "waiting"]);
  let devicePoll = null;
  let refreshTimer = null;

  function endpoint(name) {
    return `${config.api}${name}/`;
  }

  function showErrors(target, err) {
    target.hidden = false;
    target.textContent = F.errorLines(err).join(" ");
  }

  function clearErrors(target) {
    target.hidden = true;
    target.textContent = "";
  }

  // --- the queue ------------------------------------------------------------------------------------

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => node.setAttribute(key, value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function actionButton(action, id, label, secondary) {
    const button = el("button", { type: "button", "data-action": action, "data-id": String(id) }, label);
    if (secondary) button.className = "secondary";
    return button;
  }

  function row(item) {
    const tr = el("tr", { "data-job": String(item.id), "data-status": item.status });
    tr.appendChild(el("td", {}, item.position ? String(item.position) : ""));
    const name = el("td");
    name.appendChild(el("a", { href: `/jobs/${item.id}/` }, item.name));
    tr.appendChild(name);
    const state = el("td");
    const badge = el("span", { class: `badge badge-${item.status}` });
    if (BUSY.has(item.status)) badge.appendChild(el("span", { class: "spinner", "aria-hidden": "true" }));
    badge.appendChild(document.createTextNode(` ${item.status_display}`));
    state.appendChild(badge);
    if (item.reason) state.appendChild(el("div", { class: "reason muted" }, item.reason));
    tr.appendChild(state);
    const percent = Math.round((item.progress || 0) * 100);
    const bar = el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
                            "aria-valuenow": String(percent), "aria-label": `Progress of ${item.name}` });
    bar.appendChild(el("span", { style: `width: ${percent}%` }));
    const progress = el("td");
    progress.appendChild(bar);
    tr.appendChild(progress);
    tr.appendChild(el("td", {}, item.size_bytes ? F.formatBytes(item.size_bytes) : "?"));
    const actions = el("td", { class: "job-actions" });
    if (item.status === "failed" || item.status === "cancelled") {
      actions.append(actionButton("retry", item.id, "Retry"), " ", actionButton("clear", item.id, "Clear", true));
    } else if (item.status === "completed") {
      actions.append(actionButton("clear", item.id, "Clear", true));
    } else {
      if (item.status === "paused") actions.append(actionButton("start", item.id, "Start"), " ");
      actions.append(actionButton("cancel", item.id, "Cancel", true));
    }
    tr.appendChild(actions);
    return tr;
  }

  function fillRows(tbody, items, emptyText) {
    tbody.replaceChildren();
    if (!items.length) {
      const tr = el("tr", { class: "empty-row" });
      tr.appendChild(el("td", { colspan: "6", class: "muted" }, emptyText));
      tbody.appendChild(tr);
      return;
    }
    items.forEach((item) => tbody.appendChild(row(item)));
  }

  function render(snapshot) {
    fillRows($("#seedr-queue-rows"), snapshot.queue, "Nothing queued.");
    fillRows($("#seedr-done-rows"), snapshot.done, "Nothing finished yet.");
    const batches = $("#seedr-batches");
    batches.replaceChildren();
    snapshot.batches.forEach((b) => {
      const current = b.current ? `item ${b.current} running, ` : "";
      batches.appendChild(el("li", { "data-batch": String(b.id) },
        `${b.name || "Batch"} ${b.id}: ${current}${b.done} of ${b.total} done, ${b.remaining} remaining, ${b.failed} failed`));
    });
    $('[data-quota="plan"]').textContent = snapshot.quota.plan_storage_left_display;
    $('[data-quota="seedr"]').textContent = snapshot.quota.seedr_space_left_display;
    renderAccount(snapshot.account);
    renderNotices(snapshot);
  }

  function renderAccount(account) {
    $("#seedr-connected").hidden = !account.connected;
    $("#seedr-connect").hidden = account.connected;
    $("#seedr-account").hidden = !account.connected;
    $('#seedr-connected [data-field="account_name"]').textContent = account.account_name || "your Seedr account";
    $('#seedr-connected [data-field="method"]').textContent =
      account.method === "password" ? "email and password" : "device code";
  }

  function renderNotices(snapshot) {
    const notices = $("#seedr-notices");
    notices.replaceChildren();
    if (snapshot.account.state === "expired") {
      notices.appendChild(el("p", { class: "msg msg-error", "data-notice": "expired" },
        "Your Seedr login expired. Connect again below; waiting downloads continue where they stopped."));
    }
    const items = snapshot.queue.concat(snapshot.done);
    if (items.some((i) => i.reason_code === "seedr_quota_exceeded" || i.reason_code === "quota_exceeded")) {
      notices.appendChild(el("p", { class: "msg msg-error", "data-notice": "quota" },
        "A download did not fit: your Seedr storage or your plan's quota is full. Free space, then retry it."));
    }
  }

  async function refreshStatus() {
    try {
      render(await F.api("GET", endpoint("status")));
    } catch (err) {
      F.announce(F.errorLines(err).join(" "));
    }
  }

  function refreshSoon() {
    window.clearTimeout(refreshTimer);
    refreshTimer = window.setTimeout(refreshStatus, 250);
  }

  // --- the account widget --------------------------------------------------------------------------

  function meter(name, used, max) {
    const root = document.querySelector(`[data-meter="${name}"]`);
    const percent = max ? Math.min(100, Math.round((used / max) * 100)) : 0;
    root.querySelector("[data-meter-text]").textContent =
      max ? `${F.formatBytes(used)} of ${F.formatBytes(max)}` : `${F.formatBytes(used)} (no limit)`;
    const bar = root.querySelector(".progress");
    bar.setAttribute("aria-valuenow", String(percent));
    bar.firstElementChild.style.width = `${percent}%`;
  }

  function renderInsights(data) {
    const insights = data.insights || {};
    if (insights.memory) {
      meter("space", insights.memory.space_used, insights.memory.space_max);
      meter("bandwidth", insights.memory.bandwidth_used, insights.memory.bandwidth_max);
    }
    if (insights.account) $('[data-insight="tier"]').textContent = insights.account.package_name || "unknown";
    if (insights.devices) {
      $('[data-insight="devices"]').textContent =
        insights.devices.map((d) => d.client_name).join(", ") || "none";
    }
  }

  async function loadAccount(refresh) {
    try {
      const data = await F.api(refresh ? "POST" : "GET", endpoint(refresh ? "account/refresh" : "account"));
      // Never fetched yet (just connected, before the worker's first refresh): ask Seedr now.
      if (!refresh && data.connected && !data.insights_at) return loadAccount(true);
      renderInsights(data);
    } catch (err) {
      F.announce(F.errorLines(err).join(" "));
    }
  }

  // --- connecting ------------------------------------------------------------------------------------

  async function startDevice() {
    window.clearTimeout(devicePoll);
    try {
      const login = await F.api("POST", endpoint("device/start"));
      $("#seedr-device").hidden = false;
      $("#seedr-user-code").textContent = login.user_code;
      $("#seedr-verification").href = login.verification_url;
      $("#seedr-device-state").textContent = "Waiting for you to approve the code on Seedr…";
      devicePoll = window.setTimeout(pollDevice, login.interval * 1000);
    } catch (err) {
      $("#seedr-device").hidden = false;
      $("#seedr-device-state").textContent = F.errorLines(err).join(" ");
    }
  }

  async function pollDevice() {
    try {
      const result = await F.api("POST", endpoint("device/poll"));
      if (result.state === "connected") {
        $("#seedr-device").hidden = true;
        F.announce("Seedr connected.");
        refreshStatus();
        loadAccount(true);
        return;
      }
      devicePoll = window.setTimeout(pollDevice, result.interval * 1000);
    } catch (err) {
      $("#seedr-device-state").textContent = `${F.errorLines(err).join(" ")} Press “Connect with a code” to try again.`;
    }
  }

  async function passwordLogin(event) {
    event.preventDefault();
    const form = event.target;
    const errors = form.querySelector("[data-errors]");
    clearErrors(errors);
    if (!form.username.value || !form.password.value) {
      showErrors(errors, new F.ApiError(400, { detail: "Give your Seedr email and password." }));
      return;
    }
    try {
      await F.api("POST", endpoint("login"), { username: form.username.value, password: form.password.value });
      form.password.value = "";
      refreshStatus();
      loadAccount(true);
    } catch (err) {
      showErrors(errors, err);
    }
  }

  async function disconnect() {
    await F.api("POST", endpoint("logout"));
    refreshStatus();
  }

  // --- adding ----------------------------------------------------------------------------------------

  const addErrors = () => $("#seedr-add-errors");

  async function submit(promise, form) {
    clearErrors(addErrors());
    try {
      const result = await promise;
      form.reset();
      refreshSoon();
      const skipped = (result && result.errors) || [];
      if (skipped.length) {  // a batch keeps its valid lines and says which ones it left out
        showErrors(addErrors(), new F.ApiError(400, { detail: "Some lines were left out.", errors: skipped }));
      }
    } catch (err) {
      showErrors(addErrors(), err);
    }
  }

  function refuse(text) {
    showErrors(addErrors(), new F.ApiError(400, { detail: text }));
  }

  function addMagnet(event) {
    event.preventDefault();
    const magnet = event.target.magnet.value.trim();
    if (!magnet.startsWith("magnet:?")) return refuse("A magnet link starts with “magnet:?”.");
    submit(F.api("POST", endpoint("add"), { magnet }), event.target);
  }

  function addBatch(event) {
    event.preventDefault();
    const form = event.target;
    const lines = form.magnets.value.split("\n").map((l) => l.trim()).filter(Boolean);
    if (!lines.length) return refuse("Paste at least one magnet link.");
    if (lines.length > config.batchMaxLines) return refuse(`At most ${config.batchMaxLines} lines per batch.`);
    submit(F.api("POST", endpoint("batch-add"), {
      magnets: form.magnets.value, name: form.name.value, auto_start: form.auto_start.checked,
    }), form);
  }

  function addTorrent(event) {
    event.preventDefault();
    const file = event.target.torrent.files[0];
    if (!file) return refuse("Choose a .torrent file.");
    if (!file.name.toLowerCase().endsWith(".torrent")) return refuse("That is not a .torrent file.");
    if (file.size > config.torrentMaxBytes) return refuse("The .torrent file is too large.");
    const body = new FormData();
    body.append("torrent", file);
    submit(F.api("POST", endpoint("add"), body), event.target);
  }

  async function rowAction(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    button.disabled = true;
    try {
      await F.api("POST", endpoint(button.dataset.action), { ids: [Number(button.dataset.id)] });
    } catch (err) {
      F.announce(F.errorLines(err).join(" "));
    }
    refreshStatus();
  }

  // --- wiring ----------------------------------------------------------------------------------------

  $("#seedr-device-start").addEventListener("click", startDevice);
  $("#seedr-login").addEventListener("submit", passwordLogin);
  $("#seedr-disconnect").addEventListener("click", disconnect);
  $("#seedr-account-refresh").addEventListener("click", () => loadAccount(true));
  $("#seedr-add-magnet").addEventListener("submit", addMagnet);
  $("#seedr-add-batch").addEventListener("submit", addBatch);
  $("#seedr-add-torrent").addEventListener("submit", addTorrent);
  $("#seedr-clear").addEventListener("click", async () => {
    await F.api("POST", endpoint("clear"), {});
    refreshStatus();
  });
  document.querySelectorAll("table.seedr-queue").forEach((t) => t.addEventListener("click", rowAction));
  if (!$("#seedr-account").hidden) loadAccount(false);
  F.startLive(config, refreshSoon, refreshStatus);
})();
