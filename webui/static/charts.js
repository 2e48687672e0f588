// Device charts with the vendored uPlot (static/vendor/uplot), offline. The panel sends values
// already downsampled per pixel (/devices/<id>/series: avg, min and max per bucket); measures that
// share a unit share a chart, module counters go into the collapsed Diagnostics section.
// Times are shown in the site's time zone; the x axis always spans the chosen range.
(function () {
  "use strict";

  var COLORS = ["#1f5fbf", "#c0392b", "#2e8b57", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#b7950b"];

  function fmt(v, unit) {
    if (v == null) return "—";
    var digits = Math.abs(v) >= 100 ? 1 : 2;
    return v.toFixed(digits) + (unit ? " " + unit : "");
  }

  // null breaks a uPlot line, undefined is joined over: a value missing from one bucket (another
  // value's reading) is joined, the empty points the panel puts into gaps break the line.
  function joinable(values, gaps) {
    return values.map(function (v, i) { return v === null && gaps.indexOf(i) < 0 ? undefined : v; });
  }

  function chart(container, data, spec, width) {
    var figure = document.createElement("figure");
    figure.className = "chart";
    figure.dataset.kind = spec.kind;
    var caption = document.createElement("figcaption");
    caption.textContent = spec.title;
    figure.appendChild(caption);
    container.appendChild(figure);
    var cols = [data.times];
    var series = [{}];
    var bands = [];
    spec.series.forEach(function (index, n) {
      var s = data.series[index];
      var color = COLORS[n % COLORS.length];
      var label = s.name + (s.channel ? " " + s.channel : "");
      cols.push(joinable(s.avg, data.gaps));
      series.push({ label: label, stroke: color, width: 2, spanGaps: false, points: { show: data.times.length < 60 },
        value: function (u, v) { return fmt(v, s.unit); } });
      if (data.downsampled) {
        cols.push(joinable(s.max, data.gaps), joinable(s.min, data.gaps));
        var at = cols.length - 2;
        series.push({ label: label + " max", stroke: color + "55", width: 1, spanGaps: false,
          value: function (u, v) { return fmt(v, s.unit); } });
        series.push({ label: label + " min", stroke: color + "55", width: 1, spanGaps: false,
          value: function (u, v) { return fmt(v, s.unit); } });
        bands.push({ series: [at, at + 1], fill: color + "22" });
      }
    });
    var tz = data.timezone || "UTC";
    var opts = {
      width: width,
      height: 200,
      tzDate: function (ts) { return window.uPlot.tzDate(new Date(ts * 1e3), tz); },
      scales: { x: { time: true, range: function () { return [data.start, data.end]; } } },
      series: series,
      bands: bands,
      axes: [{}, { size: 56 }],
      legend: { show: true },
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: {
        setSelect: [function (u) {
          if (u.select.width < 4) return;
          var lo = u.posToVal(u.select.left, "x");
          var hi = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
          figure.dispatchEvent(new CustomEvent("fieldpost:zoom", { bubbles: true, detail: { start: lo, end: hi } }));
        }],
        draw: [function (u) {
          // What the axis shows, for people reading the DOM and for the browser tests.
          figure.dataset.ticks = JSON.stringify(u.axes[0]._splits || []);
          figure.dataset.tickLabels = JSON.stringify(u.axes[0]._values || []);
          figure.dataset.yRange = JSON.stringify([u.scales.y.min, u.scales.y.max]);
        }]
      }
    };
    new window.uPlot(opts, cols, figure);
  }

  function build(section, data) {
    var area = section.querySelector(".chart-area");
    var diag = section.querySelector(".diagnostics-area");
    area.innerHTML = "";
    diag.innerHTML = "";
    section.dataset.start = data.start;
    section.dataset.end = data.end;
    section.dataset.timezone = data.timezone;
    section.dataset.downsampled = data.downsampled ? "true" : "false";
    section.querySelector(".chart-range").textContent = describe(data);
    var width = Math.max(240, Math.min(area.clientWidth || 600, 1100));
    var measures = data.charts.filter(function (c) { return c.kind === "measure"; });
    var counters = data.charts.filter(function (c) { return c.kind !== "measure"; });
    if (!measures.length) {
      var p = document.createElement("p");
      p.className = "muted chart-status";
      p.textContent = "No values in this period.";
      area.appendChild(p);
    }
    measures.forEach(function (spec) { chart(area, data, spec, width); });
    section.querySelector(".diagnostics").hidden = !counters.length;
    counters.forEach(function (spec) { chart(diag, data, spec, width); });
  }

  function describe(data) {
    var f = new Intl.DateTimeFormat(undefined, { timeZone: data.timezone, dateStyle: "medium", timeStyle: "short" });
    return f.format(new Date(data.start * 1000)) + " – " + f.format(new Date(data.end * 1000)) + " (" + data.timezone + ")";
  }

  function load(section, query) {
    section.dataset.query = query;
    var area = section.querySelector(".chart-area");
    var points = Math.max(100, Math.min(area.clientWidth || 600, 1100));
    var url = section.dataset.series + "?" + query + "&points=" + points;
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        var error = section.querySelector(".chart-error");
        error.textContent = res.ok ? "" : res.body.message;
        if (res.ok) { build(section, res.body); section.dataset.loaded = query; }
      })
      .catch(function () {});
  }

  function press(section, button) {
    section.querySelectorAll("button[data-range]").forEach(function (b) {
      b.setAttribute("aria-pressed", b === button ? "true" : "false");
    });
  }

  function span(section) {
    return [parseFloat(section.dataset.start), parseFloat(section.dataset.end)];
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.querySelector("section.charts[data-series]");
    if (!section || !window.uPlot) return;
    section.querySelectorAll("button[data-range]").forEach(function (button) {
      button.addEventListener("click", function () {
        press(section, button);
        load(section, "range=" + encodeURIComponent(button.dataset.range));
      });
    });
    section.querySelector("form.custom-range").addEventListener("submit", function (e) {
      e.preventDefault();
      var form = e.target;
      press(section, null);
      load(section, "start=" + encodeURIComponent(form.start.value) + "&end=" + encodeURIComponent(form.end.value));
    });
    section.querySelectorAll("button[data-pan]").forEach(function (button) {
      button.addEventListener("click", function () {
        var s = span(section);
        var shift = (s[1] - s[0]) * parseFloat(button.dataset.pan);
        press(section, null);
        load(section, "start=" + (s[0] + shift) + "&end=" + (s[1] + shift));
      });
    });
    section.querySelector("button[data-zoom-out]").addEventListener("click", function () {
      var s = span(section);
      var half = (s[1] - s[0]) / 2;
      press(section, null);
      load(section, "start=" + (s[0] - half) + "&end=" + (s[1] + half));
    });
    section.addEventListener("fieldpost:zoom", function (e) {
      press(section, null);
      load(section, "start=" + e.detail.start + "&end=" + e.detail.end);
    });
    load(section, "range=24h");
    var last = 0;
    document.addEventListener("fieldpost:change", function (e) {
      var readings = e.detail.readings || [];
      if (readings.indexOf(section.dataset.device) < 0) return;
      if ((section.dataset.query || "").indexOf("range=") !== 0) return;  // a fixed span does not move
      var now = Date.now();
      if (now - last < 5000) return;
      last = now;
      load(section, section.dataset.query);
    });
  });
})();
