/* The Indexers page: the user's indexers and the operator's shared ones (read-only) with their health; add and
 * edit in a dialog (each kind shows its own credential fields, which are write-only: the page only ever knows
 * whether one is set), Test (capabilities, account, latency), enable/disable and delete, over /api/v1/indexers/. */
(function () {
  "use strict";

  const { el } = window.Flotilla;

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
  }

  function start(F) {
    const config = F.readJSON("indexers-config");
    const rows = document.getElementById("indexer-rows");
    const wrap = document.getElementById("indexer-wrap");
    const empty = document.getElementById("indexers-empty");
    const dialog = document.getElementById("indexer-dialog");
    const form = document.getElementById("indexer-form");
    const errors = document.getElementById("indexer-errors");
    const kindSelect = document.getElementById("if-kind");
    let indexers = F.readJSON("indexer-states") || [];
    let editing = null; // the indexer being edited, null when adding
    const testReports = new Map(); // id → the last Test's line, kept across re-renders

    const url = (id, tail = "") => `${config.apiIndexers}${id}/${tail}`;
    const kindLabel = (kind) => (config.kinds[kind] || {}).label || kind;

    function statusCell(ix) {
      const cell = el("td", { "data-f": "status" });
      let badge;
      if (!ix.enabled) badge = el("span", { class: "badge badge-cancelled", text: "Disabled" });
      else if (ix.in_backoff) badge = el("span", { class: "badge badge-paused", text: "Backed off" });
      else if (ix.consecutive_failures) badge = el("span", { class: "badge badge-failed", text: "Failing" });
      else badge = el("span", { class: "badge badge-completed", text: "Enabled" });
      cell.append(badge);
      if (ix.in_backoff && ix.backoff_until) {
        cell.append(el("div", { class: "muted small", text: `until ${when(ix.backoff_until)}` }));
      }
      return cell;
    }

    function errorCell(ix) {
      const cell = el("td", { "data-f": "last-error" });
      if (!ix.last_error) {
        cell.textContent = "—";
        return cell;
      }
      cell.append(el("span", { text: ix.health || ix.last_error }));
      if (ix.last_failure_at) cell.append(el("div", { class: "muted small", text: when(ix.last_failure_at) }));
      return cell;
    }

    function actions(ix) {
      const cell = el("td", { class: "actions" });
      cell.append(el("button", { type: "button", class: "secondary small", "data-action": "test",
        "aria-label": `Test ${ix.name}` }, "Test"));
      if (ix.shared) {
        cell.append(el("span", { class: "muted small", text: " Shared by the operator (read-only)" }));
        return cell;
      }
      cell.append(
        el("button", { type: "button", class: "secondary small", "data-action": "edit", "aria-haspopup": "dialog",
          "aria-label": `Edit ${ix.name}` }, "Edit"),
        el("button", { type: "button", class: "secondary small", "data-action": "toggle",
          "aria-label": `${ix.enabled ? "Disable" : "Enable"} ${ix.name}` }, ix.enabled ? "Disable" : "Enable"),
        el("button", { type: "button", class: "danger small", "data-action": "delete",
          "aria-label": `Delete ${ix.name}` }, "Delete"));
      return cell;
    }

    function row(ix) {
      const name = el("td", { "data-f": "name" }, el("strong", { text: ix.name }), " ",
        el("span", { class: "muted", text: kindLabel(ix.kind) }));
      if (ix.shared) name.append(" ", el("span", { class: "badge", text: "Shared" }));
      const report = testReports.get(ix.id);
      if (report) name.append(el("div", { class: `test-result ${report.ok ? "ok" : "error"}`, text: report.text }));
      const latency = ix.avg_response_ms === null || ix.avg_response_ms === undefined
        ? "—" : `${Math.round(ix.avg_response_ms)} ms`;
      return el("tr", { "data-indexer-id": ix.id },
        name, statusCell(ix),
        el("td", { class: "num", "data-f": "latency", text: latency }),
        el("td", { class: "num", "data-f": "success", text: `${Math.round((ix.success_rate || 0) * 100)} %` }),
        errorCell(ix), actions(ix));
    }

    function render() {
      rows.replaceChildren(...indexers.map(row));
      wrap.hidden = indexers.length === 0;
      empty.hidden = indexers.length !== 0;
    }

    function replace(ix) {
      const at = indexers.findIndex((i) => i.id === ix.id);
      if (at >= 0) indexers[at] = ix;
      else indexers.push(ix);
      render();
    }

    async function reload(id) {
      replace(await F.api("GET", url(id)));
    }

    // --- the dialog -------------------------------------------------------------------------------

    function showKindFields() {
      const kind = config.kinds[kindSelect.value] || {};
      form.querySelectorAll("[data-kind]").forEach((box) => {
        const mine = box.dataset.kind === kindSelect.value;
        box.hidden = !mine;
        box.querySelector("input").disabled = !mine;
        const set = Boolean(editing && editing.kind === box.dataset.kind
          && editing.credential_names.includes(box.dataset.secret));
        box.querySelector("[data-secret-state]").textContent = set ? "(set; leave blank to keep)" : "(not set)";
      });
      const urlInput = form.elements.url;
      urlInput.placeholder = kind.default_url || "https://jackett.example/api/v2.0/indexers/…/results/torznab/api";
      document.getElementById("if-url-hint").textContent = kind.default_url ? "(empty: the default)" : "(the feed's API URL)";
      if (!editing) form.elements.privacy.value = kind.privacy || "public";
    }

    function openDialog(ix) {
      editing = ix || null;
      form.reset();
      errors.hidden = true;
      errors.replaceChildren();
      document.getElementById("indexer-dialog-title").textContent = ix ? `Edit ${ix.name}` : "Add indexer";
      if (ix) {
        kindSelect.value = ix.kind;
        form.elements.name.value = ix.name;
        form.elements.url.value = ix.url;
        form.elements.priority.value = ix.priority;
        form.elements.timeout.value = ix.timeout;
        form.elements.request_interval.value = ix.request_interval;
        form.elements.privacy.value = ix.privacy;
        form.elements.categories.value = (ix.categories || []).join(", ");
        form.elements.enabled.checked = ix.enabled;
      }
      form.querySelectorAll("[data-kind] input").forEach((input) => { input.value = ""; });
      showKindFields();
      dialog.showModal();
      form.elements.name.focus();
    }

    function payload() {
      const data = {
        kind: kindSelect.value,
        name: form.elements.name.value.trim(),
        priority: Number(form.elements.priority.value),
        timeout: Number(form.elements.timeout.value),
        request_interval: Number(form.elements.request_interval.value),
        privacy: form.elements.privacy.value,
        categories: form.elements.categories.value.split(/[\s,]+/).filter(Boolean).map(Number),
        enabled: form.elements.enabled.checked,
      };
      const address = form.elements.url.value.trim();
      if (address || editing) data.url = address;
      const credentials = {};
      form.querySelectorAll(`[data-kind="${kindSelect.value}"] input`).forEach((input) => {
        if (input.value) credentials[input.closest("[data-secret]").dataset.secret] = input.value;
      });
      if (Object.keys(credentials).length) data.credentials = credentials;
      return data;
    }

    kindSelect.addEventListener("change", showKindFields);
    document.getElementById("indexer-add").addEventListener("click", () => openDialog(null));
    document.querySelectorAll("[data-open-indexer]").forEach((b) => b.addEventListener("click", () => openDialog(null)));
    dialog.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => dialog.close()));

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const submit = document.getElementById("indexer-submit");
      submit.disabled = true;
      try {
        const saved = editing
          ? await F.api("PATCH", url(editing.id), payload())
          : await F.api("POST", config.apiIndexers, payload());
        dialog.close();
        replace(saved);
        F.toast(editing ? `${saved.name} was saved.` : `${saved.name} was added. Test it to see what it can do.`);
      } catch (err) {
        errors.replaceChildren(...F.errorLines(err).map((line) => el("p", { text: line })));
        errors.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });

    // --- row actions ------------------------------------------------------------------------------

    function describe(report) {
      if (!report.ok) return `Test failed: ${report.detail}`;
      const caps = report.capabilities || {};
      const types = Object.keys(caps.searching || {}).join(", ") || "search";
      const cats = (caps.categories || []).length;
      const account = report.account || {};
      const standing = Object.entries(account).filter(([, v]) => ["string", "number"].includes(typeof v))
        .slice(0, 4).map(([k, v]) => `${k} ${v}`).join(", ");
      return `Works: ${Math.round(report.latency_ms)} ms; searches ${types}; ${cats} categor${cats === 1 ? "y" : "ies"}`
        + (standing ? `; account: ${standing}` : "") + ".";
    }

    async function test(ix, button) {
      button.disabled = true;
      button.textContent = "Testing…";
      try {
        const report = await F.api("POST", url(ix.id, "test/"));
        testReports.set(ix.id, { ok: report.ok, text: describe(report) });
        if (report.ok) F.toast(`${ix.name} works (${Math.round(report.latency_ms)} ms).`);
        else F.toastError(new F.ApiError(502, { code: report.code, detail: `${ix.name}: ${report.detail}` }));
        await reload(ix.id);
      } catch (err) {
        F.toastError(err);
        render();
      }
    }

    async function toggle(ix) {
      try {
        const saved = await F.api("PATCH", url(ix.id), { enabled: !ix.enabled });
        replace(saved);
        F.toast(`${saved.name} is ${saved.enabled ? "enabled" : "disabled"}.`);
      } catch (err) {
        F.toastError(err);
      }
    }

    async function remove(ix) {
      if (!window.confirm(`Delete the indexer ${ix.name}? Its stored search results go with it.`)) return;
      try {
        await F.api("DELETE", url(ix.id));
        indexers = indexers.filter((i) => i.id !== ix.id);
        testReports.delete(ix.id);
        render();
        F.toast(`${ix.name} was deleted.`);
      } catch (err) {
        F.toastError(err);
      }
    }

    rows.addEventListener("click", (ev) => {
      const button = ev.target.closest("button[data-action]");
      if (!button || button.disabled) return;
      const id = Number(button.closest("tr").dataset.indexerId);
      const ix = indexers.find((i) => i.id === id);
      if (!ix) return;
      const action = button.dataset.action;
      if (action === "test") test(ix, button);
      else if (action === "edit") openDialog(ix);
      else if (action === "toggle") toggle(ix);
      else if (action === "delete") remove(ix);
    });

    render();
    if (new URLSearchParams(window.location.search).get("add")) openDialog(null);
  }

  start(window.Flotilla);
})();
