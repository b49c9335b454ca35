/* The dashboard: server-rendered job cards kept live from the websocket.
 *
 * State: `jobs` maps id → job (REST shape). Events are the ordered truth; REST reads only fill what the
 * events do not carry (a new job's size, a page loaded before we subscribed). A REST read is applied only
 * if no event for that job arrived while it was in flight, so an older read never overwrites a newer event. */
(function () {
  "use strict";

  const F = window.Flotilla;
  const config = F.readJSON("page-config");
  const list = document.getElementById("job-list");
  const template = document.getElementById("job-card-template");
  const empty = document.getElementById("empty-state");
  if (!config || !list || !template) return;

  const filter = config.filter ? new Set(config.filter) : null;
  const jobs = new Map();
  const seq = new Map(); // id → number of events applied; guards REST reads against newer events
  const fetching = new Set();
  let buffered = []; // events that arrived before the first snapshot was applied
  let snapshotDone = false;

  for (const state of F.readJSON("job-states") || []) jobs.set(state.id, state);

  const backend = config.backend || null; // e.g. "server:3": only that backend's jobs
  const matches = (job) => (!filter || filter.has(job.status)) && (!backend || job.backend === backend);
  const cardFor = (id) => list.querySelector(`.job-card[data-job-id="${id}"]`);

  const search = document.getElementById("job-search");
  const searchEmpty = document.getElementById("search-empty");

  function refreshEmpty() {
    if (empty) empty.hidden = list.querySelector(".job-card, .optimistic") !== null;
    applySearch();
  }

  /** The search box filters the cards on this page by name (as you type; no request). */
  function applySearch() {
    if (!search) return;
    const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    const cards = list.querySelectorAll(".job-card");
    for (const card of cards) {
      const name = (card.querySelector('[data-f="name"]').textContent || "").toLowerCase();
      card.hidden = !words.every((w) => name.includes(w));
      if (!card.hidden) shown += 1;
    }
    if (searchEmpty) searchEmpty.hidden = !(words.length && cards.length && !shown);
  }
  if (search) search.addEventListener("input", applySearch);

  // Placeholders while an add request is on its way (static/js/add_dialog.js).
  document.addEventListener("flotilla:job-adding", (ev) => {
    const card = document.createElement("article");
    card.className = "card optimistic";
    card.dataset.pending = ev.detail.key;
    card.setAttribute("aria-busy", "true");
    const head = document.createElement("div");
    head.className = "row job-head";
    const title = document.createElement("h3");
    title.textContent = ev.detail.name;
    const badge = document.createElement("span");
    badge.className = "badge badge-starting";
    badge.textContent = "Adding…";
    head.append(title, badge);
    const bar = document.createElement("span");
    bar.className = "skeleton line-l";
    card.append(head, bar);
    list.prepend(card);
    refreshEmpty();
  });
  document.addEventListener("flotilla:job-settled", (ev) => {
    const card = list.querySelector(`[data-pending="${ev.detail.key}"]`);
    if (card) card.remove();
    refreshEmpty();
  });

  function insertCard(job) {
    const fragment = template.content.cloneNode(true);
    const card = fragment.querySelector(".job-card");
    F.fillJob(card, job, config);
    // Newest first: before the first card with a smaller id.
    const next = Array.from(list.querySelectorAll(".job-card")).find((c) => Number(c.dataset.jobId) < job.id);
    list.insertBefore(card, next || null);
    card.animate([{ opacity: 0 }, { opacity: 1 }], { duration: 200 });
    refreshEmpty();
    // A .torrent's files are known when the job is created (no files event follows): ask once.
    if (typeof job.playable !== "boolean") checkPlayable(job.id);
    return card;
  }

  function removeCard(id) {
    const card = cardFor(id);
    if (card) {
      const hadFocus = card.contains(document.activeElement);
      card.remove();
      refreshEmpty();
      if (hadFocus) document.getElementById("add-download").focus();
    }
  }

  /** Show `job` as it is now: fill its card, add it, or take it off when the filter no longer matches. */
  function render(job) {
    const card = cardFor(job.id);
    if (!matches(job)) {
      removeCard(job.id);
    } else if (card) {
      F.fillJob(card, job, config);
    } else {
      insertCard(job);
    }
  }

  /** Apply a job read over REST (or returned by an action) unless an event overtook it. */
  function applyRead(job, seqBefore) {
    if ((seq.get(job.id) || 0) !== seqBefore && jobs.has(job.id)) {
      // Events are newer for status and numbers; still take what events never carry.
      const known = jobs.get(job.id);
      if (known.size_bytes === null || known.size_bytes === undefined) known.size_bytes = job.size_bytes;
      known.name = known.name || job.name;
      render(known);
      return;
    }
    jobs.set(job.id, Object.assign(jobs.get(job.id) || {}, job));
    render(jobs.get(job.id));
  }

  async function fetchJob(id) {
    if (fetching.has(id)) return;
    fetching.add(id);
    const before = seq.get(id) || 0;
    try {
      applyRead(await F.api("GET", `${config.apiJobs}${id}/`), before);
    } catch (err) {
      if (err.status === 404) forget(id);
    } finally {
      fetching.delete(id);
    }
  }

  /** A new card, or files registered or deleted: the card's Play shows once the job has a video or audio file. */
  async function checkPlayable(id) {
    try {
      const listing = await F.api("GET", `${config.apiJobs}${id}/files/`);
      const job = jobs.get(id);
      if (!job) return;
      job.playable = (listing.files || []).some((f) => f.play_url);
      render(job);
    } catch (err) {
      if (err.status === 404) forget(id);
    }
  }

  function forget(id) {
    jobs.delete(id);
    removeCard(id);
  }

  function onEvent(event) {
    if (!snapshotDone) {
      buffered.push(event);
      return;
    }
    apply(event);
  }

  function apply(event) {
    const id = event.job;
    if (id === null || id === undefined) return;
    seq.set(id, (seq.get(id) || 0) + 1);
    if (event.kind === "deleted") {
      forget(id);
      return;
    }
    let job = jobs.get(id);
    if (!job && event.kind === "created") {
      // The created event names the job: show it at once, then read the rest (e.g. its size) over REST.
      job = { id, name: event.data.name, backend: event.data.backend, batch: event.data.batch, status: "queued",
        progress: 0, downloaded_bytes: 0, uploaded_bytes: 0, size_bytes: null, download_rate: 0, upload_rate: 0,
        eta_seconds: null, peers: 0, seeds: 0, reason: "", reason_code: "" };
      jobs.set(id, job);
      render(job);
      fetchJob(id);
      return;
    }
    if (!job) {
      // A job we never saw (older than the page); show it if it now belongs in this view.
      if (event.data && event.data.status && (!filter || filter.has(event.data.status))) fetchJob(id);
      return;
    }
    const previous = F.applyEvent(job, event, config);
    render(job);
    if (event.kind === "files") checkPlayable(id);
    if (event.kind === "status" && previous !== job.status && (job.status === "completed" || job.status === "failed")) {
      F.announce(`${job.name} ${job.status === "completed" ? "completed" : `failed: ${job.reason || ""}`}`);
    }
  }

  /** The REST snapshot after subscribing: fills gaps since the page was rendered, then the buffered events. */
  async function loadSnapshot() {
    snapshotDone = false;
    try {
      const params = new URLSearchParams();
      if (filter) params.set("status", Array.from(filter).join(","));
      if (backend) params.set("backend", backend);
      const query = params.toString() ? `?${params}` : "";
      const page = await F.api("GET", `${config.apiJobs}${query}`);
      const results = page.results || [];
      const seen = new Set(results.map((j) => j.id));
      const oldest = page.next ? Math.min(...results.map((j) => j.id)) : 0;
      for (const job of results) {
        jobs.set(job.id, Object.assign(jobs.get(job.id) || {}, job));
        render(jobs.get(job.id));
      }
      // A card inside the snapshot's range that the snapshot lacks was deleted meanwhile.
      for (const card of list.querySelectorAll(".job-card")) {
        const id = Number(card.dataset.jobId);
        if (id >= oldest && !seen.has(id)) forget(id);
      }
    } catch (err) {
      // The page keeps its server-rendered state; events still apply.
    }
    snapshotDone = true;
    const pending = buffered;
    buffered = [];
    pending.forEach(apply);
  }

  const DONE = { pause: "Paused", resume: "Resumed", cancel: "Cancelled", retry: "Retrying", delete: "Deleted" };

  async function onAction(button) {
    const card = button.closest(".job-card");
    const id = Number(card.dataset.jobId);
    const job = jobs.get(id) || { id, name: card.querySelector('[data-f="name"]').textContent };
    const action = button.dataset.action;
    if (action === "delete" && !window.confirm(`Delete “${job.name}” and its files?`)) return;
    const error = card.querySelector('[data-f="error"]');
    error.textContent = "";
    button.disabled = true;
    const before = seq.get(id) || 0;
    try {
      const result = await F.runAction(config, action, id);
      if (action === "delete") {
        forget(id);
      } else if (result) {
        applyRead(result, before);
      }
      F.toast(`${DONE[action] || action} ${job.name}.`);
    } catch (err) {
      error.textContent = F.errorLines(err).join(" ");
      F.toastError(err);
    } finally {
      button.disabled = false;
    }
  }

  list.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (button && list.contains(button)) onAction(button);
  });

  // A job created from the add dialog: show it now if its "created" event has not arrived yet.
  document.addEventListener("flotilla:job-added", (ev) => {
    const job = ev.detail;
    if (!jobs.has(job.id)) {
      jobs.set(job.id, job);
      render(job);
    }
  });

  const backendSelect = document.getElementById("backend-filter");
  if (backendSelect) backendSelect.addEventListener("change", () => backendSelect.form.submit());

  F.startLive(config, onEvent, loadSnapshot);
})();
