/* Live updates: listens in the user's own room and updates the page without a reload. */
(function () {
  "use strict";
  if (typeof io === "undefined") { return; }
  var notice = document.getElementById("live-notice");
  var socket = io("/notifications");
  // Marks the page as listening (the server put us in our room before accepting).
  socket.on("connect", function () { document.documentElement.dataset.live = "connected"; });
  socket.on("disconnect", function () { delete document.documentElement.dataset.live; });

  function show(label, payload) {
    if (!notice) { return; }
    notice.textContent = "";
    notice.appendChild(document.createTextNode((notice.dataset[label] || "") + " "));
    var link = document.createElement("a");
    link.href = payload.url;
    link.textContent = payload.reference + " · " + (payload.specialty || "");
    notice.appendChild(link);
    // Call times come already written in the reader's zone and language.
    if (payload.time) { notice.appendChild(document.createTextNode(" · " + payload.time)); }
    notice.hidden = false;
  }

  socket.on("offer.new", function (offer) {
    show("offer", offer);
    var list = document.getElementById("offers");
    if (!list || list.querySelector('[data-consult="' + offer.consult_id + '"]')) { return; }
    var empty = document.getElementById("no-offers");
    if (empty) { empty.remove(); }
    var card = document.createElement("article");
    card.className = "card offer new urgency-" + offer.urgency;
    card.dataset.consult = offer.consult_id;
    var title = document.createElement("h3");
    var link = document.createElement("a");
    link.href = offer.url;
    link.textContent = offer.reference + " · " + offer.specialty;
    title.appendChild(link);
    var problem = document.createElement("p");
    problem.textContent = offer.problem;
    var meta = document.createElement("p");
    meta.className = "muted";
    meta.textContent = offer.clinic + " · " + offer.urgency_label;
    card.appendChild(title);
    card.appendChild(problem);
    card.appendChild(meta);
    if (offer.deadline) {
      var deadline = document.createElement("p");
      deadline.className = "deadline";
      deadline.textContent = offer.deadline;
      card.appendChild(deadline);
    }
    list.insertBefore(card, list.firstChild);
  });

  socket.on("consult.escalated", function (consult) {
    show("escalated", consult);
    var section = document.getElementById("escalations");
    var list = document.getElementById("escalated-list");
    if (!section || !list || list.querySelector('[data-consult="' + consult.consult_id + '"]')) {
      return;
    }
    var item = document.createElement("li");
    item.dataset.consult = consult.consult_id;
    var link = document.createElement("a");
    link.href = consult.url.replace(/\/?$/, "/matching");
    link.textContent = consult.reference + " · " + consult.specialty + " · " + consult.urgency_label;
    item.appendChild(link);
    list.appendChild(item);
    section.hidden = false;
  });

  // Offered again to a specialist who became available: no longer waiting for a coordinator.
  socket.on("consult.reoffered", function (consult) {
    var section = document.getElementById("escalations");
    var list = document.getElementById("escalated-list");
    var item = list && list.querySelector('[data-consult="' + consult.consult_id + '"]');
    if (!item) { return; }
    item.remove();
    show("reoffered", consult);
    if (section && !list.children.length) { section.hidden = true; }
  });

  socket.on("consult.accepted", function (consult) { show("accepted", consult); });
  socket.on("consult.assigned", function (consult) { show("assigned", consult); });
  socket.on("note.new", function (note) { show("note", note); });
  socket.on("call.proposed", function (call) { show("callProposed", call); });
  socket.on("call.agreed", function (call) { show("callAgreed", call); });
  socket.on("call.withdrawn", function (call) { show("callWithdrawn", call); });
}());
