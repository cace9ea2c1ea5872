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

  media.then(function () { return timed(url); })            // warm-up
    .then(function () { return timed(url); })
    .then(function (ms) {
      // A 64 kB download: its time is mostly transfer on a slow link, mostly RTT on a fast one.
      var rtt = ms; var kbps = (bytes * 8) / ms;
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
