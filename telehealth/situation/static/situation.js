/* The situation room follows the consults: on a "changed" event it fetches this same page
   (with its filters) and swaps the figures in, at most once every two seconds; while the
   figures shown are out of date (the server is computing newer ones), it asks again. */
(function () {
  "use strict";
  if (typeof io === "undefined") { return; }
  var room = document.getElementById("situation");
  var live = document.getElementById("situation-live");
  if (!room) { return; }
  var socket = io("/situation");
  var waiting = false;
  var again = false;

  function refresh() {
    if (waiting) { again = true; return; }
    waiting = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("situation");
        if (fresh) {
          room.replaceChildren.apply(room, Array.prototype.slice.call(fresh.childNodes));
          document.documentElement.dataset.situationUpdated = String(Date.now());
          if (live) { live.textContent = live.dataset.updated || ""; }
          if (updating()) { again = true; }
        }
      })
      .catch(function () { /* the next change tries again */ })
      .then(function () {
        window.setTimeout(function () {
          waiting = false;
          if (again) { again = false; refresh(); }
        }, 2000);
      });
  }

  // Out-of-date figures shown while newer ones are computed: ask again until they are in.
  function updating() { return room.querySelector("[data-updating]") !== null; }
  if (updating()) { window.setTimeout(refresh, 2000); }

  socket.on("connect", function () { document.documentElement.dataset.situation = "live"; });
  socket.on("disconnect", function () { delete document.documentElement.dataset.situation; });
  socket.on("situation.changed", refresh);
}());
