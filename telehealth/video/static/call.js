// The call page: one RTCPeerConnection to the media server; the server makes every offer.
(function () {
  "use strict";
  var root = document.getElementById("call");
  if (!root) { return; }
  var consultId = parseInt(root.dataset.consultId, 10);
  // Another room page (a case conference) names its room by another field and id.
  var idField = root.dataset.idField || "consult_id";
  var roomId = root.dataset.roomId ? parseInt(root.dataset.roomId, 10) : consultId;
  function ids(fields) {
    var data = {};
    data[idField] = roomId;
    Object.keys(fields || {}).forEach(function (k) { data[k] = fields[k]; });
    return data;
  }
  // Pages that add to the call (conference.js) register before this script runs.
  var plugins = window.telehealthCallPlugins || [];
  var PROFILES = {
    low: { width: 320, height: 240, frameRate: 15, maxBitrate: 200000 },
    standard: { width: 640, height: 360, frameRate: 30, maxBitrate: 800000 }
  };
  var profile = root.dataset.profile;
  var startAudioOnly = false;
  // Unless the address names a profile, start with what the last pre-call check (check.js)
  // recommended for this browser's connection.
  try {
    var remembered = window.localStorage.getItem("telehealth.callProfile");
    if (!/[?&]profile=/.test(window.location.search) && PROFILES.hasOwnProperty(remembered)) {
      profile = remembered;
      document.getElementById("profile").value = profile;
      startAudioOnly = window.localStorage.getItem("telehealth.callAudioOnly") === "1";
    }
  } catch (e) { /* no storage: the server's default */ }
  // What we send: the lowest profile among us and those who receive us (the server says).
  var sendProfile = profile;
  // A conference asks us to stop sending video while nobody is shown it (send_video); a new
  // connection starts sending.
  var sendVideo = true;
  var statusEl = document.getElementById("call-status");
  var tiles = document.getElementById("tiles");
  var template = document.getElementById("tile-template");
  var localStream = null;
  // What a plugin sends in place of the camera (the presenter's shared screen); kept
  // across new connections (a reconnect, the room moving), or they would send the camera.
  var cameraStandIn = null;
  var pc = null;
  var peers = [];
  var left = false;
  var socket = null;
  // Between two tries to find the call: short, and never more than a second, so that a page
  // whose server died rejoins within a second of another server taking the call (asking
  // where the call lives costs the app one lookup).
  var RETRY_FIRST_MS = 300;
  var RETRY_MAX_MS = 1000;
  var retryMs = RETRY_FIRST_MS;

  // The call's media lives on one server ("node"); the page was told which. Empty: this
  // page's own origin. A node URL may carry a path prefix (routing behind the proxy).
  // The page reconnects by itself (below), asking the app where the call lives each time.
  function openSocket(nodeUrl, namespace) {
    if (!nodeUrl) { return io(namespace, { reconnection: false, forceNew: true }); }
    var url = new URL(nodeUrl);
    return io(url.origin + namespace, {
      path: url.pathname.replace(/\/$/, "") + "/socket.io",
      withCredentials: true, reconnection: false, forceNew: true
    });
  }

  function send(event, data) {
    if (socket && socket.connected) { socket.emit(event, data); }
  }

  function dropSocket() {
    if (socket) { socket.off(); socket.disconnect(); socket = null; }
  }

  function connectTo(nodeUrl) {
    dropSocket();
    socket = openSocket(nodeUrl, root.dataset.namespace);
    bind(socket);
  }

  // The call's server went away, refused us, or handed the call on: ask the app where the
  // call lives now and join it there, without reloading the page.
  function findCall(message) {
    if (left) { return; }
    say(message);
    dropSocket();
    if (pc) { pc.close(); pc = null; }
    fetch(root.dataset.whereUrl, { credentials: "same-origin", cache: "no-store",
                                   headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          if (response.ok) { connectTo(body.socket_url); return; }
          if (response.status === 401 || response.status === 403 || response.status === 404) {
            left = true;  // not a passing trouble: say why and stop
            say(body.error);
            return;
          }
          throw new Error(body.error);
        });
      })
      .catch(retryLater);
  }

  function retryLater() {
    window.setTimeout(function () { findCall(root.dataset.msgLost); }, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  }

  function say(text) { statusEl.textContent = text; }

  function constraints(name) {
    var p = PROFILES[name] || PROFILES.low;
    return { audio: true, video: { width: p.width, height: p.height, frameRate: p.frameRate } };
  }

  function getMedia() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return Promise.resolve(null);
    }
    return navigator.mediaDevices.getUserMedia(constraints(profile)).then(function (stream) {
      localStream = stream;
      document.getElementById("local-video").srcObject = stream;
      return stream;
    }).catch(function () { say(root.dataset.msgNoCamera); return null; });
  }

  function track(kind) {
    if (!localStream) { return null; }
    var list = kind === "audio" ? localStream.getAudioTracks() : localStream.getVideoTracks();
    return list.length ? list[0] : null;
  }

  function videoToSend() { return cameraStandIn || track("video"); }

  function videoTransceiver() {
    if (!pc) { return null; }
    return pc.getTransceivers().find(function (x) { return x.mid === "1"; }) || null;
  }

  // Send `standIn` instead of the camera (null: the camera again), on this connection and
  // the next ones. A connection that sends no video (the page had no camera when it
  // answered) cannot start without a new offer: the page joins again for one (onOffer
  // then sends the stand-in).
  function sendInsteadOfCamera(standIn) {
    cameraStandIn = standIn;
    var x = videoTransceiver();
    if (!x) { return; }
    if (x.direction !== "sendonly" && x.direction !== "sendrecv") {
      if (standIn) { send("join", ids({ profile: profile })); }
      return;
    }
    x.sender.replaceTrack(videoToSend()).then(applySendVideo)
      .catch(function (err) { say(root.dataset.msgError + ": " + err); });
  }

  function limitBitrate(sender) {
    var p = PROFILES[sendProfile] || PROFILES.low;
    var params = sender.getParameters();
    if (!params.encodings || !params.encodings.length) { params.encodings = [{}]; }
    params.encodings[0].maxBitrate = p.maxBitrate;
    params.encodings[0].maxFramerate = p.frameRate;
    params.encodings[0].active = sendVideo;
    sender.setParameters(params).catch(function () { /* older browsers: keep defaults */ });
  }

  // The server forwards our video as we encode it: keep camera and encoder within the
  // profile every receiver can take, so it never has to re-encode us.
  function applySendProfile() {
    var p = PROFILES[sendProfile] || PROFILES.low;
    var t = track("video");
    if (t && t.applyConstraints) {
      t.applyConstraints({ width: p.width, height: p.height, frameRate: p.frameRate })
        .catch(function () { /* the camera keeps its size; the server adapts */ });
    }
    if (pc) {
      pc.getTransceivers().forEach(function (x) { if (x.mid === "1") { limitBitrate(x.sender); } });
    }
  }

  // The encoder stops (and the camera preview goes on) while the server says nobody is
  // shown our video; started again, it sends a keyframe first, which the server waits for.
  function applySendVideo() {
    if (!pc) { return; }
    pc.getTransceivers().forEach(function (x) {
      if (x.mid !== "1" || !x.sender.track) { return; }
      var params = x.sender.getParameters();
      if (!params.encodings || !params.encodings.length) { return; }
      params.encodings[0].active = sendVideo;
      x.sender.setParameters(params).catch(function () { /* keeps sending: costs the server only */ });
    });
  }

  function waitForGathering(connection) {
    return new Promise(function (resolve) {
      if (connection.iceGatheringState === "complete") { resolve(); return; }
      var timer = setTimeout(resolve, 3000);
      connection.addEventListener("icegatheringstatechange", function () {
        if (connection.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
  }

  function onOffer(msg) {
    if (pc) { pc.close(); }
    var answered = false;
    if (PROFILES[msg.send_profile]) { sendProfile = msg.send_profile; }
    sendVideo = true;
    pc = new RTCPeerConnection({ iceServers: msg.ice_servers || [], bundlePolicy: "max-bundle" });
    pc.addEventListener("icecandidate", function (event) {
      if (answered && event.candidate) {
        send("candidate", ids({ candidate: event.candidate.candidate,
          sdpMid: event.candidate.sdpMid, sdpMLineIndex: event.candidate.sdpMLineIndex }));
      }
    });
    var connection = pc;
    pc.addEventListener("connectionstatechange", function () {
      if (connection !== pc) { return; }  // an old connection closing
      var state = connection.connectionState;
      if (state === "connected") { say(root.dataset.msgConnected); }
      if (state === "disconnected" && !left) { say(root.dataset.msgReconnecting); }
      if (state === "failed" && !left) {
        say(root.dataset.msgReconnecting);
        send("join", ids({ profile: profile }));
      }
    });
    pc.addEventListener("track", function () { renderPeers(); });
    pc.setRemoteDescription({ type: "offer", sdp: msg.sdp }).then(function () {
      pc.getTransceivers().forEach(function (t) {
        // mids 0 and 1 are where the server listens to us.
        if (t.mid === "0" || t.mid === "1") {
          var mine = t.mid === "0" ? track("audio") : videoToSend();
          if (mine) {
            t.direction = "sendonly";
            t.sender.replaceTrack(mine);
            if (t.mid === "1") { applySendProfile(); }
          }
        }
      });
      return pc.createAnswer();
    }).then(function (answer) {
      return pc.setLocalDescription(answer);
    }).then(function () {
      return waitForGathering(pc);
    }).then(function () {
      answered = true;
      send("answer", ids({ sdp: pc.localDescription.sdp }));
      renderPeers();
      if (startAudioOnly) {  // the check found the link too slow for video
        startAudioOnly = false;
        document.getElementById("audio-only").click();
      }
    }).catch(function (err) { say(root.dataset.msgError + ": " + err); });
  }

  function receiverTrack(mid) {
    if (!pc || mid === null || mid === undefined) { return null; }
    var t = pc.getTransceivers().find(function (x) { return x.mid === mid; });
    return t ? t.receiver.track : null;
  }

  function tileFor(peer) {
    var tile = tiles.querySelector('[data-peer="' + peer.id + '"]');
    if (!tile) {
      tile = template.content.firstElementChild.cloneNode(true);
      tile.dataset.peer = peer.id;
      tiles.appendChild(tile);
    }
    return tile;
  }

  function attach(element, mediaTrack) {
    if (!mediaTrack) { return; }
    var current = element.srcObject && element.srcObject.getTracks()[0];
    if (current !== mediaTrack) { element.srcObject = new MediaStream([mediaTrack]); }
  }

  // A conference forwards only some people's media (the last speakers): a tile for those.
  var forwardedOnly = root.dataset.forwardedOnly === "1";

  function renderPeers() {
    var present = {};
    peers.forEach(function (peer) {
      if (forwardedOnly && !peer.video_mid && !peer.audio_mid) { return; }
      present[peer.id] = true;
      var tile = tileFor(peer);
      tile.classList.toggle("no-video", !peer.video_mid);  // heard, not seen (last-N)
      tile.querySelector(".name").textContent = peer.name;
      tile.querySelector(".state").textContent =
        peer.state === "reconnecting" ? root.dataset.msgReconnecting : "";
      attach(tile.querySelector("video"), receiverTrack(peer.video_mid));
      attach(tile.querySelector("audio"), receiverTrack(peer.audio_mid));
    });
    tiles.querySelectorAll(".tile.remote").forEach(function (tile) {
      if (!present[tile.dataset.peer]) { tile.remove(); }
    });
  }

  function setPeerState(id, state) {
    peers.forEach(function (peer) { if (peer.id === id) { peer.state = state; } });
    renderPeers();
  }

  function addChat(msg) {
    var li = document.createElement("li");
    var who = document.createElement("strong");
    who.textContent = msg.author + ": ";
    li.appendChild(who);
    li.appendChild(document.createTextNode(msg.body));
    document.getElementById("chat-log").appendChild(li);
  }

  function bind(s) {
    s.on("connect", function () {
      retryMs = RETRY_FIRST_MS;
      say(root.dataset.msgConnecting);
      // Also on a new socket: joining again gives a fresh connection to the same call.
      getMedia.done = getMedia.done || getMedia();
      getMedia.done.then(function () {
        if (!left && s === socket) { send("join", ids({ profile: profile })); }
      });
    });
    s.on("disconnect", function () {
      if (s === socket) { findCall(root.dataset.msgLost); }
    });
    s.on("connect_error", function () {
      if (s !== socket) { return; }
      dropSocket();
      say(root.dataset.msgLost);
      retryLater();
    });
    s.on("offer", onOffer);
    s.on("peers", function (msg) { peers = msg.peers; renderPeers(); });
    s.on("peer_state", function (msg) { setPeerState(msg.id, msg.state); });
    s.on("chat", addChat);
    s.on("call_error", function (msg) {
      // The call is held by another server (it moved since this page asked): go there.
      if (msg.moved) { moveTo(msg.node_url); return; }
      say(root.dataset.msgError + ": " + msg.message);
    });
    // This server no longer holds the call (it lost its claim, or is shutting down).
    s.on("call_moved", function (msg) { moveTo(msg.node_url); });
    s.on("send_profile", function (msg) {
      if (PROFILES[msg.profile]) { sendProfile = msg.profile; applySendProfile(); }
    });
    s.on("send_video", function (msg) { sendVideo = msg.send !== false; applySendVideo(); });
    plugins.forEach(function (plugin) { if (plugin.bind) { plugin.bind(s, api); } });
  }

  function moveTo(nodeUrl) {
    if (left) { return; }
    if (pc) { pc.close(); pc = null; }
    say(root.dataset.msgMoving);
    if (nodeUrl) { connectTo(nodeUrl); } else { findCall(root.dataset.msgMoving); }
  }

  // What a plugin may use: the page's socket, connection, own tracks and status line.
  var api = {
    ids: ids, send: send, say: say, track: track, sendInsteadOfCamera: sendInsteadOfCamera,
    peerConnection: function () { return pc; },
    hasLeft: function () { return left; }
  };

  connectTo(root.dataset.socketUrl);

  // Being in a call is activity: media flows outside Socket.IO and the page makes no
  // requests, so both the socket's session and the page's are told now and then, or a long
  // call would reach the idle time-out.
  var keepaliveMs = (parseInt(root.dataset.keepaliveSeconds, 10) || 300) * 1000;
  window.setInterval(function () {
    if (left || !pc) { return; }
    send("keepalive", ids());
    if (root.dataset.keepaliveUrl) {
      fetch(root.dataset.keepaliveUrl, { credentials: "same-origin", cache: "no-store" })
        .catch(function () { /* offline for a moment: the next one will do */ });
    }
  }, keepaliveMs);

  var chatForm = document.getElementById("chat-form");  // not on every room page
  if (chatForm) chatForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var input = document.getElementById("chat-input");
    if (input.value.trim()) {
      send("chat", ids({ body: input.value }));
      input.value = "";
    }
  });
  document.getElementById("toggle-mic").addEventListener("click", function () {
    var t = track("audio");
    if (t) { t.enabled = !t.enabled; }
    send("media", ids({ audio: !!(t && t.enabled) }));
  });
  document.getElementById("toggle-camera").addEventListener("click", function () {
    var t = track("video");
    if (t) { t.enabled = !t.enabled; }
    send("media", ids({ video: !!(t && t.enabled) }));
  });
  var audioOnly = false;
  document.getElementById("audio-only").addEventListener("click", function () {
    audioOnly = !audioOnly;
    var t = track("video");
    if (t) { t.enabled = !audioOnly; }
    send("media", ids({ video: !audioOnly, receive_video: !audioOnly }));
  });
  document.getElementById("profile").addEventListener("change", function (event) {
    profile = event.target.value;
    // The server answers with a send_profile event when what we may send changes.
    send("media", ids({ profile: profile }));
  });
  // Out of the call for good: no rejoin, camera and microphone released.
  function stop() {
    left = true;
    if (pc) { pc.close(); }
    if (localStream) { localStream.getTracks().forEach(function (t) { t.stop(); }); }
    if (cameraStandIn) { cameraStandIn.stop(); }
  }
  api.stop = stop;

  document.getElementById("leave").addEventListener("click", function () {
    send("leave", ids());
    stop();
    say(root.dataset.msgLeft);
  });
}());
