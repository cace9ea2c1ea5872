/* The alert list hears of new alerts in the officer's own room and shows them at once. */
(function () {
  "use strict";
  if (typeof io === "undefined") { return; }
  var list = document.getElementById("alerts");
  if (!list) { return; }
  io("/notifications").on("alert.new", function (alert) {
    if (list.querySelector('[data-alert="' + alert.alert_id + '"]')) { return; }
    var empty = document.getElementById("no-alerts");
    if (empty) { empty.remove(); }
    var item = document.createElement("li");
    item.className = "alert new stage-verification";
    item.dataset.alert = alert.alert_id;
    var link = document.createElement("a");
    link.href = alert.url;
    link.textContent = alert.reference + " · " + alert.syndrome + " · " + alert.area;
    item.appendChild(link);
    item.appendChild(document.createTextNode(" · " + alert.observed + " · " + alert.due));
    list.insertBefore(item, list.firstChild);
  });
})();
