/* The usage page's charts: transfer per day this month (bars, two series) and storage by download. */
(function () {
  "use strict";

  const F = window.Flotilla;

  function mount(id, spec) {
    const el = document.getElementById(id);
    if (!el) return;
    el.replaceChildren(); // the skeleton goes when the chart comes
    F.chart(el, spec);
  }

  const transfer = F.readJSON("transfer-data");
  if (transfer) {
    mount("transfer-chart", {
      kind: "bars", x: transfer.t, y: "bytes", height: 220,
      series: [
        { label: "Downloaded", values: transfer.downloaded, color: "chart-1" },
        { label: "Delivered", values: transfer.delivered, color: "chart-3" },
      ],
    });
  }
  // Storage by download comes from the spine (downloads.pages.storage_chart): a skeleton until it arrives.
  const storageEl = document.getElementById("storage-chart");
  if (storageEl) {
    F.api("GET", storageEl.dataset.src).then((storage) => {
      if (!storage.names.length) {
        storageEl.hidden = true;
        document.getElementById("storage-empty").hidden = false;
        return;
      }
      storageEl.setAttribute("aria-label", `Storage held by each download: ${storage.names.map(
        (name, i) => `${name} ${F.formatBytes(storage.bytes[i])}`).join(", ")}`);
      mount("storage-chart", {
        kind: "bars", x: storage.names.map((_, i) => i), categories: storage.names, y: "bytes", height: 220,
        series: [{ label: "Stored", values: storage.bytes, color: "chart-2" }],
      });
    }).catch((err) => {
      storageEl.replaceChildren();
      document.getElementById("storage-error").textContent = `The storage chart could not load: ${err.message}`;
      F.toastError(err);
    });
  }
})();
