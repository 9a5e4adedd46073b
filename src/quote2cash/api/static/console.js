// Draws the overview's charts with uPlot from the JSON next to each chart; no build step.
(function () {
  "use strict";
  function width(el) { return Math.max(320, el.clientWidth - 10); }
  function times(points) { return points.map(function (p) { return Date.parse(p.at) / 1000; }); }
  function pick(points, key) { return points.map(function (p) { return p[key] === null ? null : p[key]; }); }
  function bars(el, data) {
    var xs = data.labels.map(function (_, i) { return i; });
    return new uPlot({
      width: width(el), height: 220, scales: { x: { time: false, range: [-0.5, Math.max(0.5, xs.length - 0.5)] } },
      axes: [{ values: function (u, vals) { return vals.map(function (v) { return data.labels[v] || ""; }); } }, {}],
      series: [{}, { label: "open cases", fill: "rgba(224,160,48,0.6)", stroke: "#c08020", paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false } }]
    }, [xs, data.values], el);
  }
  function line(el, data) {
    var pts = data.points;
    return new uPlot({
      width: width(el), height: 220,
      series: [{}, { label: "p50 " + data.unit, stroke: "#2851a3", width: 2 }, { label: "p95 " + data.unit, stroke: "#c03030", width: 2 }]
    }, [times(pts), pick(pts, "p50"), pick(pts, "p95")], el);
  }
  function rates(el, data) {
    var pts = data.points;
    return new uPlot({
      width: width(el), height: 220, scales: { y: { range: [0, 100] } },
      series: [{}, { label: "sync success %", stroke: "#107030", width: 2 }, { label: "duplicate customers %", stroke: "#c08020", width: 2 }]
    }, [times(pts), pick(pts, "sync_success_pct"), pick(pts, "duplicate_customer_pct")], el);
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
