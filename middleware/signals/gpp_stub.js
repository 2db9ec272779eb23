/* consent-gate's __gpp: the GPP 1.1 JavaScript API, answered at once from what the server decided.
   No network, no storage. The server fills DATA: {gppString, sectionList, applicableSections,
   parsedSections, cmpDisplayStatus}. */
(function (DATA) {
  "use strict";
  var w = window, listeners = {}, nextId = 1;
  function ping() {
    return {
      gppVersion: "1.1", cmpStatus: "loaded", cmpDisplayStatus: DATA.cmpDisplayStatus,
      signalStatus: "ready", supportedAPIs: DATA.supportedAPIs, cmpId: 0,
      sectionList: DATA.sectionList, applicableSections: DATA.applicableSections,
      gppString: DATA.gppString, parsedSections: DATA.parsedSections
    };
  }
  function section(name) {
    return Object.prototype.hasOwnProperty.call(DATA.parsedSections, name) ? DATA.parsedSections[name] : null;
  }
  function handle(command, callback, parameter) {
    var data, ok = true;
    switch (command) {
      case "ping": data = ping(); break;
      case "addEventListener":
        var id = nextId++;
        listeners[id] = callback;
        callback({ eventName: "listenerRegistered", listenerId: id, data: true, pingData: ping() }, true);
        callback({ eventName: "signalStatus", listenerId: id, data: "ready", pingData: ping() }, true);
        return;
      case "removeEventListener":
        data = Object.prototype.hasOwnProperty.call(listeners, parameter);
        delete listeners[parameter];
        break;
      case "hasSection": data = section(String(parameter)) !== null; break;
      case "getSection": data = section(String(parameter)); break;
      case "getField":
        var parts = String(parameter).split("."), s = section(parts[0]);
        data = s && parts.length === 2 && Object.prototype.hasOwnProperty.call(s, parts[1]) ? s[parts[1]] : null;
        break;
      default: data = null; ok = false;
    }
    if (typeof callback === "function") callback(data, ok);
  }
  var queued = (typeof w.__gpp === "function" && w.__gpp.queue) || [];
  w.__gpp = function (command, callback, parameter) {
    return handle(command, callback, parameter);
  };
  for (var i = 0; i < queued.length; i++) handle.apply(null, queued[i]);
  /* Partner iframes ask through postMessage and find us by the __gppLocator frame. */
  w.addEventListener("message", function (event) {
    var msg = event.data, call;
    if (typeof msg === "string") { try { msg = JSON.parse(msg); } catch (e) { return; } }
    call = msg && msg.__gppCall;
    if (!call || !event.source) return;
    handle(call.command, function (value, success) {
      event.source.postMessage({ __gppReturn: { returnValue: value, success: success, callId: call.callId } }, "*");
    }, call.parameter);
  });
  if (!w.frames.__gppLocator) {
    var add = function () {
      var f = document.createElement("iframe");
      f.style.display = "none"; f.name = "__gppLocator"; f.title = "GPP locator";
      (document.body || document.documentElement).appendChild(f);
    };
    if (document.body) add(); else document.addEventListener("DOMContentLoaded", add);
  }
})
