// The conference room: the call page's client (video/static/call.js) does the media; this
// adds the people list, hands, the moderator's actions, slides and screen sharing.
(function () {
  "use strict";
  var room = document.getElementById("room");
  if (!room) { return; }
  var d = room.dataset;
  var moderator = d.moderator === "1";
  var selfId = null;
  var people = [];
  var peers = [];
  var speaking = {};
  var slide = null;
  var mutedByModerator = false;
  var removed = false;
  var audioOnly = false;
  var api = null;
  var screenTrack = null;  // the screen we share, if any
  var onDeck = null;  // the presenter's part: a deck was prepared or refused
  var notice = document.getElementById("room-notice");
  var handButton = document.getElementById("hand");
  var micButton = document.getElementById("toggle-mic");

  function tell(text) { notice.textContent = text; notice.hidden = !text; }

  function button(label, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  function renderPeople() {
    var list = document.getElementById("people");
    list.textContent = "";
    document.getElementById("people-count").textContent = String(people.length);
    people.forEach(function (person) {
      var li = document.createElement("li");
      li.dataset.participant = person.id;
      if (person.hand) { li.classList.add("hand"); }
      if (person.muted) { li.classList.add("muted-person"); }
      if (speaking[person.id]) { li.classList.add("speaking"); }
      var name = document.createElement("span");
      name.className = "name";
      name.textContent = person.name;
      li.appendChild(name);
      var tags = [];
      if (person.id === selfId) { tags.push(d.msgYou); }
      if (person.moderator) { tags.push(d.msgHub); }
      if (person.hand) { tags.push(d.msgHand); }
      if (person.muted) { tags.push(d.msgMuted); }
      if (person.sharing) { tags.push(d.msgSharing); }
      if (person.state === "reconnecting") { tags.push(document.getElementById("call").dataset.msgReconnecting); }
      var tag = document.createElement("span");
      tag.className = "tags";
      tag.textContent = tags.length ? " (" + tags.join(", ") + ")" : "";
      li.appendChild(tag);
      var talk = document.createElement("span");
      talk.className = "talk";
      talk.textContent = " " + d.msgSpeaking;
      li.appendChild(talk);
      if (moderator && person.id !== selfId) {
        var actions = document.createElement("span");
        actions.className = "actions";
        actions.appendChild(button(person.muted ? d.msgUnmute : d.msgMute, function () {
          api.send("mute", api.ids({ participant: person.id, muted: !person.muted }));
        }));
        if (person.hand) {
          actions.appendChild(button(d.msgLower, function () {
            api.send("lower_hand", api.ids({ participant: person.id }));
          }));
        }
        if (!person.moderator) {
          actions.appendChild(button(d.msgRemove, function () {
            if (window.confirm(d.msgConfirmRemove)) {
              api.send("remove", api.ids({ participant: person.id }));
            }
          }));
        }
        li.appendChild(actions);
      }
      list.appendChild(li);
    });
    var me = people.find(function (p) { return p.id === selfId; });
    if (me) {
      handButton.setAttribute("aria-pressed", me.hand ? "true" : "false");
      handButton.textContent = me.hand ? d.msgLowerMine : d.msgRaise;
      setMuted(me.muted, false);
    }
  }

  // A moderator's mute: the server no longer forwards our audio; the page mutes the
  // microphone too (nothing leaves the device) and keeps the button off until unmuted.
  function setMuted(muted, announce) {
    if (muted === mutedByModerator) { return; }
    mutedByModerator = muted;
    var t = api && api.track("audio");
    if (t) { t.enabled = !muted; }
    micButton.disabled = muted;
    room.classList.toggle("muted-by-moderator", muted);
    if (announce || muted) { tell(muted ? d.msgMutedByModerator : d.msgUnmuted); }
  }

  function slideUrl() {
    if (!slide) { return ""; }
    // Audio-only and `low` participants get the small still: a slide costs them ~30 KB.
    var low = audioOnly || document.getElementById("profile").value === "low";
    return low ? slide.preview_url : slide.url;
  }

  function renderSlide() {
    var figure = document.getElementById("slide");
    figure.hidden = !slide;
    if (!slide) { return; }
    var img = document.getElementById("slide-image");
    var url = slideUrl();
    if (img.getAttribute("src") !== url) { img.src = url; }
    figure.dataset.slideId = String(slide.id);
    document.getElementById("slide-caption").textContent =
      d.msgSlide.replace("{n}", slide.position).replace("{count}", slide.count);
  }

  function markSpeaking(now) {
    var changed = Object.keys(now).length !== Object.keys(speaking).length ||
      Object.keys(now).some(function (id) { return !speaking[id]; });
    speaking = now;
    if (changed) {
      document.querySelectorAll("#people li").forEach(function (li) {
        li.classList.toggle("speaking", !!speaking[li.dataset.participant]);
      });
    }
  }

  // Who speaks: the audio level of what we receive (the server forwards the loudest) and
  // of our own microphone, from the browser's statistics; nothing is decoded for it.
  function pollLevels() {
    var pc = api && api.peerConnection();
    if (!pc || removed) { return; }
    pc.getStats().then(function (stats) {
      var byMid = {};
      var now = {};
      stats.forEach(function (s) {
        if (s.type === "inbound-rtp" && s.kind === "audio" && s.mid !== undefined) {
          byMid[s.mid] = s.audioLevel || 0;
        }
        if (s.type === "media-source" && s.kind === "audio" && (s.audioLevel || 0) > 0.05 &&
            !mutedByModerator && selfId) {
          var t = api.track("audio");
          if (t && t.enabled) { now[selfId] = true; }
        }
      });
      peers.forEach(function (peer) {
        if (peer.audio_mid && (byMid[peer.audio_mid] || 0) > 0.05) { now[peer.id] = true; }
      });
      markSpeaking(now);
    }).catch(function () { /* closed meanwhile */ });
  }

  function bind(s, callApi) {
    api = callApi;
    s.on("offer", function (msg) {
      selfId = msg.self;
      // Joined again (a reconnect, maybe to another node) while sharing: pinned again.
      if (screenTrack) { api.send("screen_share", api.ids({ on: true })); }
    });
    s.on("peers", function (msg) { peers = msg.peers; });
    s.on("roster", function (msg) {
      people = msg.people;
      slide = msg.slide;
      renderPeople();
      renderSlide();
    });
    s.on("slide", function (msg) { slide = msg.slide; renderSlide(); });
    s.on("muted", function (msg) { setMuted(msg.muted, true); renderPeople(); });
    // Someone else shares now: our screen stops (no "off": the share is theirs).
    s.on("share_taken_over", function (msg) {
      if (!screenTrack) { return; }
      endShare();
      tell(d.msgShareTakenOver.replace("{name}", msg.by));
    });
    s.on("deck", function (msg) { if (onDeck) { onDeck(msg); } });
    s.on("removed", function () {
      removed = true;
      if (screenTrack) { screenTrack.stop(); screenTrack = null; }
      api.stop();
      api.say(d.msgRemoved);
      tell(d.msgRemoved);
      document.querySelectorAll(".controls button, #presenter button").forEach(function (b) {
        b.disabled = true;
      });
    });
  }

  (window.telehealthCallPlugins = window.telehealthCallPlugins || []).push({ bind: bind });
  window.setInterval(pollLevels, 500);

  handButton.addEventListener("click", function () {
    var me = people.find(function (p) { return p.id === selfId; });
    api.send("hand", api.ids({ raised: !(me && me.hand) }));
  });
  document.getElementById("audio-only").addEventListener("click", function () {
    audioOnly = !audioOnly;
    renderSlide();
  });
  document.getElementById("profile").addEventListener("change", renderSlide);

  // ---------------------------------------------------------------- screen sharing

  var shareButton = document.getElementById("share-screen");  // the hub and presenters

  // The screen goes out in place of the camera (call.js keeps it so across reconnects):
  // the others see it in the presenter's tile. The server pins a sharer first in everyone's
  // video and never pauses it, even while they do not speak (screen_share).
  function endShare() {
    if (screenTrack) { screenTrack.stop(); screenTrack = null; }
    api.sendInsteadOfCamera(null);
    if (shareButton) { shareButton.textContent = d.msgShare; }
  }

  function stopSharing() {
    endShare();
    api.send("screen_share", api.ids({ on: false }));
  }

  if (shareButton) {
    shareButton.addEventListener("click", function () {
      if (screenTrack) { stopSharing(); return; }
      if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) {
        tell(d.msgShareFailed);
        return;
      }
      navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 5 }, audio: false })
        .then(function (stream) {
          if (removed || api.hasLeft()) {  // out of the room while the browser asked
            stream.getTracks().forEach(function (t) { t.stop(); });
            return;
          }
          screenTrack = stream.getVideoTracks()[0];
          // A screen is mostly still text: keep its detail, let the frame rate drop.
          screenTrack.contentHint = "detail";
          screenTrack.addEventListener("ended", stopSharing);
          api.sendInsteadOfCamera(screenTrack);
          api.send("screen_share", api.ids({ on: true }));
          shareButton.textContent = d.msgStopShare;
        })
        .catch(function () { tell(d.msgShareFailed); });
    });
  }

  if (!moderator) { return; }

  // ---------------------------------------------------------------- the presenter's slides

  function slideIds() {
    return Array.prototype.map.call(document.querySelectorAll("#slide-list [data-slide-id]"),
                                    function (b) { return parseInt(b.dataset.slideId, 10); });
  }

  function show(slideId) { api.send("slide", api.ids({ slide_id: slideId })); }

  function step(by) {
    var ids = slideIds();
    if (!ids.length) { return; }
    var at = slide ? ids.indexOf(slide.id) : -1;
    var next = Math.min(Math.max(at + by, 0), ids.length - 1);
    show(ids[next]);
  }

  function listSlides(slides) {
    var list = document.getElementById("slide-list");
    list.textContent = "";
    slides.forEach(function (item) {
      var li = document.createElement("li");
      var b = button(d.msgSlide.replace("{n}", item.position).replace("{count}", slides.length),
                     function () { /* the list's own listener shows it */ });
      b.dataset.slideId = String(item.id);
      li.appendChild(b);
      list.appendChild(li);
    });
  }

  document.getElementById("slide-list").addEventListener("click", function (event) {
    var id = event.target.dataset && event.target.dataset.slideId;
    if (id) { show(parseInt(id, 10)); }
  });
  document.getElementById("slide-prev").addEventListener("click", function () { step(-1); });
  document.getElementById("slide-next").addEventListener("click", function () { step(1); });
  document.getElementById("slide-hide").addEventListener("click", function () { show(null); });

  // PDF decks: a job makes their slides; a refusal is shown to the uploader only.
  var deckList = document.getElementById("decks");

  function deckItem(id) { return deckList.querySelector('[data-deck-id="' + id + '"]'); }

  function showDeck(deck) {
    var li = deckItem(deck.id);
    if (deck.status === "ready" || (deck.status === "failed" && deck.uploader !== selfId)) {
      if (li) { li.remove(); }
      return;
    }
    if (!li) {
      li = document.createElement("li");
      li.dataset.deckId = String(deck.id);
      deckList.appendChild(li);
    }
    li.className = deck.status === "failed" ? "flash flash-error" : "muted";
    li.textContent = deck.status === "failed" ? deck.error
      : d.msgDeckPreparing.replace("{name}", deck.name);
  }

  onDeck = function (msg) {
    if (msg.deck.status === "ready") {
      listSlides(msg.slides);
      if (deckItem(msg.deck.id)) { uploadStatus.textContent = d.msgUploaded; }
    }
    showDeck(msg.deck);
  };

  var form = document.getElementById("slide-upload");
  var uploadStatus = document.getElementById("upload-status");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    uploadStatus.textContent = d.msgUploading;
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin",
                         headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) { throw new Error(body.error); }
          listSlides(body.slides);
          deckList.querySelectorAll(".flash-error").forEach(function (li) { li.remove(); });
          body.decks.forEach(showDeck);
          form.reset();
          uploadStatus.textContent = body.added || !body.decks.length ? d.msgUploaded : "";
        });
      })
      .catch(function (err) { uploadStatus.textContent =
        document.getElementById("call").dataset.msgError + ": " + err.message; });
  });

}());
