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

  /** A DOM element from a tag, attributes ("text" sets textContent; null/false attributes are left out) and
   * children. Everything user-supplied goes in as text, never as markup. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
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

  // --- toasts: every action says how it went (success, or the API error's `detail`) ----------------

  const TOAST_ICONS = { success: "check", error: "alert", info: "info" };
  const TOAST_MS = { success: 5000, info: 5000, error: 10000 };

  /** An inline SVG icon from the page's sprite (templates/partials/icons.html); never an emoji. */
  function icon(name, extra) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", extra ? `icon ${extra}` : "icon");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const use = document.createElementNS(ns, "use");
    use.setAttribute("href", `#i-${name}`);
    svg.append(use);
    return svg;
  }

  /** Show a toast; kind is "success", "error" or "info". Errors are alerts, the rest polite status. */
  function toast(text, kind = "success") {
    const box = document.getElementById("toasts");
    if (!box) return null;
    const item = document.createElement("li");
    item.className = `toast ${kind}`;
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    const message = document.createElement("p");
    message.textContent = text;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "ghost";
    close.setAttribute("aria-label", "Dismiss notification");
    close.append(icon("close"));
    close.addEventListener("click", () => item.remove());
    item.append(icon(TOAST_ICONS[kind] || "info"), message, close);
    box.append(item);
    let timer = window.setTimeout(() => item.remove(), TOAST_MS[kind] || 5000);
    // Keep a toast while the pointer or focus is on it (WCAG 2.2.1: enough time to read).
    item.addEventListener("mouseenter", () => window.clearTimeout(timer));
    item.addEventListener("focusin", () => window.clearTimeout(timer));
    item.addEventListener("mouseleave", () => { timer = window.setTimeout(() => item.remove(), 2000); });
    return item;
  }

  /** The toast of a failed request: the API's own sentence (`detail`), with its per-line details. */
  function toastError(err) {
    return toast(err instanceof ApiError ? errorLines(err).join(" ") : String(err.message || err), "error");
  }

  // --- file types (by mime, then by extension) ------------------------------------------------------

  const SUBTITLE_EXT = /\.(srt|vtt|ass|ssa|sub|idx)$/i;
  const ARCHIVE_EXT = /\.(zip|rar|7z|tar|gz|bz2|xz|zst|iso)$/i;

  /** "video", "audio", "image", "archive", "subtitle", "text" or "file": picks the file's icon. */
  function fileKind(mime, name) {
    const type = (mime || "").toLowerCase();
    if (SUBTITLE_EXT.test(name || "") || type === "text/vtt" || type.includes("subrip")) return "subtitle";
    if (type.startsWith("video/")) return "video";
    if (type.startsWith("audio/")) return "audio";
    if (type.startsWith("image/")) return "image";
    if (ARCHIVE_EXT.test(name || "") || /(zip|rar|7z|tar|gzip|compressed|iso9660)/.test(type)) return "archive";
    if (type.startsWith("text/") || type === "application/pdf" || type === "application/json") return "text";
    return "file";
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
    root.querySelectorAll('[data-f="play"]').forEach((el) => {
      // `playable` comes with the page's first state and from the files API (dashboard.js); REST reads of
      // the job do not carry it, so an unknown value keeps what the link shows.
      if (typeof job.playable === "boolean") el.hidden = !job.playable || Boolean(job.data_deleted);
      if (config.playUrl) el.href = config.playUrl.replace(/\/0\/$/, `/${job.id}/`);
      el.setAttribute("aria-label", `Play ${name}`);
    });
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
      default: return data.reason || data.text || event.code;
    }
  }

  window.Flotilla = {
    formatBytes, formatRate, formatEta, readJSON, cookie, el, api, ApiError, errorLines, announce,
    fillJob, applyEvent, runAction, eventText, detailUrl, ACTION_LABELS, toast, toastError, icon, fileKind,
  };
})();
