// Pre-call check: camera/microphone preview, then a probe connection to the media server
// (same ICE servers as a call) that measures round trip, download and upload over a data
// channel; the server gives the verdict, and calls start with the profile it recommends.
(function () {
  "use strict";
  var root = document.getElementById("check");
  if (!root) { return; }
  var PROFILE_KEY = "telehealth.callProfile";
  var AUDIO_ONLY_KEY = "telehealth.callAudioOnly";
  var CHUNK = 16 * 1024;
  var burst = parseInt(root.dataset.burstBytes, 10);
  var verdictEl = document.getElementById("verdict");
  var lang = document.documentElement.lang || undefined;
  var camera = false;
  var microphone = false;
  var pc = null;
  var channel = null;
  var waiters = {};       // message type -> function called with the next such message
  var onBytes = null;     // set while a download is running

  function show(id, text) { document.getElementById(id).textContent = text; }
  function kbps(bps) { return Math.round(bps / 1000).toLocaleString(lang) + " kbps"; }

  function timeout(promise, ms) {
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () { reject(new Error("timeout")); }, ms);
      promise.then(function (v) { clearTimeout(timer); resolve(v); },
        function (e) { clearTimeout(timer); reject(e); });
    });
  }

  function next(type, ms) {
    return timeout(new Promise(function (resolve) { waiters[type] = resolve; }), ms);
  }

  function onMessage(event) {
    if (typeof event.data !== "string") {
      if (onBytes) { onBytes(event.data.byteLength); }
      return;
    }
    var msg = JSON.parse(event.data);
    var waiter = waiters[msg.type];
    if (waiter) { delete waiters[msg.type]; waiter(msg); }
  }

  function preview() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return Promise.resolve();
    }
    return navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } })
      .then(function (stream) {
        document.getElementById("preview").srcObject = stream;
        camera = stream.getVideoTracks().length > 0;
        microphone = stream.getAudioTracks().length > 0;
      })
      .catch(function () { camera = microphone = false; });
  }

  function gathered(connection) {
    return new Promise(function (resolve) {
      if (connection.iceGatheringState === "complete") { resolve(); return; }
      var timer = setTimeout(resolve, 3000);
      connection.addEventListener("icegatheringstatechange", function () {
        if (connection.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
  }

  function connect() {
    pc = new RTCPeerConnection({ iceServers: JSON.parse(root.dataset.iceServers),
      bundlePolicy: "max-bundle" });
    channel = pc.createDataChannel("probe", { ordered: true });
    channel.binaryType = "arraybuffer";
    channel.addEventListener("message", onMessage);
    var opened = new Promise(function (resolve, reject) {
      channel.addEventListener("open", resolve);
      pc.addEventListener("connectionstatechange", function () {
        if (pc.connectionState === "failed") { reject(new Error("no media path")); }
      });
    });
    return pc.createOffer()
      .then(function (offer) { return pc.setLocalDescription(offer); })
      .then(function () { return gathered(pc); })
      .then(function () {
        return fetch(root.dataset.probeUrl, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "Accept": "application/json",
                     "X-CSRFToken": root.dataset.csrfToken },
          body: JSON.stringify({ sdp: pc.localDescription.sdp })
        });
      })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) { throw new Error(body.error || response.status); }
          return body;
        });
      })
      .then(function (answer) {
        return pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      })
      .then(function () { return timeout(opened, 15000); });
  }

  function pings(count) {
    var samples = [];
    function one(n) {
      var start = performance.now();
      channel.send(JSON.stringify({ type: "ping", n: n }));
      return next("pong", 5000).then(function () { samples.push(performance.now() - start); });
    }
    var chain = Promise.resolve();
    for (var n = 1; n <= count; n += 1) { chain = chain.then(one.bind(null, n)); }
    return chain.then(function () {
      samples.sort(function (a, b) { return a - b; });
      return samples[Math.floor(samples.length / 2)];  // the median: one slow ping is noise
    });
  }

  function download() {
    return new Promise(function (resolve) {
      var received = 0;
      var start = performance.now();
      function end() {
        onBytes = null;
        resolve(received * 8 / (Math.max(1, performance.now() - start) / 1000));
      }
      // A slow link: after 10 s, the rate of what did arrive.
      var timer = setTimeout(end, 10000);
      waiters.download_start = function () { start = performance.now(); };
      onBytes = function (bytes) {
        received += bytes;
        if (received >= burst) { clearTimeout(timer); end(); }
      };
      channel.send(JSON.stringify({ type: "download", bytes: burst }));
    });
  }

  function upload() {
    var chunk = new Uint8Array(CHUNK);
    window.crypto.getRandomValues(chunk);
    var start = performance.now();
    channel.send(JSON.stringify({ type: "upload", bytes: burst }));
    for (var sent = 0; sent < burst; sent += CHUNK) {
      channel.send(chunk.subarray(0, Math.min(CHUNK, burst - sent)));
    }
    return next("upload_done", 10000).then(function (msg) { return msg.up_bps; }, function () {
      // A slow link: what has left this browser so far.
      var gone = burst - channel.bufferedAmount;
      return gone * 8 / ((performance.now() - start) / 1000);
    });
  }

  function remember(profile, audioOnly) {
    try {
      window.localStorage.setItem(PROFILE_KEY, profile);
      window.localStorage.setItem(AUDIO_ONLY_KEY, audioOnly ? "1" : "");
      document.getElementById("remembered").hidden = false;
    } catch (e) { /* private mode: calls start with the default */ }
  }

  function conclude(verdict, text) {
    var kind = { standard: "video", low: "video", audio: "audio" }[verdict] || "written";
    if (!camera || !microphone) { text = root.dataset.msgNoCamera + " " + text; }
    verdictEl.textContent = text;
    verdictEl.dataset.profile = kind === "video" ? verdict : "low";
    verdictEl.dataset.verdict = kind;  // set last: tests wait for it
    show("quality", kind === "audio" ? root.dataset.labelAudio
      : verdictEl.dataset.profile === "standard" ? root.dataset.labelStandard
        : root.dataset.labelLow);
    remember(verdictEl.dataset.profile, kind === "audio");
    if (channel && channel.readyState === "open") { channel.send(JSON.stringify({ type: "bye" })); }
    if (pc) { setTimeout(function () { pc.close(); }, 200); }
  }

  var rtt = 0;
  var down = 0;
  var connected = false;
  preview()
    .then(function () { verdictEl.textContent = root.dataset.msgConnecting; return connect(); })
    .then(function () {
      connected = true;
      verdictEl.textContent = root.dataset.msgMeasuring;
      return pings(5);
    })
    .then(function (ms) { rtt = ms; show("rtt", Math.round(ms).toLocaleString(lang) + " ms");
      return download(); })
    .then(function (bps) { down = bps; show("down", kbps(bps)); return upload(); })
    .then(function (up) {
      show("up", kbps(up));
      channel.send(JSON.stringify({ type: "result", rtt_ms: rtt, down_bps: down, up_bps: up,
                                    camera: camera }));
      return next("verdict", 5000);
    })
    .then(function (msg) {
      show("up", kbps(msg.up_bps));
      var key = "msg" + msg.verdict.charAt(0).toUpperCase() + msg.verdict.slice(1);
      conclude(msg.verdict, root.dataset[key]);
    })
    .catch(function () {
      // Connected but the measuring did not finish in time: too slow for a call.
      conclude("written", connected ? root.dataset.msgWritten : root.dataset.msgNoConnection);
    });
}());
