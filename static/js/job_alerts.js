/* The job page's tracker alerts (templates/audiobooks/_job_alerts.html): the list is asked for again whenever
   the job's live events (job_detail.js's "flotilla:job-event") say one of its alerts was raised or cleared. */
(function () {
  "use strict";

  const panel = document.getElementById("tracker-alerts");
  if (!panel) return;
  const list = panel.querySelector("ul");
  let chain = Promise.resolve(); // one redraw at a time, in the order the events came

  async function redraw() {
    const response = await fetch(panel.dataset.url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!response.ok || response.redirected) return; // signed out meanwhile: the login page is not a list
    list.innerHTML = await response.text(); // rendered and escaped by the server
    panel.hidden = list.querySelector("li") === null;
  }

  document.addEventListener("flotilla:job-event", (ev) => {
    const event = ev.detail;
    if (event.kind !== "message" || !String(event.code).startsWith("tracker_alert")) return;
    if (event.data && event.data.text && window.Flotilla) window.Flotilla.announce(event.data.text);
    chain = chain.then(redraw).catch(() => {}); // a failed read waits for the next event or a reload
  });
})();
