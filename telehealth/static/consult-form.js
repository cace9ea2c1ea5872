/* The new-consult form on a link that drops: what is typed is kept on this computer until the
   consult is made; photos are made smaller before they are sent (1600 px on the long side,
   unless full size is asked for); sending shows its progress, and a failed send can simply be
   sent again (the form's submission key makes it one consult). */
(function () {
  "use strict";
  var form = document.getElementById("consult-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) { return; }
  var storeKey = "draft:" + form.dataset.draft;
  var status = document.getElementById("send-status");
  var bar = document.getElementById("send-progress");
  var label = status.querySelector("span");
  var LONG_SIDE = 1600;

  function kept() {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.name && el.name !== "csrf_token" && el.type !== "file" && el.type !== "submit";
    });
  }
  function save() {
    var draft = {};
    kept().forEach(function (el) {
      if (el.type === "checkbox" || el.type === "radio") {
        draft[el.name] = draft[el.name] || [];
        if (el.checked) { draft[el.name].push(el.value); }
      } else { draft[el.name] = el.value; }
    });
    try { localStorage.setItem(storeKey, JSON.stringify(draft)); } catch (e) { /* full */ }
  }
  function restore() {
    var draft = null;
    try { draft = JSON.parse(localStorage.getItem(storeKey) || "null"); } catch (e) { draft = null; }
    if (!draft) { return; }
    kept().forEach(function (el) {
      if (!Object.prototype.hasOwnProperty.call(draft, el.name)) { return; }
      var value = draft[el.name];
      if (el.type === "checkbox" || el.type === "radio") { el.checked = value.indexOf(el.value) >= 0; }
      else { el.value = value; }
    });
  }
  function forget() { try { localStorage.removeItem(storeKey); } catch (e) { /* ignore */ } }
  function say(text, progress) {
    status.hidden = false;
    label.textContent = text;
    if (progress === null) { bar.removeAttribute("value"); } else { bar.value = progress; }
  }

  function shrink(file) {
    var full = form.elements.full_size && form.elements.full_size.checked;
    if (full || !/^image\/(jpeg|png)$/.test(file.type) || !window.createImageBitmap) {
      return Promise.resolve(file);
    }
    return createImageBitmap(file, { imageOrientation: "from-image" }).then(function (img) {
      var scale = Math.min(1, LONG_SIDE / Math.max(img.width, img.height));
      if (scale === 1 && file.size < 600 * 1024) { return file; }
      var canvas = document.createElement("canvas");
      canvas.width = Math.round(img.width * scale);
      canvas.height = Math.round(img.height * scale);
      var pen = canvas.getContext("2d");
      pen.fillStyle = "#fff";  // a transparent PNG becomes a photo on white
      pen.fillRect(0, 0, canvas.width, canvas.height);
      pen.drawImage(img, 0, 0, canvas.width, canvas.height);
      return new Promise(function (resolve) {
        canvas.toBlob(function (blob) {
          if (!blob || blob.size >= file.size) { resolve(file); return; }
          resolve(new File([blob], file.name.replace(/\.[^.]*$/, "") + ".jpg",
                           { type: "image/jpeg" }));
        }, "image/jpeg", 0.82);
      });
    }).catch(function () { return file; });
  }

  function send(body, buttons) {
    var request = new XMLHttpRequest();
    request.open("POST", form.getAttribute("action") || location.href);
    request.upload.onprogress = function (event) {
      if (event.lengthComputable) { say(form.dataset.sending, Math.round(100 * event.loaded / event.total)); }
    };
    request.onload = function () {
      if (request.status < 400 && request.responseURL && request.responseURL !== location.href) {
        forget();  // the consult exists: the draft has done its job
      }
      // Show the page the server answered with (the new consult with its "sent" message, or
      // this form again saying what to fix), at its own address.
      if (request.responseURL) { history.replaceState(null, "", request.responseURL); }
      document.open();
      document.write(request.responseText);
      document.close();
    };
    request.onerror = request.ontimeout = function () {
      say(form.dataset.offline, 0);
      buttons.forEach(function (button) { button.disabled = false; });
    };
    request.send(body);
  }

  restore();
  form.addEventListener("input", save);
  form.addEventListener("change", save);
  save();  // keeps the submission key with the draft from the first moment
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var buttons = Array.prototype.slice.call(form.querySelectorAll("[type=submit]"));
    buttons.forEach(function (button) { button.disabled = true; });
    var body = new FormData(form);
    if (event.submitter && event.submitter.name) { body.append(event.submitter.name, event.submitter.value); }
    var files = body.getAll("attachments").filter(function (file) { return file && file.name; });
    body.delete("attachments");
    say(form.dataset.preparing, null);
    Promise.all(files.map(shrink)).then(function (smaller) {
      smaller.forEach(function (file) { body.append("attachments", file, file.name); });
      send(body, buttons);
    });
  });
}());
