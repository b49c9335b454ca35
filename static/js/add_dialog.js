/* The "Add download" dialog: tabs (magnet or .torrent link / batch / .torrent file), validation before submit,
 * POST to the API. The first tab's field takes a magnet (posted as `magnet`) or an http(s) link to a .torrent
 * (posted as `url`: the server fetches it under its SSRF rules, downloads/fetch.py).
 *
 * Validation here only spares a round trip; the server validates everything again (downloads/intake.py).
 * A created job is announced with a "flotilla:job-added" event; the dashboard shows it (de-duplicated with
 * the websocket's "created" event). */
(function () {
  "use strict";

  const F = window.Flotilla;
  const config = F.readJSON("page-config");
  const dialog = document.getElementById("add-dialog");
  if (!config || !dialog) return;

  const form = dialog.querySelector("form");
  const tabs = Array.from(dialog.querySelectorAll('[role="tab"]'));
  const magnetInput = document.getElementById("add-magnet");
  const batchInput = document.getElementById("add-batch");
  const batchName = document.getElementById("add-batch-name");
  const torrentInput = document.getElementById("add-torrent");
  const dropzone = dialog.querySelector(".dropzone");
  const backendSelect = document.getElementById("add-backend");
  const submit = document.getElementById("add-submit");
  const formErrors = document.getElementById("add-errors");
  let opener = null;

  // --- validation (mirrors downloads/intake.py) -------------------------------------------------

  const MAGNET_START = /^magnet:\?.*xt=urn:bt(ih|mh):/i;
  const BTIH = /^([0-9a-f]{40}|[a-z2-7]{32})$/i;
  const BTMH = /^1220[0-9a-f]{64}$/i;

  /** null when the magnet looks valid, else a sentence saying what is wrong. */
  function magnetProblem(value) {
    const text = value.trim();
    if (!text) return "Paste a magnet link.";
    if (!/^magnet:\?/i.test(text)) return "This is not a magnet link (it must start with 'magnet:?').";
    if (!MAGNET_START.test(text)) return "The magnet link has no BitTorrent info-hash (xt=urn:btih:… or urn:btmh:…).";
    const query = text.slice(text.indexOf("?") + 1);
    for (const part of query.split("&")) {
      const [key, raw = ""] = part.split("=");
      if (!/^xt(\.\d+)?$/i.test(key)) continue;
      let value;
      try {
        value = decodeURIComponent(raw);
      } catch (err) {
        return "The magnet link is not correctly encoded.";
      }
      const lower = value.toLowerCase();
      if (lower.startsWith("urn:btih:") && !BTIH.test(value.slice(9))) {
        return "The info-hash must be 40 hexadecimal or 32 base32 characters.";
      }
      if (lower.startsWith("urn:btmh:") && !BTMH.test(value.slice(9))) {
        return "A v2 info-hash (btmh) must be '1220' followed by 64 hexadecimal characters.";
      }
    }
    return null;
  }

  const WEB_LINK = /^https?:\/\//i;

  /** null when the single-link field holds a plausible magnet or http(s) link, else what is wrong. */
  function linkProblem(value) {
    const text = value.trim();
    if (!text) return "Paste a magnet link or a link to a .torrent file.";
    if (/^magnet:/i.test(text)) return magnetProblem(text);
    if (!WEB_LINK.test(text)) {
      return "This is neither a magnet link (magnet:?…) nor an http(s) link to a .torrent file.";
    }
    let url;
    try {
      url = new URL(text);
    } catch (err) {
      return "This link is not a valid web address.";
    }
    if (!url.hostname) return "The link has no host.";
    if (url.username || url.password) return "Links with a user name or password in them are not fetched.";
    return null;
  }

  /** Lines of a batch paste: [{line, text, problem}] for non-empty, non-comment lines. */
  function batchLines(text) {
    return text.split(/\r?\n/).map((raw, i) => ({ line: i + 1, text: raw.trim() }))
      .filter((l) => l.text && !l.text.startsWith("#"))
      .map((l) => ({ ...l, problem: magnetProblem(l.text) }));
  }

  function torrentProblem(file) {
    if (!file) return "Choose a .torrent file.";
    if (!/\.torrent$/i.test(file.name)) return "The file must have the .torrent extension.";
    if (file.size > config.torrentMaxBytes) {
      return `The file is ${F.formatBytes(file.size)}; the limit is ${F.formatBytes(config.torrentMaxBytes)}.`;
    }
    if (file.size === 0) return "The file is empty.";
    return null;
  }

  function showFieldError(input, id, message) {
    const el = document.getElementById(id);
    el.textContent = message || "";
    el.hidden = !message;
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function renderBatchCheck() {
    const lines = batchLines(batchInput.value);
    const bad = lines.filter((l) => l.problem);
    const list = document.getElementById("add-batch-error");
    list.replaceChildren(...bad.map((l) => {
      const li = document.createElement("li");
      li.textContent = `Line ${l.line}: ${l.problem}`;
      return li;
    }));
    list.hidden = bad.length === 0;
    const good = lines.length - bad.length;
    if (bad.length) batchInput.setAttribute("aria-invalid", "true");
    else batchInput.removeAttribute("aria-invalid");
    const summary = document.getElementById("add-batch-summary");
    summary.textContent = lines.length
      ? `${good} valid magnet${good === 1 ? "" : "s"}${bad.length ? `, ${bad.length} will be skipped` : ""}.`
      : "";
    return { lines, good };
  }

  // --- tabs (roving tabindex, arrow keys) ---------------------------------------------------------

  function currentTab() {
    return tabs.find((t) => t.getAttribute("aria-selected") === "true") || tabs[0];
  }

  function selectTab(tab, { focus = false } = {}) {
    for (const t of tabs) {
      const selected = t === tab;
      t.setAttribute("aria-selected", String(selected));
      t.tabIndex = selected ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !selected;
    }
    if (focus) tab.focus();
    clearErrors();
  }

  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (ev) => {
      const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 };
      if (!(ev.key in moves)) return;
      ev.preventDefault();
      selectTab(tabs[(moves[ev.key] + tabs.length) % tabs.length], { focus: true });
    });
  });

  // --- open / close, focus ------------------------------------------------------------------------

  function open(trigger) {
    opener = trigger || document.activeElement;
    clearErrors();
    dialog.showModal();
    const panel = document.getElementById(currentTab().getAttribute("aria-controls"));
    (panel.querySelector("input, textarea") || currentTab()).focus();
  }

  function close() {
    if (dialog.open) dialog.close();
  }

  // Return focus to whatever opened the dialog, however it closed (Esc, Cancel, success).
  dialog.addEventListener("close", () => {
    if (opener && document.contains(opener)) opener.focus();
    opener = null;
  });

  // Keep Tab inside the dialog (showModal makes the page inert, but not the browser's own UI).
  dialog.addEventListener("keydown", (ev) => {
    if (ev.key !== "Tab") return;
    const focusable = Array.from(dialog.querySelectorAll(
      'button:not([disabled]), input:not([disabled]), textarea, select, [tabindex="0"], a[href]',
    )).filter((el) => !el.closest("[hidden]") && el.tabIndex >= 0);
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (ev.shiftKey && document.activeElement === first) {
      ev.preventDefault();
      last.focus();
    } else if (!ev.shiftKey && document.activeElement === last) {
      ev.preventDefault();
      first.focus();
    }
  });

  document.querySelectorAll("[data-open-add]").forEach((button) => {
    button.addEventListener("click", () => open(button));
  });
  dialog.querySelectorAll("[data-close]").forEach((button) => button.addEventListener("click", close));

  // --- drag and drop --------------------------------------------------------------------------------

  function setTorrentFile(file) {
    const transfer = new DataTransfer();
    transfer.items.add(file);
    torrentInput.files = transfer.files;
    torrentChanged();
  }

  function torrentChanged() {
    const file = torrentInput.files[0];
    document.getElementById("add-torrent-name").textContent = file ? `${file.name} (${F.formatBytes(file.size)})` : "";
    showFieldError(torrentInput, "add-torrent-error", file ? torrentProblem(file) : "");
  }

  torrentInput.addEventListener("change", torrentChanged);
  ["dragenter", "dragover"].forEach((type) => dropzone.addEventListener(type, (ev) => {
    ev.preventDefault();
    dropzone.classList.add("dragover");
  }));
  ["dragleave", "drop"].forEach((type) => dropzone.addEventListener(type, () => dropzone.classList.remove("dragover")));
  dropzone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    const file = ev.dataTransfer && ev.dataTransfer.files[0];
    if (file) setTorrentFile(file);
  });

  // --- submit ---------------------------------------------------------------------------------------

  function clearErrors() {
    formErrors.replaceChildren();
    formErrors.hidden = true;
    showFieldError(magnetInput, "add-magnet-error", "");
    showFieldError(torrentInput, "add-torrent-error", "");
  }

  function showErrors(lines, heading) {
    const items = lines.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    });
    const ul = document.createElement("ul");
    ul.replaceChildren(...items);
    const parts = heading ? [Object.assign(document.createElement("p"), { textContent: heading }), ul] : [ul];
    formErrors.replaceChildren(...parts);
    formErrors.hidden = false;
  }

  function added(jobs) {
    for (const job of jobs) document.dispatchEvent(new CustomEvent("flotilla:job-added", { detail: job }));
    if (jobs.length === 1) F.toast(`Added ${jobs[0].name}.`);
    else if (jobs.length) F.toast(`Added ${jobs.length} downloads.`);
  }

  // Optimistic cards: the dashboard shows a placeholder the moment a request leaves, replaced by the real
  // card (or removed, with the error) when the answer comes; a fetched .torrent link can take seconds.
  let pendingSeq = 0;
  function magnetName(text) {
    try {
      return new URLSearchParams(text.slice(text.indexOf("?") + 1)).get("dn") || "";
    } catch (err) {
      return "";
    }
  }

  async function withPlaceholders(names, send) {
    const keys = names.map((name) => {
      pendingSeq += 1;
      const key = `pending-${pendingSeq}`;
      document.dispatchEvent(new CustomEvent("flotilla:job-adding", { detail: { key, name: name || "New download" } }));
      return key;
    });
    try {
      return await send();
    } finally {
      for (const key of keys) document.dispatchEvent(new CustomEvent("flotilla:job-settled", { detail: { key } }));
    }
  }

  async function submitMagnet() {
    const problem = linkProblem(magnetInput.value);
    if (problem) {
      showFieldError(magnetInput, "add-magnet-error", problem);
      magnetInput.focus();
      return false;
    }
    const value = magnetInput.value.trim();
    const source = WEB_LINK.test(value) ? { url: value } : { magnet: value };
    const name = source.magnet ? magnetName(value) : decodeURIComponent(value.split("/").pop() || "");
    const job = await withPlaceholders([name], () => F.api("POST", config.apiJobs, { ...source, backend: backendSelect.value }));
    added([job]);
    return true;
  }

  async function submitBatch() {
    const { lines, good } = renderBatchCheck();
    if (!good) {
      showErrors([lines.length ? "None of the lines is a valid magnet link." : "Paste at least one magnet link."]);
      batchInput.focus();
      return false;
    }
    // The whole text goes up so the server's line numbers match what the user sees.
    const names = lines.filter((l) => !l.problem).map((l) => magnetName(l.text));
    const result = await withPlaceholders(names, () => F.api("POST", config.apiBatches, {
      magnets: batchInput.value, backend: backendSelect.value, name: batchName.value.trim(),
    }));
    added(result.jobs || []);
    const errors = result.errors || [];
    if (!errors.length) return true;
    // Keep the rejected lines in the box so they can be fixed; say which and why.
    const original = batchInput.value.split(/\r?\n/);
    showErrors(errors.map((e) => `Line ${e.line} (${(original[e.line - 1] || "").trim().slice(0, 60)}…): ${e.detail}`),
      `Added ${(result.jobs || []).length}; these lines were not added:`);
    batchInput.value = errors.map((e) => original[e.line - 1] || "").join("\n");
    renderBatchCheck();
    return false;
  }

  async function submitTorrent() {
    const file = torrentInput.files[0];
    const problem = torrentProblem(file);
    if (problem) {
      showFieldError(torrentInput, "add-torrent-error", problem);
      torrentInput.focus();
      return false;
    }
    const body = new FormData();
    body.append("torrent", file, file.name);
    body.append("backend", backendSelect.value);
    const job = await withPlaceholders([file.name.replace(/\.torrent$/i, "")], () => F.api("POST", config.apiJobs, body));
    added([job]);
    return true;
  }

  batchInput.addEventListener("input", renderBatchCheck);
  magnetInput.addEventListener("input", () => showFieldError(magnetInput, "add-magnet-error", ""));

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors();
    const kind = currentTab().dataset.kind;
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    try {
      const done = await { magnet: submitMagnet, batch: submitBatch, torrent: submitTorrent }[kind]();
      if (done) {
        form.reset();
        renderBatchCheck();
        torrentChanged();
        close();
      }
    } catch (err) {
      showErrors(F.errorLines(err));
      F.toastError(err);
    } finally {
      submit.disabled = false;
      submit.removeAttribute("aria-busy");
    }
  });

  window.Flotilla.magnetProblem = magnetProblem;
  window.Flotilla.linkProblem = linkProblem;
})();
