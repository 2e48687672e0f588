// The sync page's backlog-over-time chart (vendored uPlot): samples the panel takes every 5 minutes.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var figure = document.getElementById("backlog-chart");
    if (!figure || !window.uPlot) return;
    var h = JSON.parse(figure.dataset.history);
    var width = Math.max(240, Math.min(figure.clientWidth || 600, 1100));
    new window.uPlot({
      width: width,
      height: 200,
      series: [{}, { label: "readings waiting", stroke: "#1f5fbf", width: 2 },
               { label: "other messages", stroke: "#c0392b", width: 1 }],
      axes: [{}, { size: 56 }],
      scales: { y: { range: function (u, lo, hi) { return [0, Math.max(1, hi * 1.1)]; } } }
    }, [h.times, h.readings, h.outbox], figure);
    figure.dataset.drawn = "true";
  });
})();
