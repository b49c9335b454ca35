/* Flotilla shared helpers: formatting, the REST client (session + CSRF) and filling a job's view.
 * Plain script (no build step); everything hangs off window.Flotilla. Formatting mirrors downloads/pages.py. */
(function () {
  "use strict";

  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

  function formatBytes(n) {
    if (n === null || n === undefined || Number.isNaN(Number(n))) return "?";
    let value = Number(n);
    for (const unit of UNITS) {
      if (value < 1024 || unit === "TiB") return unit === "B" ? `${Math.round(value)} B` : `${value.toFixed(1)} ${unit}`;
      value /= 1024;
    }
    return String(n);
  }

  function formatRate(n) {
    return `${formatBytes(n || 0)}/s`;
  }

  function formatEta(seconds) {
    if (seconds === null || seconds === undefined || seconds < 0) return "—";
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = s % 60;
    if (h) return `${h}h ${m}m ${rest}s`;
    return m ? `${m}m ${rest}s` : `${rest}s`;
  }

  function readJSON(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function cookie(name) {
    const match = document.cookie.split(";").map((c) => c.trim()).find((c) => c.startsWith(`${name}=`));
    return match ? decodeURIComponent(match.slice(name.length + 1)) : "";
  }

  /** An error from the API: keeps the server's {"code","detail","errors"} body. */
  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || `Request failed (${status}).`);
      this.status = status;
      this.body = body || {};
    }
  }

  /** fetch() against our own API: session cookie, CSRF header on writes, JSON in and out. */
  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    const options = { method, headers, credentials: "same-origin" };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = cookie("csrftoken");
    if (body instanceof FormData) {
      options.body = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (err) {
      throw new ApiError(0, { code: "network", detail: "The server could not be reached. Check your connection." });
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  /** Human text of an API error, including per-field / per-line details when present. */
  function errorLines(err) {
    const lines = [err.message];
    const errors = err.body && err.body.errors;
    if (Array.isArray(errors)) {
      for (const e of errors) lines.push(e.line ? `Line ${e.line}: ${e.detail}` : String(e.detail || e));
    } else if (errors && typeof errors === "object") {
      for (const [field, messages] of Object.entries(errors)) {
        const text = [].concat(messages).join(" ");
        lines.push(field === "non_field_errors" ? text : `${field}: ${text}`);
      }
    }
    return lines;
  }

  let announcer = null;
  /** Say something to screen readers (status changes that matter: completed, failed, added). */
  function announce(text) {
    announcer = announcer || document.getElementById("announcer");
    if (!announcer) return;
    announcer.textContent = "";
    window.setTimeout(() => { announcer.textContent = text; }, 50);
  }

  const ACTION_LABELS = { pause: "Pause", resume: "Resume", cancel: "Cancel", retry: "Retry", delete: "Delete" };

  function detailUrl(config, id) {
    return config.detailUrl.replace(/\/0\/$/, `/${id}/`);
  }

  function setText(root, field, text) {
    root.querySelectorAll(`[data-f="${field}"]`).forEach((el) => { el.textContent = text; });
  }

  /** Write a job's state into every [data-f] hook under `root` (a card or the detail header). */
  function fillJob(root, job, config) {
    const name = job.name || `Job ${job.id}`;
    const percent = Math.max(0, Math.min(100, Math.round((job.progress || 0) * 100)));
    const label = job.status_display || (config.statusLabels || {})[job.status] || job.status;
    root.dataset.jobId = job.id;
    root.dataset.status = job.status;
    root.querySelectorAll('[data-f="name"]').forEach((el) => {
      el.textContent = name;
      if (el.tagName === "A") el.href = detailUrl(config, job.id);
    });
    root.querySelectorAll('[data-f="badge"]').forEach((el) => {
      el.className = `badge badge-${job.status}`;
      el.textContent = label;
    });
    root.querySelectorAll('[data-f="bar"]').forEach((el) => {
      el.setAttribute("aria-valuenow", String(percent));
      el.setAttribute("aria-valuetext", `${percent}%`);
      el.setAttribute("aria-label", `Progress of ${name}`);
      const fill = el.querySelector("span");
      if (fill) fill.style.width = `${percent}%`;
    });
    setText(root, "percent", `${percent}%`);
    setText(root, "bytes", `${formatBytes(job.downloaded_bytes || 0)} / ${formatBytes(job.size_bytes)}`);
    setText(root, "down", formatRate(job.download_rate));
    setText(root, "up", formatRate(job.upload_rate));
    setText(root, "eta", formatEta(job.eta_seconds));
    setText(root, "peers", String(job.peers || 0));
    setText(root, "seeds", String(job.seeds || 0));
    setText(root, "backend", (config.backendLabels || {})[job.backend] || job.backend || "");
    root.querySelectorAll('[data-f="reason"]').forEach((el) => {
      el.textContent = job.reason || "";
      el.hidden = !job.reason;
    });
    root.querySelectorAll('[data-f="data-deleted"]').forEach((el) => { el.hidden = !job.data_deleted; });
    root.querySelectorAll("button[data-action]").forEach((button) => {
      const action = button.dataset.action;
      const allowed = (config.actions[action] || []).includes(job.status);
      button.hidden = !allowed;
      button.setAttribute("aria-label", `${ACTION_LABELS[action] || action} ${name}`);
    });
  }

  /** Merge an event's data into a job state. Returns the status before the merge. */
  function applyEvent(job, event, config) {
    const data = event.data || {};
    const previous = job.status;
    const keys = ["status", "progress", "downloaded_bytes", "uploaded_bytes", "size_bytes", "download_rate",
      "upload_rate", "eta_seconds", "peers", "seeds", "reason_code", "reason", "name", "backend"];
    for (const key of keys) {
      if (Object.prototype.hasOwnProperty.call(data, key)) job[key] = data[key];
    }
    if (event.kind === "message" && event.code === "data_removed") job.data_deleted = true;
    if (event.kind === "status" && data.reason === undefined) {
      job.reason = "";
      job.reason_code = "";
    }
    if (job.status !== previous || !job.status_display) {
      job.status_display = (config.statusLabels || {})[job.status] || job.status;
    }
    return previous;
  }

  /** Call a job action on the API; resolves with the job JSON (or null after a delete). */
  function runAction(config, action, jobId) {
    const base = `${config.apiJobs}${jobId}/`;
    if (action === "delete") return api("DELETE", base);
    if (action === "cancel") return api("POST", `${base}cancel/`, { delete_data: false });
    return api("POST", `${base}${action}/`, {});
  }

  /** One human line per event; the server writes the same (downloads.pages.event_text). */
  function eventText(event, config) {
    const data = event.data || {};
    switch (event.kind) {
      case "created": return `Added (${data.backend || "unknown backend"}).`;
      case "status": {
        const label = (config.statusLabels || {})[event.code] || event.code;
        return `${label}. ${data.reason || ""}`.trim();
      }
      case "files":
        if (event.code === "deleted") return `Deleted file ${data.path || ""}.`;
        return `${data.count || 0} file${data.count === 1 ? "" : "s"} registered.`;
      case "deleted": return "Deleted.";
      default: return data.reason || event.code;
    }
  }

  window.Flotilla = {
    formatBytes, formatRate, formatEta, readJSON, cookie, api, ApiError, errorLines, announce,
    fillJob, applyEvent, runAction, eventText, detailUrl, ACTION_LABELS,
  };
})();
