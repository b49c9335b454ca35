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
  const storage = F.readJSON("storage-data");
  if (storage && storage.names.length) {
    mount("storage-chart", {
      kind: "bars", x: storage.names.map((_, i) => i), categories: storage.names, y: "bytes", height: 220,
      series: [{ label: "Stored", values: storage.bytes, color: "chart-2" }],
    });
  }
})();
