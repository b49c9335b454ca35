/* "Play without downloading" jobs (streaming/ephemeral.py) are marked on the dashboard's cards and the job
 * page's header, with a Keep button that makes one an ordinary download (POST /api/v1/jobs/{id}/keep/);
 * otherwise it is removed with its data after a while with nobody watching. */
(function () {
  "use strict";

  const F = window.Flotilla;
  const script = document.currentScript;
  const keepUrl = script && script.dataset.keepUrl; // ".../jobs/0/keep/"
  if (!F || !keepUrl) return;

  const states = [].concat(F.readJSON("job-states") || [], F.readJSON("job-state") || []);

  function mark(box, job) {
    if (box.querySelector(".ephemeral-mark")) return;
    const spacer = box.querySelector(".spacer"); // marks go after the title row's spacer, beside the status
    const head = spacer ? spacer.parentNode : box;
    const badge = F.el("span", { class: "badge ephemeral-mark", title: "Removed with its data once nobody has played it "
      + "for a while (STREAM_IDLE_MINUTES), unless you keep it.", text: "Play only" });
    const keep = F.el("button", { type: "button", class: "small secondary ephemeral-mark", "data-keep": job.id,
      "aria-label": `Keep ${job.name} as a download` }, "Keep");
    keep.addEventListener("click", async () => {
      keep.disabled = true;
      try {
        await F.api("POST", keepUrl.replace(/\/0\/keep\/$/, `/${job.id}/keep/`));
        head.querySelectorAll(".ephemeral-mark").forEach((node) => node.remove());
        F.toast(`“${job.name}” is kept as a download.`);
      } catch (err) {
        keep.disabled = false;
        F.toastError(err);
      }
    });
    head.insertBefore(badge, spacer ? spacer.nextSibling : null);
    head.insertBefore(keep, badge.nextSibling);
  }

  for (const job of states) {
    if (!job || !job.ephemeral) continue;
    const box = document.querySelector(`.job-card[data-job-id="${job.id}"], #job-header[data-job-id="${job.id}"]`);
    if (box) mark(box, job);
  }
})();
