// Device charts with the vendored uPlot (static/vendor/uplot): one small chart per measured value,
// averaged into time buckets by the panel (/devices/<id>/series?window=24h|7d).
(function () {
  "use strict";

  function build(section, data) {
    var area = section.querySelector(".chart-area");
    area.innerHTML = "";
    if (!data.series.length) {
      var p = document.createElement("p");
      p.className = "muted chart-status";
      p.textContent = "No values in this period.";
      area.appendChild(p);
      return;
    }
    var width = Math.max(260, Math.min(area.clientWidth || 600, 900));
    data.series.forEach(function (s) {
      var figure = document.createElement("figure");
      figure.className = "chart";
      var caption = document.createElement("figcaption");
      caption.textContent = s.name + (s.unit ? " (" + s.unit + ")" : "") + " · channel " + s.channel;
      figure.appendChild(caption);
      area.appendChild(figure);
      var opts = {
        width: width,
        height: 180,
        series: [{}, { label: s.name, stroke: "#1f5fbf", width: 2, spanGaps: true, value: function (u, v) {
          return v == null ? "—" : v.toFixed(2) + " " + s.unit;
        } }],
        axes: [{}, { size: 60 }],
        legend: { show: true }
      };
      new window.uPlot(opts, [data.times, s.values], figure);
    });
  }

  function load(section, windowName) {
    section.dataset.window = windowName;
    fetch(section.dataset.series + "?window=" + encodeURIComponent(windowName), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { build(section, data); section.dataset.loaded = windowName; } })
      .catch(function () {});
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.querySelector("section.charts[data-series]");
    if (!section || !window.uPlot) return;
    section.querySelectorAll("button[data-window]").forEach(function (button) {
      button.addEventListener("click", function () {
        section.querySelectorAll("button[data-window]").forEach(function (b) {
          b.setAttribute("aria-pressed", b === button ? "true" : "false");
        });
        load(section, button.dataset.window);
      });
    });
    load(section, "24h");
    var last = 0;
    document.addEventListener("fieldpost:change", function (e) {
      var readings = e.detail.readings || [];
      if (readings.indexOf(section.dataset.device) < 0) return;
      var now = Date.now();
      if (now - last < 5000) return;  // a chart of 5-minute buckets needs no faster redraw
      last = now;
      load(section, section.dataset.window || "24h");
    });
  });
})();
