// Fieldpost panel: live updates over Server-Sent Events, and small form helpers.
// No external requests: everything is served by the panel itself.
(function () {
  "use strict";

  function topicsMatch(el, change) {
    var topics = (el.dataset.topics || "").split(/\s+/);
    for (var i = 0; i < topics.length; i++) {
      var t = topics[i];
      if (!t) continue;
      if (t.indexOf("readings:") === 0) {
        if (change.readings && change.readings.indexOf(t.slice(9)) >= 0) return true;
      } else if (t === "readings") {
        if (change.readings && change.readings.length) return true;
      } else if (change[t]) {
        return true;
      }
    }
    return false;
  }

  // One refresh in flight per fragment; a change during it schedules one more.
  function refresh(el) {
    if (el._busy) { el._again = true; return; }
    el._busy = true;
    fetch(el.dataset.fragment, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401 || r.redirected) { window.location.reload(); return null; }  // session ended
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null) {
          el.innerHTML = html;
          el.dataset.refreshed = String(Date.now());
        }
      })
      .catch(function () {})
      .then(function () {
        el._busy = false;
        if (el._again) { el._again = false; refresh(el); }
      });
  }

  function startEvents() {
    var url = document.body.dataset.events;
    if (!url || !window.EventSource) return;
    var source = new EventSource(url);
    source.addEventListener("change", function (e) {
      var change;
      try { change = JSON.parse(e.data); } catch (err) { return; }
      document.querySelectorAll("[data-fragment]").forEach(function (el) {
        if (topicsMatch(el, change)) refresh(el);
      });
      document.dispatchEvent(new CustomEvent("fieldpost:change", { detail: change }));
    });
    source.addEventListener("open", function () { document.body.dataset.live = "connected"; });
    source.addEventListener("error", function () { document.body.dataset.live = "reconnecting"; });
  }

  // The downlink form shows only the fields its command uses.
  function downlinkForm() {
    var form = document.getElementById("downlink-form");
    if (!form) return;
    var command = form.querySelector("select[name=command]");
    var uses = { set_interval: ["seconds"], set_output: ["output", "value"] };
    function update() {
      var wanted = uses[command.value] || [];
      ["seconds", "output", "value"].forEach(function (name) {
        var input = form.querySelector("[name=" + name + "]");
        var box = input && input.closest(".field");
        if (box) box.hidden = wanted.indexOf(name) < 0;
      });
    }
    command.addEventListener("change", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    startEvents();
    downlinkForm();
  });
})();
