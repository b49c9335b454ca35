/* The admin health page's chart: how many jobs are in each status now (figures.jobs_by_status). */
(function () {
  "use strict";

  const el = document.getElementById("health-status-chart");
  const source = document.getElementById("health-jobs");
  if (!el || !source || !window.Flotilla.chart) return;
  const counts = JSON.parse(source.textContent);
  const names = Object.keys(counts);
  if (!names.length) {
    el.textContent = "No jobs yet.";
    return;
  }
  window.Flotilla.chart(el, {
    kind: "bars", x: names.map((_, i) => i), categories: names, y: "count", height: 200,
    series: [{ label: "Jobs", values: names.map((n) => counts[n]), color: "chart-1" }],
  });
})();
