// The customer web app: dark mode, live updates of rentals over server-sent events, and
// the countdown to each number's deadline. Everything works without it but the live parts.
(function () {
  "use strict";
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem("theme"); } catch (e) { /* private mode */ }
  if (saved === "dark" || saved === "light") { root.setAttribute("data-theme", saved); }

  var FINAL = ["completed", "timed_out", "cancelled", "failed", "refunded"];
  var EVENTS = ["verification.number_assigned", "verification.completed", "verification.timed_out",
                "verification.cancelled", "verification.failed", "verification.refunded"];

  function setText(scope, field, value) {
    if (value === null || value === undefined || value === "") { return; }
    scope.querySelectorAll('[data-field="' + field + '"]').forEach(function (el) { el.textContent = value; });
  }

  function apply(type, data) {
    if (!data || !data.id) { return; }
    document.querySelectorAll('[data-verification="' + data.id + '"]').forEach(function (scope) {
      setText(scope, "status", data.status);
      setText(scope, "phone_number", data.phone_number);
      setText(scope, "code", data.code);
      setText(scope, "sms_text", data.sms_text);
      var countdown = scope.querySelector('[data-field="countdown"]');
      if (countdown && data.expires_at) { countdown.setAttribute("data-deadline", data.expires_at); }
      if (FINAL.indexOf(data.status) >= 0) {
        if (countdown) { countdown.removeAttribute("data-deadline"); countdown.textContent = "—"; }
        var cancel = document.getElementById("cancel-form");
        if (cancel) { cancel.hidden = true; }
      }
      if (data.refunded_at) {
        var refund = scope.querySelector('[data-field="refunded_at"]');
        if (refund) { refund.hidden = false; }
      }
    });
    var timeline = document.getElementById("timeline");
    var page = document.querySelector(".verification[data-verification]");
    if (timeline && page && page.getAttribute("data-verification") === data.id) {
      var empty = document.getElementById("timeline-empty");
      if (empty) { empty.remove(); }
      var item = document.createElement("li");
      var code = document.createElement("code");
      code.textContent = type;
      item.appendChild(code);
      item.appendChild(document.createTextNode(" " + new Date().toISOString().substring(11, 19) + " UTC"));
      timeline.appendChild(item);
    }
  }

  function connect(url) {
    var indicator = document.getElementById("live");
    function show(state, label) {
      if (!indicator) { return; }
      indicator.setAttribute("data-state", state);
      indicator.textContent = label;
    }
    var source = new EventSource(url);
    source.onopen = function () { show("open", "live"); };
    source.onerror = function () {
      show("closed", "reconnecting…");
      // The browser reconnects by itself (with Last-Event-ID) unless the server said no.
      if (source.readyState === EventSource.CLOSED) { setTimeout(function () { connect(url); }, 3000); }
    };
    EVENTS.forEach(function (type) {
      source.addEventListener(type, function (message) {
        var payload;
        try { payload = JSON.parse(message.data); } catch (e) { return; }
        // How many arrived, for whoever looks (tests, a curious operator).
        document.body.setAttribute("data-live-events", String(Number(document.body.getAttribute("data-live-events") || 0) + 1));
        apply(type, payload.data || payload);
      });
    });
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Math.max(0, Math.round((Date.parse(el.getAttribute("data-deadline")) - now) / 1000));
      var seconds = left % 60;
      el.textContent = Math.floor(left / 60) + ":" + (seconds < 10 ? "0" : "") + seconds;
    });
  }

  // The price table: each service's cheapest country until a service is chosen, then every
  // country of that service.
  function filterPrices() {
    var chosen = document.getElementById("service");
    var table = document.getElementById("prices");
    if (!chosen || !table) { return; }
    table.querySelectorAll("tbody tr[data-service]").forEach(function (row) {
      row.hidden = chosen.value ? row.getAttribute("data-service") !== chosen.value : !row.hasAttribute("data-cheapest");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var service = document.getElementById("service");
    if (service) { service.addEventListener("change", filterPrices); filterPrices(); }
    var toggle = document.getElementById("theme-toggle");
    if (toggle) {
      toggle.addEventListener("click", function () {
        var dark = root.getAttribute("data-theme") === "dark" ||
          (!root.getAttribute("data-theme") && window.matchMedia("(prefers-color-scheme: dark)").matches);
        var next = dark ? "light" : "dark";
        root.setAttribute("data-theme", next);
        try { localStorage.setItem("theme", next); } catch (e) { /* private mode */ }
      });
    }
    var live = document.body.getAttribute("data-live");
    if (live && window.EventSource) { connect(live); }
    tick();
    setInterval(tick, 1000);
  });
})();
