// Draws the overview's charts with uPlot from the JSON next to each chart; no build step.
(function () {
  "use strict";
  function width(el) { return Math.max(320, el.clientWidth - 10); }
  function times(points) { return points.map(function (p) { return Date.parse(p.at) / 1000; }); }
  function pick(points, key) { return points.map(function (p) { return p[key] === null ? null : p[key]; }); }
  // The time axis spans the samples with a margin; one sample (or one instant) gets an hour each side
  // instead of the years uPlot would otherwise draw around it. The figure notes the span (data-x-span-s).
  function timeScale(el, xs) {
    if (!xs.length) { return { time: true }; }
    var lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
    var pad = hi > lo ? (hi - lo) * 0.05 : 3600;
    el.closest("figure").setAttribute("data-x-span-s", String(Math.round(hi - lo + 2 * pad)));
    return { time: true, auto: false, range: [lo - pad, hi + pad] };
  }
  function bars(el, data) {
    var xs = data.labels.map(function (_, i) { return i; });
    return new uPlot({
      width: width(el), height: 220, scales: { x: { time: false, range: [-0.5, Math.max(0.5, xs.length - 0.5)] } },
      axes: [{ values: function (u, vals) { return vals.map(function (v) { return data.labels[v] || ""; }); } }, {}],
      series: [{}, { label: "open cases", fill: "rgba(224,160,48,0.6)", stroke: "#c08020", paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false } }]
    }, [xs, data.values], el);
  }
  function line(el, data) {
    var pts = data.points, xs = times(pts);
    return new uPlot({
      width: width(el), height: 220, scales: { x: timeScale(el, xs) },
      series: [{}, { label: "p50 " + data.unit, stroke: "#2851a3", width: 2 }, { label: "p95 " + data.unit, stroke: "#c03030", width: 2 }]
    }, [xs, pick(pts, "p50"), pick(pts, "p95")], el);
  }
  function rates(el, data) {
    var pts = data.points, xs = times(pts);
    return new uPlot({
      width: width(el), height: 220, scales: { x: timeScale(el, xs), y: { range: [0, 100] } },
      series: [{}, { label: "sync success %", stroke: "#107030", width: 2 }, { label: "duplicate customers %", stroke: "#c08020", width: 2 }]
    }, [xs, pick(pts, "sync_success_pct"), pick(pts, "duplicate_customer_pct")], el);
  }
  document.querySelectorAll("figure.chart").forEach(function (fig) {
    var el = fig.querySelector(".plot");
    var json = fig.querySelector("script.series");
    if (!el || !json || typeof uPlot === "undefined") { return; }
    var data = JSON.parse(json.textContent);
    var draw = { bars: bars, line: line, rates: rates }[data.kind];
    if (draw) { draw(el, data); fig.setAttribute("data-drawn", "yes"); }
  });
}());
