// Pre-call check: camera/microphone preview, round trip and download speed, a verdict.
(function () {
  "use strict";
  var root = document.getElementById("check");
  if (!root) { return; }
  var url = root.dataset.probeUrl;
  var bytes = parseInt(root.dataset.probeBytes, 10);
  var hasMedia = false;

  function timed(u) {
    var start = performance.now();
    return fetch(u + "?t=" + Math.random(), { cache: "no-store" })
      .then(function (r) { return r.arrayBuffer(); })
      .then(function () { return performance.now() - start; });
  }

  var media = navigator.mediaDevices && navigator.mediaDevices.getUserMedia
    ? navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } })
      .then(function (s) { document.getElementById("preview").srcObject = s; hasMedia = true; })
      .catch(function () { hasMedia = false; })
    : Promise.resolve();

  var rtt = 0;
  var ping = root.dataset.pingUrl;
  media.then(function () { return timed(ping); })           // warm-up (connection set-up)
    .then(function () { return timed(ping); })
    .then(function (a) { return timed(ping).then(function (b) { rtt = Math.min(a, b); }); })
    .then(function () { return timed(url); })
    .then(function (ms) {
      // The download's time less one round trip is the transfer itself.
      var kbps = (bytes * 8) / Math.max(1, ms - rtt);
      document.getElementById("rtt").textContent = Math.round(rtt) + " ms";
      document.getElementById("throughput").textContent = Math.round(kbps) + " kbps";
      var verdict = "written";
      if (hasMedia && kbps >= 300 && rtt < 800) { verdict = "video"; }
      else if (kbps >= 64) { verdict = "audio"; }
      var text = { video: root.dataset.msgVideo, audio: root.dataset.msgAudio,
                   written: root.dataset.msgWritten }[verdict];
      if (!hasMedia) { text = root.dataset.msgNoCamera + " " + text; }
      document.getElementById("verdict").textContent = text;
      document.getElementById("verdict").dataset.verdict = verdict;
    });
}());
