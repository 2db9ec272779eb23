/* consent-gate banner script: first-party, no external requests.
   Posts the choice with fetch, then reloads so the server logs the disclosures before
   partners load and the page gets a CSP matching the new consent. Without this script
   every form still works as a plain POST + redirect. */
(function () {
  "use strict";
  if (window.consentGateLoaded) { return; }
  window.consentGateLoaded = true;
  var here = location.pathname + location.search;
  var lastButton = null;

  function fill(form) {
    var field = form.querySelector('input[name="return_to"]');
    if (field && !field.value) { field.value = here; }
  }

  document.addEventListener("click", function (ev) {
    var t = ev.target;
    lastButton = t && t.closest ? t.closest("form[data-consent-form] button[name]") : null;
  }, true);

  // In another site's frame the browser would not keep the consent cookie; the server
  // refuses the choice instead of recording a consent the visitor does not have.
  function framedByOtherSite() {
    if (window.top === window.self) { return false; }
    try { return window.top.location.origin !== location.origin; } catch (e) { return true; }
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form || !form.matches || !form.matches("form[data-consent-form]")) { return; }
    fill(form);
    if (!window.fetch || !window.FormData || !window.URLSearchParams) { return; }
    ev.preventDefault();
    var button = ev.submitter || lastButton;
    var data = new URLSearchParams(new FormData(form));
    if (button && button.name) { data.set(button.name, button.value); }
    if (framedByOtherSite()) { data.set("framed", "cross-origin"); }
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    // getAttribute: form.action is shadowed by the buttons named "action".
    fetch(form.getAttribute("action"), {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (r) {
      if (!r.ok) { throw new Error("consent-gate: " + r.status); }
      if (location.hash === "#consent-gate-banner") {  // left by the skip link: drop it
        location.replace(location.pathname + location.search);
      } else {
        location.reload();
      }
    }).catch(function () {
      // Let the browser post the form itself: the server answers with a page or redirect.
      buttons.forEach(function (b) { b.disabled = false; });
      if (button && button.name) {
        var hidden = document.createElement("input");
        hidden.type = "hidden";
        hidden.name = button.name;
        hidden.value = button.value;
        form.appendChild(hidden);
      }
      HTMLFormElement.prototype.submit.call(form);
    });
  });

  function wire() {
    document.querySelectorAll('a[data-consent-action="customize"]').forEach(function (a) {
      a.href = a.pathname + "?return_to=" + encodeURIComponent(here);
    });
    document.querySelectorAll("form[data-consent-form]").forEach(fill);
    // Placeholder sizes, also when the page's CSP drops inline style attributes.
    document.querySelectorAll(".consent-gate-placeholder[data-width]").forEach(function (el) {
      el.style.width = el.getAttribute("data-width");
      el.style.minHeight = el.getAttribute("data-height") || "";
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", wire);
  } else {
    wire();
  }
})();
