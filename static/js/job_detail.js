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

  // --- file browser: collapsible tree, breadcrumbs for deep folders, per-file actions ---------------

  const crumbs = document.getElementById("file-breadcrumbs");
  const OPEN_DEPTH = 2; // deeper folders start collapsed; "Open" makes one the root of the view
  let listing = null; // the last files API body
  let cwd = ""; // the folder shown as root ("" = the whole job)
  const toggled = new Set(); // folders the user opened or closed by hand (kept across reloads)

  function link(href, label, text, secondary, iconName) {
    const a = document.createElement("a");
    a.className = secondary ? "button small secondary" : "button small";
    a.href = href;
    a.setAttribute("download", "");
    a.setAttribute("aria-label", label);
    a.dataset.focusKey = `${text}:${label}`;
    if (iconName) a.append(F.icon(iconName));
    a.append(text);
    return a;
  }

  function percentOf(done, size) {
    return size ? Math.floor((100 * done) / size) : 100;
  }

  function completion(done, size, name) {
    const pct = percentOf(done, size);
    const wrap = document.createElement("span");
    wrap.className = "muted";
    if (pct >= 100) {
      wrap.textContent = "Complete";
      return wrap;
    }
    const bar = document.createElement("span");
    bar.className = "progress file-progress";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.setAttribute("aria-label", `${name} downloaded`);
    const fill = document.createElement("span");
    fill.style.width = `${pct}%`;
    bar.append(fill);
    wrap.style.display = "inline-flex";
    wrap.style.alignItems = "center";
    wrap.style.gap = ".4rem";
    wrap.append(bar, `${pct}% downloaded`);
    return wrap;
  }

  function folderDone(node, files) {
    if (!Array.isArray(node.children)) {
      const f = files.get(node.path);
      return f ? (f.is_complete ? f.size_bytes : f.completed_bytes || 0) : 0;
    }
    return node.children.reduce((sum, child) => sum + folderDone(child, files), 0);
  }

  function folderNode(node, files, depth) {
    const li = document.createElement("li");
    li.className = "dir";
    const details = document.createElement("details");
    const defaultOpen = depth < OPEN_DEPTH;
    details.open = toggled.has(node.path) ? !defaultOpen : defaultOpen;
    details.addEventListener("toggle", () => {
      if (details.open === defaultOpen) toggled.delete(node.path);
      else toggled.add(node.path);
    });
    const summary = document.createElement("summary");
    summary.className = "entry";
    summary.dataset.focusKey = `dir:${node.path}`;
    const name = document.createElement("span");
    name.className = "file-name";
    name.textContent = node.name;
    const size = document.createElement("span");
    size.className = "muted";
    size.textContent = F.formatBytes(node.size_bytes);
    summary.append(F.icon("chevron", "chevron"), F.icon("folder", "type-folder"), name, size,
      completion(folderDone(node, files), node.size_bytes, node.name));
    details.append(summary);
    const actions = document.createElement("div");
    actions.className = "row entry";
    actions.style.gap = ".4rem";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "small secondary";
    open.dataset.openFolder = node.path;
    open.dataset.focusKey = `open:${node.path}`;
    open.setAttribute("aria-label", `Open folder ${node.name}`);
    open.textContent = "Open";
    actions.append(open);
    if (node.zip_url) {
      actions.append(link(node.zip_url, `Download folder ${node.name} as zip`, "Zip", true, "zip"));
    }
    const ul = document.createElement("ul");
    node.children.forEach((child) => ul.append(treeNode(child, files, depth + 1)));
    details.append(actions, ul);
    li.append(details);
    return li;
  }

  function treeNode(node, files, depth) {
    if (Array.isArray(node.children)) return folderNode(node, files, depth);
    const li = document.createElement("li");
    li.className = "file";
    const row = document.createElement("div");
    row.className = "entry";
    const file = files.get(node.path);
    const kind = F.fileKind(file && file.mime_type, node.name);
    const name = document.createElement("span");
    name.className = "file-name";
    name.textContent = node.name;
    const size = document.createElement("span");
    size.className = "muted";
    size.textContent = F.formatBytes(node.size_bytes);
    const icon = F.icon(kind, `type-${kind}`);
    icon.dataset.kind = kind;
    row.append(icon, name, size);
    if (file) row.append(completion(file.is_complete ? file.size_bytes : file.completed_bytes || 0, file.size_bytes, node.name));
    if (file && file.play_url) {
      // Plays while the download goes on (the player page streams it), so not only once complete.
      const play = link(file.play_url, `Play ${node.name}`, "Play", false, "play");
      play.removeAttribute("download");
      row.append(play);
    }
    if (node.download_url && (!file || file.is_complete)) {
      row.append(link(node.download_url, `Download ${node.name}`, "Download", false, "download"));
    }
    if (node.id && (config.actions.delete_file || []).includes(job.status)) {
      const del = document.createElement("button");
      del.type = "button";
      del.className = "small danger";
      del.dataset.fileId = node.id;
      del.dataset.fileName = node.name;
      del.dataset.focusKey = `del:${node.id}`;
      del.setAttribute("aria-label", `Delete ${node.name}`);
      del.append(F.icon("trash"), "Delete");
      row.append(del);
    }
    li.append(row);
    return li;
  }

  /** The folder at `path` in the tree (null when it is gone, e.g. its files were deleted). */
  function findFolder(nodes, path) {
    if (!path) return { children: nodes, path: "", name: "" };
    for (const node of nodes) {
      if (!Array.isArray(node.children)) continue;
      if (node.path === path) return node;
      if (path.startsWith(`${node.path}/`)) return findFolder(node.children, path);
    }
    return null;
  }

  function renderCrumbs() {
    crumbs.hidden = !cwd;
    if (!cwd) return crumbs.replaceChildren();
    const ol = document.createElement("ol");
    const parts = cwd.split("/");
    const items = [{ label: "All files", path: "" }, ...parts.map((part, i) => ({ label: part, path: parts.slice(0, i + 1).join("/") }))];
    items.forEach((item, i) => {
      const li = document.createElement("li");
      if (i === items.length - 1) {
        const here = document.createElement("span");
        here.setAttribute("aria-current", "location");
        here.textContent = item.label;
        li.append(here);
      } else {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.openFolder = item.path;
        button.dataset.focusKey = `crumb:${item.path}`;
        button.textContent = item.label;
        li.append(button);
      }
      ol.append(li);
    });
    crumbs.replaceChildren(ol);
  }

  // The tree is redrawn on every reload (links are signed and expire); keep focus on the same control.
  function renderFiles(focusKey) {
    const data = listing;
    const files = new Map((data.files || []).map((f) => [f.path, f]));
    let folder = findFolder(data.tree || [], cwd);
    if (!folder) {
      cwd = "";
      folder = findFolder(data.tree || [], "");
    }
    const ul = document.createElement("ul");
    ul.className = "file-tree";
    folder.children.forEach((node) => ul.append(treeNode(node, files, cwd ? cwd.split("/").length : 0)));
    const parts = [];
    if (data.zip_url && (data.files || []).length > 1 && !cwd) {
      parts.push(link(data.zip_url, "Download all files as zip", "Download all files as zip", true, "zip"));
    }
    parts.push(ul);
    if (!(data.tree || []).length) {
      parts.splice(0, parts.length, Object.assign(document.createElement("p"), { className: "muted", textContent: "No files yet." }));
    }
    treeRoot.replaceChildren(...parts);
    treeRoot.removeAttribute("aria-busy");
    renderCrumbs();
    drawPieceMap(data.files || []);
    if (focusKey) {
      const target = document.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
      if (target) target.focus();
    }
  }

  function showFolder(path) {
    cwd = path;
    renderFiles();
    // Focus the new view's first entry (or the heading when the folder is empty), so keyboard users follow.
    const first = treeRoot.querySelector("summary, .entry a, .entry button") || document.getElementById("files-title");
    if (first) first.focus();
  }

  document.getElementById("files-title").tabIndex = -1;
  [treeRoot, crumbs].forEach((el) => el.addEventListener("click", (ev) => {
    const opener = ev.target.closest("button[data-open-folder]");
    if (opener) showFolder(opener.dataset.openFolder);
  }));

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
      F.toast(`Deleted ${name}.`);
      await loadFiles();
    } catch (err) {
      status.textContent = F.errorLines(err).join(" ");
      F.toastError(err);
      button.disabled = false;
    }
  });

  async function loadFiles() {
    const status = document.getElementById("files-status");
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.focusKey : null;
    try {
      listing = await F.api("GET", config.filesUrl);
      // Other parts of the page (the share form's file list) take this listing instead of asking again.
      F.jobFiles = listing;
      document.dispatchEvent(new CustomEvent("flotilla:job-files", { detail: listing }));
      renderFiles(focused);
      job.playable = (listing.files || []).some((f) => f.play_url); // the header's Play follows the files
      show();
      status.textContent = "";
    } catch (err) {
      // Keep the server-rendered list; say why there are no download buttons.
      treeRoot.removeAttribute("aria-busy");
      treeRoot.querySelectorAll(".file-skeleton").forEach((el) => el.remove());
      treeRoot.querySelectorAll(".no-js-files").forEach((el) => { el.style.display = "table"; });
      status.textContent = `Could not load the download links: ${err.message}`;
    }
  }

  // --- piece map: 64 blocks over the job's bytes, filled from its files' completion ----------------

  const PIECE_BLOCKS = 64;
  const pieceMap = document.getElementById("piece-map");

  function drawPieceMap(files) {
    if (!pieceMap) return;
    const total = files.reduce((sum, f) => sum + (f.size_bytes || 0), 0);
    // Each file's completed bytes are counted from its start: the engine fetches in order within a file
    // window, and the files API carries no bitfield; a block is done when every byte under it is.
    const spans = [];
    let offset = 0;
    for (const f of files) {
      const done = f.is_complete ? f.size_bytes : Math.min(f.completed_bytes || 0, f.size_bytes);
      spans.push([offset, offset + done]);
      offset += f.size_bytes || 0;
    }
    let complete = 0;
    const cells = [];
    for (let i = 0; i < PIECE_BLOCKS; i += 1) {
      const a = total ? (total * i) / PIECE_BLOCKS : 0;
      const b = total ? (total * (i + 1)) / PIECE_BLOCKS : 0;
      let covered = 0;
      for (const [s0, s1] of spans) covered += Math.max(0, Math.min(b, s1) - Math.max(a, s0));
      const cell = document.createElement("span");
      const full = total > 0 && covered >= (b - a) - 0.5;
      cell.dataset.done = full ? "1" : covered > 0 ? "p" : "0";
      if (full) complete += 1;
      cells.push(cell);
    }
    pieceMap.replaceChildren(...cells);
    pieceMap.dataset.complete = String(complete);
    pieceMap.setAttribute("aria-label", total
      ? `Piece map: ${complete} of ${PIECE_BLOCKS} blocks complete`
      : "Piece map: no files yet");
  }

  // --- speed sparkline (progress events) ------------------------------------------------------------

  const speed = F.readJSON("speed-samples") || { t: [], down: [], up: [] };
  const MAX_SAMPLES = 300;
  const speedEl = document.getElementById("speed-chart");
  let speedChart = null;

  function drawSpeed() {
    if (!speedEl || !speed.t.length) return;
    document.getElementById("speed-empty").hidden = true;
    if (!speedChart) {
      speedChart = F.chart(speedEl, {
        kind: "line", x: speed.t, y: "rate", height: 140,
        series: [{ label: "Download", values: speed.down, color: "chart-1" }, { label: "Upload", values: speed.up, color: "chart-2" }],
      });
    } else {
      speedChart.update(speed.t, [speed.down, speed.up]);
    }
    const last = speed.t.length - 1;
    speedEl.setAttribute("aria-label", `Speed over time: now ${F.formatRate(speed.down[last])} down, ${F.formatRate(speed.up[last])} up`);
  }

  function addSpeedSample(event) {
    const data = event.data || {};
    if (!("download_rate" in data)) return;
    speed.t.push(new Date(event.ts).getTime() / 1000);
    speed.down.push(data.download_rate || 0);
    speed.up.push(data.upload_rate || 0);
    if (speed.t.length > MAX_SAMPLES) ["t", "down", "up"].forEach((k) => speed[k].shift());
    drawSpeed();
  }

  let filesTimer = null;
  let lastFilesLoad = 0;
  const FILES_WHILE_RUNNING_MS = 5000;
  function refreshFilesSoon() {
    window.clearTimeout(filesTimer);
    lastFilesLoad = Date.now();
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
      header.querySelectorAll('button[data-action], [data-f="play"]').forEach((b) => { b.hidden = true; });
      document.getElementById("deleted-notice").hidden = false;
      F.announce(`${job.name} was deleted.`);
      return;
    }
    const previous = F.applyEvent(job, event, config);
    show();
    if (event.kind === "progress" || event.kind === "status") addSpeedSample(event);
    // While bytes arrive, the piece map and per-file completion follow (at most every few seconds).
    if (event.kind === "progress" && Date.now() - lastFilesLoad > FILES_WHILE_RUNNING_MS) refreshFilesSoon();
    // Files change, or the job stops (its files become deletable): redraw the tree.
    const stopped = previous !== job.status && (config.actions.delete_file || []).includes(job.status);
    if (event.kind === "files" || stopped) refreshFilesSoon();
    if (event.kind === "message" && event.code === "data_removed") refreshFilesSoon();
    if (event.kind === "status" && previous !== job.status && (job.status === "completed" || job.status === "failed")) {
      F.announce(`${job.name} ${job.status === "completed" ? "completed" : `failed: ${job.reason || ""}`}`);
    }
    // Panels of other apps on this page (tracker alerts) follow the same events.
    document.dispatchEvent(new CustomEvent("flotilla:job-event", { detail: event }));
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

  const DONE = { pause: "Paused", resume: "Resumed", cancel: "Cancelled", retry: "Retrying", delete: "Deleted" };

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
      F.toast(`${DONE[action] || action} ${job.name}.`);
    } catch (err) {
      error.textContent = F.errorLines(err).join(" ");
      F.toastError(err);
    } finally {
      button.disabled = false;
    }
  });

  show();
  drawSpeed();
  loadFiles();
  window.setInterval(loadFiles, REFRESH_FILES_MS);
  F.startLive(config, onEvent, loadSnapshot);
})();
