/* A time zone field that searches as you type (a city, in your language or as in the zone
   name) instead of a page-long list of every zone. Without script it is a plain text field. */
(function () {
  "use strict";
  document.querySelectorAll("input[data-zone-search]").forEach(function (input) {
    var list = document.getElementById(input.getAttribute("list"));
    var timer = null, asked = "";
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var query = input.value.trim();
        if (query.length < 2 || query === asked || !list) { return; }
        asked = query;
        fetch(input.dataset.zoneSearch + "?q=" + encodeURIComponent(query),
              { headers: { Accept: "application/json" }, credentials: "same-origin" })
          .then(function (response) { return response.ok ? response.json() : []; })
          .then(function (zones) {
            list.textContent = "";
            zones.forEach(function (item) {
              var option = document.createElement("option");
              option.value = item.zone;
              option.label = item.place;
              list.appendChild(option);
            });
          })
          .catch(function () { /* offline: the field still takes a typed zone */ });
      }, 200);
    });
  });
}());
