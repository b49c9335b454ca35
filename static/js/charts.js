/* Charts on top of uPlot (static/vendor/uplot/): colours from the design tokens, width from the container,
 * redrawn when the theme changes. Flotilla.chart(el, spec) → { update(x, series), destroy() }.
 *
 * spec: { kind: "line" | "bars", x: number[] (unix seconds, or indexes for categories),
 *         series: [{ label, values, color: "chart-1" }], y: "bytes" | "rate" | "count",
 *         categories?: string[] (bars over named things), height?: number, legend?: boolean } */
(function () {
  "use strict";

  const F = window.Flotilla = window.Flotilla || {}; // the admin's health page loads charts.js alone
  const FALLBACK = { "chart-1": "#6366f1", "chart-2": "#a855f7", "chart-3": "#10b981", "chart-grid": "rgba(128,128,128,.25)", muted: "#888" };

  function token(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(`--${name}`).trim() || FALLBACK[name] || "#888";
  }

  function yFormat(kind) {
    if (kind === "bytes" && F.formatBytes) return (v) => F.formatBytes(v);
    if (kind === "rate" && F.formatRate) return (v) => F.formatRate(v);
    return (v) => String(v);
  }

  function options(el, spec) {
    const fmt = yFormat(spec.y);
    const text = token("muted");
    const grid = { stroke: token("chart-grid"), width: 1 };
    // Bars of several series stand side by side: each takes a share of the slot, aligned left or right.
    const n = spec.series.length;
    const bars = (i) => {
      if (spec.kind !== "bars") return undefined;
      const align = n === 1 ? 0 : i === 0 ? -1 : 1;
      return window.uPlot.paths.bars({ size: [n === 1 ? 0.7 : 0.35, 40], align });
    };
    const xAxis = { stroke: text, grid: { show: false }, ticks: { stroke: grid.stroke } };
    if (spec.categories) {
      xAxis.values = (u, splits) => splits.map((i) => {
        const name = spec.categories[i];
        return name === undefined ? "" : name.length > 14 ? `${name.slice(0, 13)}…` : name;
      });
      xAxis.splits = () => spec.categories.map((_, i) => i);
    }
    return {
      width: Math.max(200, el.clientWidth || 300),
      height: spec.height || 200,
      legend: { show: spec.legend !== false },
      cursor: { y: false, points: { show: spec.kind !== "bars" } },
      scales: {
        x: spec.categories ? { time: false, range: [-0.5, spec.categories.length - 0.5] } : { time: true },
        y: { range: (u, min, max) => [0, Math.max(max, 1) * 1.1] },
      },
      axes: [xAxis, { stroke: text, grid, ticks: { stroke: grid.stroke }, size: 80, values: (u, vals) => vals.map(fmt) }],
      series: [
        spec.categories ? { label: "", value: (u, i) => (i === null ? "" : spec.categories[i]) } : {},
        ...spec.series.map((s, i) => ({
          label: s.label,
          stroke: token(s.color || "chart-1"),
          fill: spec.kind === "bars" ? token(s.color || "chart-1") : `${token(s.color || "chart-1")}33`,
          width: spec.kind === "bars" ? 0 : 2,
          paths: bars(i),
          points: { show: false },
          value: (u, v) => (v === null || v === undefined ? "—" : fmt(v)),
        })),
      ],
    };
  }

  function chart(el, spec) {
    if (!window.uPlot || !el) return null;
    let current = spec;
    let plot = null;
    const data = () => [current.x, ...current.series.map((s) => s.values)];
    function draw() {
      if (plot) plot.destroy();
      plot = new window.uPlot(options(el, current), data(), el);
      el.dataset.points = String(current.x.length);
    }
    draw();
    const resize = new ResizeObserver(() => {
      if (plot && el.clientWidth && Math.abs(plot.width - el.clientWidth) > 4) plot.setSize({ width: el.clientWidth, height: plot.height });
    });
    resize.observe(el);
    document.addEventListener("flotilla:theme", draw); // colours come from the tokens of the new theme
    return {
      update(x, series) {
        current = { ...current, x, series: current.series.map((s, i) => ({ ...s, values: series[i] })) };
        plot.setData(data());
        el.dataset.points = String(x.length);
      },
      destroy() {
        resize.disconnect();
        document.removeEventListener("flotilla:theme", draw);
        if (plot) plot.destroy();
      },
      get plot() { return plot; },
    };
  }

  F.chart = chart;
})();
