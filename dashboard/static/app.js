// KoruDelta Cloud dashboard: small enhancements on top of pages that work without JavaScript.
// - Copy buttons ([data-copy] names the element whose text is copied).
// - Forms with [data-confirm] ask before submitting; submitted forms disable their buttons.
// - A page whose <main> has [data-live] refetches itself every 2 s and swaps in the new <main>
//   until its live key changes to nothing (the cluster settled).
"use strict";

(function () {
  function announce(button, text) {
    var status = document.getElementById(button.getAttribute("data-copy") + "-copied");
    if (status) {
      status.textContent = text;
      setTimeout(function () { status.textContent = ""; }, 2500);
    }
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-http pages (a local dev server on another host) have no clipboard API.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand("copy");
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    copyText(source.textContent).then(
      function () { button.textContent = "Copied"; announce(button, "Copied to the clipboard"); },
      function () { announce(button, "Select the text and copy it by hand"); }
    );
    setTimeout(function () { button.textContent = "Copy"; }, 2500);
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    // After the browser has taken the submission, so the button's own value still goes along.
    setTimeout(function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) {
        b.disabled = true;
        b.setAttribute("aria-busy", "true");
      });
    }, 0);
  });

  function followLive() {
    var main = document.querySelector("main[data-live]");
    if (!main) return;
    var url = main.getAttribute("data-live-url") || window.location.pathname;
    setTimeout(function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html === null) return followLive();
          var next = new DOMParser().parseFromString(html, "text/html").querySelector("main");
          if (!next) return followLive();
          if (next.getAttribute("data-live") !== main.getAttribute("data-live")) {
            main.replaceWith(next);
          }
          followLive();
        })
        .catch(followLive);
    }, 2000);
  }

  document.addEventListener("DOMContentLoaded", followLive);
})();
