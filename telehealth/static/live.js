/* The smallest Socket.IO client the live notices need (Engine.IO 4 over a WebSocket, one
   namespace, events in only): about 1 KB instead of the 47 KB full client. A page without
   WebSocket support simply gets no live notices; reloading shows everything. */
(function () {
  "use strict";
  window.io = function (nsp) {
    var handlers = {}, ws = null, retry = 1000, timer = null, stopped = false, limit = 60000;
    function emit(name, data) { (handlers[name] || []).forEach(function (fn) { fn(data); }); }
    function watchdog() {
      clearTimeout(timer);
      timer = setTimeout(function () { if (ws) { ws.close(); } }, limit);
    }
    function open() {
      var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
        "/socket.io/?EIO=4&transport=websocket";
      ws = new WebSocket(url);
      ws.onmessage = function (message) {
        var data = String(message.data), type = data.charAt(0);
        watchdog();
        if (type === "0") {
          var info = JSON.parse(data.slice(1));
          limit = info.pingInterval + info.pingTimeout + 5000;
          ws.send("40" + nsp + ",");
        } else if (type === "2") {
          ws.send("3");
        } else if (type === "4") {
          var packet = data.charAt(1), body = data.slice(2);
          if (body.indexOf(nsp + ",") !== 0) { return; }
          body = body.slice(nsp.length + 1);
          if (packet === "0") { retry = 1000; emit("connect"); }
          else if (packet === "2") { var args = JSON.parse(body); emit(args[0], args[1]); }
          else if (packet === "1" || packet === "4") { stopped = true; ws.close(); }
        }
      };
      ws.onclose = function () {
        clearTimeout(timer);
        emit("disconnect");
        if (!stopped) { setTimeout(open, retry); retry = Math.min(retry * 2, 30000); }
      };
    }
    open();
    return { on: function (name, fn) { (handlers[name] = handlers[name] || []).push(fn); } };
  };
}());
