/* The servers page: the server table with live status (re-read every few seconds), the add/edit dialog with
 * type-specific fields, test/delete, and the aggregated torrents list with per-server errors and actions.
 * Everything goes through /api/v1/servers/ and /api/v1/torrents/; the server validates again. */
(function () {
  "use strict";

  const F = window.Flotilla;
  const config = F.readJSON("page-config");
  if (!config) return;

  const rows = document.getElementById("server-rows");
  const table = document.getElementById("server-table");
  const emptyNote = document.getElementById("servers-empty");
  const dialog = document.getElementById("server-dialog");
  const form = document.getElementById("server-form");
  const formErrors = document.getElementById("server-errors");
  const typeSelect = document.getElementById("sf-type");
  const transportSelect = document.getElementById("sf-transport");
  const filter = document.getElementById("torrent-server-filter");
  let servers = F.readJSON("server-states") || [];
  let editing = null; // the server being edited, or null when adding

  const STATUS_BADGE = { connected: "completed", error: "failed", unknown: "queued" };

  // --- the server table -------------------------------------------------------------------------

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function row(server) {
    const tr = document.createElement("tr");
    tr.id = `server-${server.id}`;
    tr.dataset.serverId = server.id;
    tr.append(cell(server.name + (server.enabled ? "" : " (disabled)")),
      cell(config.typeLabels[server.type] || server.type), cell(server.address, "mono"));
    const status = document.createElement("td");
    const badge = Object.assign(document.createElement("span"), {
      className: `badge badge-${STATUS_BADGE[server.status] || "queued"}`, textContent: server.status,
    });
    // The latency of the last good answer: shown while connected only (next to an error it would mislead).
    const latency = server.status === "connected" && server.latency_ms !== null && server.latency_ms !== undefined
      ? ` ${server.latency_ms} ms` : "";
    const note = Object.assign(document.createElement("span"), {
      className: "muted", textContent: ` ${server.status_message || ""}${latency}`,
    });
    status.append(badge, note);
    tr.append(status, cell(server.client_version || ""));
    const actions = cell("", "actions");
    for (const [action, label] of [["test", "Test"], ["edit", "Edit"], ["delete", "Delete"]]) {
      const button = Object.assign(document.createElement("button"), { type: "button", className: "secondary",
        textContent: label });
      button.dataset.action = action;
      button.setAttribute("aria-label", `${label} ${server.name}`);
      actions.append(button);
    }
    tr.append(actions);
    return tr;
  }

  function renderServers() {
    rows.replaceChildren(...servers.map(row));
    table.hidden = servers.length === 0;
    emptyNote.hidden = servers.length !== 0;
    const chosen = filter.value;
    filter.replaceChildren(new Option("All", ""), ...servers.map((s) => new Option(s.name, String(s.id))));
    filter.value = servers.some((s) => String(s.id) === chosen) ? chosen : "";
  }

  // Lists are re-read on a timer and after every action, so answers can cross: only the newest is shown.
  let serversAsked = 0;
  let torrentsAsked = 0;

  async function reloadServers() {
    const asked = ++serversAsked;
    try {
      const fresh = await F.api("GET", config.apiServers);
      if (asked !== serversAsked) return;
      servers = fresh;
      renderServers();
    } catch (err) {
      // keep what is shown; the next refresh tries again
    }
  }

  rows.addEventListener("click", async (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (!button) return;
    const id = Number(button.closest("tr").dataset.serverId);
    const server = servers.find((s) => s.id === id);
    const action = button.dataset.action;
    if (action === "edit") return openDialog(server);
    if (action === "delete" && !window.confirm(`Remove “${server.name}” from Flotilla? Its torrents stay on it; `
      + "its unfinished downloads here fail.")) return;
    button.disabled = true;
    try {
      if (action === "test") {
        const result = await F.api("POST", `${config.apiServers}${id}/test/`);
        F.announce(`${result.name}: ${result.status}${result.status_message ? `, ${result.status_message}` : ""}`);
      } else {
        await F.api("DELETE", `${config.apiServers}${id}/`);
        F.announce(`${server.name} removed.`);
      }
      await reloadServers();
      loadTorrents();
    } catch (err) {
      window.alert(F.errorLines(err).join("\n"));
    } finally {
      button.disabled = false;
    }
  });

  // --- add / edit dialog (type-specific fields) --------------------------------------------------------

  function showTypeFields() {
    const type = typeSelect.value;
    const scgi = type === "rtorrent" && transportSelect.value === "scgi";
    form.querySelectorAll("[data-only]").forEach((el) => { el.hidden = el.dataset.only !== type; });
    form.querySelectorAll("[data-only-transport]").forEach((el) => { el.hidden = !scgi; });
    form.querySelectorAll("[data-hide-transport]").forEach((el) => { el.hidden = scgi; });
    form.port.placeholder = String(config.defaultPorts[type] || "");
    form.rpc_path.placeholder = config.defaultPaths[type] || "(none)";
  }

  function openDialog(server) {
    editing = server || null;
    form.reset();
    formErrors.hidden = true;
    document.getElementById("server-dialog-title").textContent = editing ? `Edit ${editing.name}` : "Add server";
    document.getElementById("sf-password-hint").textContent = editing && editing.has_password
      ? "(stored; leave empty to keep it)" : "";
    if (editing) {
      for (const name of ["name", "type", "transport", "host", "port", "rpc_path", "socket_path", "username",
        "download_dir", "remote_path", "local_path"]) {
        form[name].value = editing[name] === null || editing[name] === undefined ? "" : editing[name];
      }
      form.use_tls.checked = editing.use_tls;
      form.enabled.checked = editing.enabled;
    }
    showTypeFields();
    dialog.showModal();
    form.name.focus();
  }

  function formData() {
    const data = {};
    for (const name of ["name", "type", "transport", "host", "rpc_path", "socket_path", "username",
      "download_dir", "remote_path", "local_path"]) data[name] = form[name].value.trim();
    data.password = form.password.value; // as typed: spaces are part of a password (the API keeps them too)
    data.port = form.port.value ? Number(form.port.value) : null;
    data.use_tls = form.use_tls.checked;
    data.enabled = form.enabled.checked;
    if (!data.rpc_path) delete data.rpc_path;
    if (editing && !data.password) delete data.password;
    return data;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formErrors.hidden = true;
    const submit = document.getElementById("server-submit");
    submit.disabled = true;
    try {
      const saved = editing
        ? await F.api("PATCH", `${config.apiServers}${editing.id}/`, formData())
        : await F.api("POST", config.apiServers, formData());
      dialog.close();
      // Say at once whether it works: test the connection right after saving.
      await F.api("POST", `${config.apiServers}${saved.id}/test/`).catch(() => null);
      await reloadServers();
      loadTorrents();
    } catch (err) {
      const list = document.createElement("ul");
      list.replaceChildren(...F.errorLines(err).map((t) => Object.assign(document.createElement("li"), { textContent: t })));
      formErrors.replaceChildren(list);
      formErrors.hidden = false;
      formErrors.scrollIntoView({ block: "nearest" }); // the dialog scrolls: the errors are below the fields
    } finally {
      submit.disabled = false;
    }
  });

  typeSelect.addEventListener("change", showTypeFields);
  transportSelect.addEventListener("change", showTypeFields);
  document.getElementById("server-add").addEventListener("click", () => openDialog(null));
  dialog.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => dialog.close()));

  // --- the torrents on every server -------------------------------------------------------------------

  const torrentRows = document.getElementById("torrent-rows");
  const torrentTable = document.getElementById("torrent-table");
  const torrentStatus = document.getElementById("torrents-status");
  const torrentErrors = document.getElementById("torrent-errors");

  function torrentRow(t) {
    const tr = document.createElement("tr");
    tr.dataset.hash = t.hash;
    tr.dataset.serverId = t.server.id;
    const name = cell("");
    if (t.job) {
      const link = Object.assign(document.createElement("a"), { textContent: t.name,
        href: config.jobUrl.replace(/\/0\/$/, `/${t.job}/`) });
      name.append(link);
    } else {
      name.append(document.createTextNode(`${t.name} `),
        Object.assign(document.createElement("span"), { className: "badge", textContent: "external" }));
    }
    tr.append(name, cell(t.server.name), cell(t.state + (t.error ? ` (${t.error})` : "")),
      cell(`${Math.round(t.progress * 100)}%`), cell(F.formatBytes(t.size)),
      cell(`${F.formatRate(t.download_rate)} / ${F.formatRate(t.upload_rate)}`), cell(t.ratio.toFixed(2)));
    const actions = cell("", "actions");
    const buttons = [[t.state === "stopped" ? "start" : "stop", t.state === "stopped" ? "Start" : "Stop"],
      ["delete", "Delete"]];
    if (t.external) buttons.push(["adopt", "Adopt"]);
    for (const [action, label] of buttons) {
      const button = Object.assign(document.createElement("button"), { type: "button", className: "secondary",
        textContent: label });
      button.dataset.action = action;
      button.setAttribute("aria-label", `${label} ${t.name}`);
      actions.append(button);
    }
    tr.append(actions);
    return tr;
  }

  async function loadTorrents() {
    const query = filter.value ? `?server_id=${encodeURIComponent(filter.value)}` : "";
    const asked = ++torrentsAsked;
    try {
      const body = await F.api("GET", `${config.apiTorrents}${query}`);
      if (asked !== torrentsAsked) return;
      torrentRows.replaceChildren(...body.results.map(torrentRow));
      torrentTable.hidden = body.results.length === 0;
      torrentStatus.textContent = body.results.length ? "" : "No torrents on these servers.";
      torrentErrors.replaceChildren(...body.errors.map((e) => {
        const li = document.createElement("li");
        li.append(Object.assign(document.createElement("span"), { className: "badge badge-failed",
          textContent: e.server.name }), document.createTextNode(` ${e.detail}`));
        return li;
      }));
    } catch (err) {
      if (asked === torrentsAsked) torrentStatus.textContent = F.errorLines(err).join(" ");
    }
  }

  torrentRows.addEventListener("click", async (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (!button) return;
    const tr = button.closest("tr");
    const action = button.dataset.action;
    const serverId = Number(tr.dataset.serverId);
    let body = { server_id: serverId };
    if (action === "delete") {
      if (!window.confirm("Remove this torrent from its server?")) return;
      body = { server_id: serverId, delete_data: window.confirm("Also delete its downloaded files on the server?") };
    }
    button.disabled = true;
    try {
      await F.api("POST", `${config.apiTorrents}${tr.dataset.hash}/${action}/`, body);
      await loadTorrents();
    } catch (err) {
      window.alert(F.errorLines(err).join("\n"));
    } finally {
      button.disabled = false;
    }
  });

  filter.addEventListener("change", loadTorrents);
  document.getElementById("torrent-refresh").addEventListener("click", loadTorrents);

  renderServers();
  loadTorrents();
  // Live status: the poller and tests update the rows; re-read them (and the torrents) every few seconds.
  window.setInterval(() => {
    if (document.hidden || dialog.open) return;
    reloadServers();
    loadTorrents();
  }, config.refreshSeconds * 1000);
})();
