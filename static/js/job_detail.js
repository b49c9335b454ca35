/* A job's detail page: live header, file tree with download links, event list appended live. */
(function () {
  "use strict";

  const F = window.Flotilla;
  const config = F.readJSON("page-config");
  const header = document.getElementById("job-header");
  if (!config || !header) return;

  const jobId = config.jobId;
  let job = F.readJSON("job-state");
  let eventsSince = 0; // events applied since a REST read started (an older read must not win)
  let buffered = [];
  let snapshotDone = false;
  const eventList = document.getElementById("event-list");
  const treeRoot = document.getElementById("file-tree");
  const REFRESH_FILES_MS = 10 * 60 * 1000; // download links are signed and expire

  // --- events list -------------------------------------------------------------------------------

  function addEventItem(event) {
    if (event.kind === "progress" || eventList.querySelector(`[data-event-id="${event.id}"]`)) return;
    const li = document.createElement("li");
    li.dataset.eventId = event.id;
    const time = document.createElement("time");
    time.dateTime = event.ts;
    time.textContent = new Date(event.ts).toLocaleString();
    const kind = document.createElement("span");
    kind.className = "badge";
    kind.textContent = event.kind;
    const text = document.createElement("span");
    text.textContent = F.eventText(event, config);
    li.append(time, " ", kind, " ", text);
    const next = Array.from(eventList.children).find((c) => Number(c.dataset.eventId) > event.id);
    eventList.insertBefore(li, next || null);
    const none = document.getElementById("no-events");
    if (none) none.hidden = true;
  }

  // --- file tree ---------------------------------------------------------------------------------

  function link(href, label, text, secondary) {
    const a = document.createElement("a");
    a.className = secondary ? "button secondary" : "button";
    a.href = href;
    a.setAttribute("download", "");
    a.setAttribute("aria-label", label);
    a.textContent = text;
    return a;
  }

  function treeNode(node, files) {
    const li = document.createElement("li");
    const size = document.createElement("span");
    size.className = "muted";
    size.textContent = F.formatBytes(node.size_bytes);
    if (Array.isArray(node.children)) {
      const details = document.createElement("details");
      details.open = true;
      const summary = document.createElement("summary");
      summary.append(`📁 ${node.name} `, size);
      details.append(summary);
      if (node.zip_url) {
        details.append(link(node.zip_url, `Download folder ${node.name} as zip`, "Download folder as zip", true));
      }
      const ul = document.createElement("ul");
      node.children.forEach((child) => ul.append(treeNode(child, files)));
      details.append(ul);
      li.append(details);
      return li;
    }
    const file = files.get(node.path);
    const name = document.createElement("span");
    name.className = "file-name";
    name.textContent = node.name;
    li.className = "file";
    li.append(name, " ", size);
    if (file && !file.is_complete) {
      const pct = file.size_bytes ? Math.floor((100 * file.completed_bytes) / file.size_bytes) : 0;
      const state = document.createElement("span");
      state.className = "muted";
      state.textContent = ` ${pct}% downloaded`;
      li.append(state);
    }
    if (node.download_url && (!file || file.is_complete)) {
      li.append(" ", link(node.download_url, `Download ${node.name}`, "Download"));
    }
    if (node.id && (config.actions.delete_file || []).includes(job.status)) {
      const del = document.createElement("button");
      del.type = "button";
      del.className = "secondary";
      del.dataset.fileId = node.id;
      del.dataset.fileName = node.name;
      del.setAttribute("aria-label", `Delete ${node.name}`);
      del.textContent = "Delete";
      li.append(" ", del);
    }
    return li;
  }

  // A file's Delete button: confirm, DELETE /api/v1/files/{id}/, then the tree reloads (the "files" event
  // does that for every open page; this page reloads at once).
  treeRoot.addEventListener("click", async (ev) => {
    const button = ev.target.closest("button[data-file-id]");
    if (!button) return;
    const name = button.dataset.fileName;
    if (!window.confirm(`Delete “${name}”? The file is removed from disk; this cannot be undone.`)) return;
    const status = document.getElementById("files-status");
    button.disabled = true;
    try {
      await F.api("DELETE", config.fileUrl.replace(/\/0\/$/, `/${button.dataset.fileId}/`));
      F.announce(`${name} deleted.`);
      await loadFiles();
    } catch (err) {
      status.textContent = F.errorLines(err).join(" ");
      button.disabled = false;
    }
  });

  async function loadFiles() {
    const status = document.getElementById("files-status");
    try {
      const data = await F.api("GET", config.filesUrl);
      const files = new Map((data.files || []).map((f) => [f.path, f]));
      const ul = document.createElement("ul");
      ul.className = "file-tree";
      (data.tree || []).forEach((node) => ul.append(treeNode(node, files)));
      const parts = [];
      if (data.zip_url && (data.files || []).length > 1) {
        parts.push(link(data.zip_url, "Download all files as zip", "Download all as zip", true));
      }
      parts.push(ul);
      if (!(data.tree || []).length) {
        parts.splice(0, parts.length, Object.assign(document.createElement("p"), {
          className: "muted", textContent: "No files yet.",
        }));
      }
      treeRoot.replaceChildren(...parts);
      status.textContent = "";
    } catch (err) {
      // Keep the server-rendered list; say why there are no download buttons.
      status.textContent = `Could not load the download links: ${err.message}`;
    }
  }

  let filesTimer = null;
  function refreshFilesSoon() {
    window.clearTimeout(filesTimer);
    filesTimer = window.setTimeout(loadFiles, 300);
  }

  // --- live state --------------------------------------------------------------------------------

  function show() {
    F.fillJob(header, job, config);
  }

  function apply(event) {
    addEventItem(event);
    if (event.job !== jobId) return;
    eventsSince += 1;
    if (event.kind === "deleted") {
      header.querySelectorAll("button[data-action]").forEach((b) => { b.hidden = true; });
      document.getElementById("deleted-notice").hidden = false;
      F.announce(`${job.name} was deleted.`);
      return;
    }
    const previous = F.applyEvent(job, event, config);
    show();
    // Files change, or the job stops (its files become deletable): redraw the tree.
    const stopped = previous !== job.status && (config.actions.delete_file || []).includes(job.status);
    if (event.kind === "files" || stopped) refreshFilesSoon();
    if (event.kind === "message" && event.code === "data_removed") refreshFilesSoon();
    if (event.kind === "status" && previous !== job.status && (job.status === "completed" || job.status === "failed")) {
      F.announce(`${job.name} ${job.status === "completed" ? "completed" : `failed: ${job.reason || ""}`}`);
    }
  }

  function onEvent(event) {
    if (event.job !== jobId) return;
    if (!snapshotDone) buffered.push(event);
    else apply(event);
  }

  async function loadSnapshot() {
    snapshotDone = false;
    try {
      const fresh = await F.api("GET", `${config.apiJobs}${jobId}/`);
      job = Object.assign(job, fresh);
      show();
      (fresh.events || []).forEach(addEventItem);
    } catch (err) {
      if (err.status === 404) document.getElementById("deleted-notice").hidden = false;
    }
    snapshotDone = true;
    const pending = buffered;
    buffered = [];
    pending.forEach(apply);
  }

  header.addEventListener("click", async (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    if (action === "delete" && !window.confirm(`Delete “${job.name}” and its files?`)) return;
    const error = header.querySelector('[data-f="error"]');
    error.textContent = "";
    button.disabled = true;
    const before = eventsSince;
    try {
      const result = await F.runAction(config, action, jobId);
      if (action === "delete") {
        window.location.assign(config.dashboardUrl);
        return;
      }
      if (result && eventsSince === before) {
        job = Object.assign(job, result);
        show();
      }
    } catch (err) {
      error.textContent = F.errorLines(err).join(" ");
    } finally {
      button.disabled = false;
    }
  });

  show();
  loadFiles();
  window.setInterval(loadFiles, REFRESH_FILES_MS);
  F.startLive(config, onEvent, loadSnapshot);
})();
