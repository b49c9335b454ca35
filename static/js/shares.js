/* The job page's share links: list, create (what, expiry, optional download limit), copy, revoke. */
// Included in the page body, so it runs before the layout's flotilla.js (deferred scripts keep their order):
// start once every deferred script has run.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";

  const F = window.Flotilla;
  const root = document.getElementById("shares");
  if (!F || !root) return;

  const jobId = Number(root.dataset.jobId);
  const maxHours = Number(root.dataset.maxDays || 7) * 24;
  const form = document.getElementById("share-form");
  const list = document.getElementById("share-list");
  const empty = document.getElementById("shares-empty");
  const error = document.getElementById("share-error");
  const STATES = { active: "Active", revoked: "Revoked", expired: "Expired", exhausted: "Limit reached" };

  // Expiry choices the operator's SHARE_MAX_DAYS does not allow are removed, the longest allowed kept.
  const expiry = document.getElementById("share-expiry");
  for (const option of Array.from(expiry.options)) {
    if (Number(option.value) > maxHours) option.remove();
  }
  if (!expiry.value && expiry.options.length) expiry.selectedIndex = expiry.options.length - 1;

  function describe(share) {
    const parts = [share.file_path || "The whole download", STATES[share.state] || share.state];
    parts.push(`until ${new Date(share.expires_at).toLocaleString()}`);
    parts.push(share.max_downloads ? `${share.download_count} of ${share.max_downloads} downloads`
      : `${share.download_count} download${share.download_count === 1 ? "" : "s"}`);
    return parts.join(" · ");
  }

  function row(share) {
    const li = F.el("li", { class: "share-item", "data-share-id": share.id, "data-state": share.state });
    li.append(F.el("span", {}, describe(share)));
    if (share.url) {
      const input = F.el("input", { type: "text", readonly: true, value: share.url, class: "mono", "aria-label": "Share link" });
      const copy = F.el("button", { type: "button", class: "button small secondary" }, "Copy");
      copy.addEventListener("click", async () => {
        input.select();
        try {
          await navigator.clipboard.writeText(share.url);
          F.toast("Link copied.");
        } catch (err) {
          document.execCommand("copy");
        }
      });
      const revoke = F.el("button", { type: "button", class: "button small danger" }, "Revoke");
      revoke.addEventListener("click", async () => {
        revoke.disabled = true;
        try {
          await F.api("POST", `${root.dataset.api}${share.id}/revoke/`);
          F.announce("Link revoked.");
          await load();
        } catch (err) {
          revoke.disabled = false;
          F.toastError(err);
        }
      });
      li.append(input, copy, revoke);
    }
    return li;
  }

  async function load() {
    const shares = await F.api("GET", `${root.dataset.api}?job=${jobId}`);
    list.replaceChildren(...shares.map(row));
    empty.hidden = shares.length > 0;
  }

  // The share form's file list follows the job page's own listing (job_detail.js), never a second request.
  function fillFiles(listing) {
    const select = document.getElementById("share-file");
    const chosen = select.value;
    const files = (listing && listing.files) || [];
    select.replaceChildren(select.options[0], ...files.map((file) => F.el("option", { value: file.id }, file.path)));
    select.value = files.some((file) => String(file.id) === chosen) ? chosen : "";
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = { job: jobId };
    const file = form.elements.file.value;
    if (file) body.file = Number(file);
    body.expires_at = new Date(Date.now() + Number(expiry.value) * 3600 * 1000).toISOString();
    const limit = form.elements.max_downloads.value.trim();
    if (limit) body.max_downloads = Number(limit);
    try {
      await F.api("POST", root.dataset.api, body);
      F.announce("Share link created.");
      form.elements.max_downloads.value = "";
      await load();
    } catch (err) {
      error.textContent = F.errorLines(err).join(" ");
      error.hidden = false;
    }
  });

  load().catch(F.toastError);
  if (F.jobFiles) fillFiles(F.jobFiles);
  document.addEventListener("flotilla:job-files", (event) => fillFiles(event.detail));
});
