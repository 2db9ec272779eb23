/* late.js: a first-party script that adds a third-party tag at runtime.
 *
 * consent-gate's server-side rewriter only sees the HTML the app sends; it cannot see
 * tags that JavaScript creates later. This file is served from our own origin (so the
 * rewriter rightly leaves it alone) and, once it runs, appends the Facebook pixel
 * loader to the DOM. Only the Content-Security-Policy header can stop that request.
 *
 * Results are exposed for tests:
 *   window.__lateScript = {status: "pending"|"loaded"|"error", cspBlocked: bool, url}
 *   #late-status[data-status] and #optin-status[data-status] on /embeds
 */
(function () {
  "use strict";
  var url = "https://connect.facebook.net/en_US/fbevents.js";
  var state = { status: "pending", cspBlocked: false, url: url };
  window.__lateScript = state;

  function show() {
    var el = document.getElementById("late-status");
    if (el) {
      var s = state.cspBlocked ? "blocked-by-csp" : state.status;
      el.setAttribute("data-status", s);
      el.textContent = "late.js: " + url + " \u2192 " + s;
    }
    var opt = document.getElementById("optin-status");
    if (opt) {
      var ran = window.__adsOptIn === true;
      opt.setAttribute("data-status", ran ? "ran" : "inert");
      opt.textContent = "Opt-in snippet: " + (ran ? "ran (ads granted)" : "inert (ads not granted)");
    }
  }

  document.addEventListener("securitypolicyviolation", function (e) {
    if (e.blockedURI && e.blockedURI.indexOf("connect.facebook.net") !== -1) {
      state.cspBlocked = true;
      show();
    }
  });

  function inject() {
    var s = document.createElement("script");
    s.async = true;
    s.src = url;
    s.onload = function () { state.status = "loaded"; show(); };
    s.onerror = function () { state.status = "error"; show(); };
    document.head.appendChild(s);
    show();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", inject);
  } else {
    inject();
  }
})();
