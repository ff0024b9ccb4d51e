// Namaskah dashboard: theme toggle (remembered), confirmations, and live numbers and charts
// over a WebSocket with a visible connection state and automatic reconnection.
(function () {
  "use strict";
  var root = document.documentElement;
  var stored = null;
  try { stored = localStorage.getItem("namaskah-theme"); } catch (e) { /* private mode */ }
  if (stored === "dark" || stored === "light") { root.setAttribute("data-theme", stored); }

  function currentTheme() {
    var explicit = root.getAttribute("data-theme");
    if (explicit) { return explicit; }
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.getElementById("theme-toggle");
    if (toggle) {
      toggle.addEventListener("click", function () {
        var next = currentTheme() === "dark" ? "light" : "dark";
        root.setAttribute("data-theme", next);
        try { localStorage.setItem("namaskah-theme", next); } catch (e) { /* private mode */ }
      });
    }
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
    var indicator = document.getElementById("live-state");
    if (indicator) { connect(indicator, 0); }
  });

  function setState(indicator, state) {
    indicator.className = "dot " + state;
    indicator.setAttribute("data-state", state);
    indicator.textContent = state;
  }

  function connect(indicator, failures) {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket;
    try { socket = new WebSocket(scheme + location.host + "/ws"); } catch (e) { retry(indicator, failures); return; }
    socket.onopen = function () { failures = 0; setState(indicator, "connected"); };
    socket.onmessage = function (event) {
      var update;
      try { update = JSON.parse(event.data); } catch (e) { return; }
      var values = update.values || {};
      Object.keys(values).forEach(function (key) {
        document.querySelectorAll('[data-live="' + key + '"]').forEach(function (element) {
          element.textContent = values[key];
        });
      });
      // The charts come drawn by the server (escaped SVG); swap them whole.
      var charts = document.getElementById("live-charts");
      if (charts && typeof update.charts === "string") { charts.innerHTML = update.charts; }
    };
    socket.onclose = function () { retry(indicator, failures + 1); };
    socket.onerror = function () { socket.close(); };
  }

  function retry(indicator, failures) {
    // Reconnect with a growing pause; after a few failures call it offline (still retrying).
    setState(indicator, failures > 3 ? "offline" : "reconnecting");
    var pause = Math.min(30000, 1000 * Math.pow(2, Math.min(failures, 5)));
    setTimeout(function () { connect(indicator, failures); }, pause);
  }
})();
