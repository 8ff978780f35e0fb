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

// explorer: live changes
// The live table ([data-events]) follows the change feed: each event's data is table rows the
// server rendered and escaped, put on top; the table keeps its newest 200 rows.
(function () {
  function follow() {
    var table = document.getElementById("live-table");
    if (!table || !window.EventSource) return;
    var body = document.getElementById("live-rows");
    var status = document.getElementById("live-status");
    var source = new EventSource(table.getAttribute("data-events"));
    source.addEventListener("change", function (event) {
      body.insertAdjacentHTML("afterbegin", event.data);
      while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
      var empty = document.getElementById("live-empty");
      if (empty) empty.remove();
    });
    source.addEventListener("open", function () {
      if (status) status.setAttribute("data-following", "true");
    });
    source.addEventListener("error", function () {
      if (status) status.removeAttribute("data-following");
    });
  }
  document.addEventListener("DOMContentLoaded", follow);
})();

// explorer: time slider and query console
// - A range with [data-autosubmit] shows its stop as it moves and submits its form on release.
// - The query console's filter builder fills the JSON in the page instead of a round trip.
(function () {
  document.addEventListener("input", function (event) {
    var range = event.target.closest("input[data-autosubmit]");
    var out = range && document.querySelector("output[for='" + range.id + "']");
    if (out) out.textContent = String(Number(range.value) + 1);
  });
  document.addEventListener("change", function (event) {
    var range = event.target.closest("input[data-autosubmit]");
    if (range && range.form) range.form.requestSubmit();
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("#query-build");
    var area = document.getElementById("query-q");
    if (!button || !area) return;
    var field = document.getElementById("query-field").value.trim();
    var op = document.getElementById("query-op").value;
    var text = document.getElementById("query-value").value.trim();
    var body;
    try { body = area.value.trim() ? JSON.parse(area.value) : {}; } catch (e) { return; }
    if (!field || typeof body !== "object" || body === null || Array.isArray(body)) return;
    // Without a usable body the button submits, and the server says what is wrong.
    event.preventDefault();
    var operand = function (t) { try { return JSON.parse(t); } catch (e) { return t.trim(); } };
    if (op === "text") {
      body.text_search = { field: field, query: text, highlight: true };
    } else {
      var value = op === "exists" ? null : operand(text);
      if (op === "in" && !Array.isArray(value)) value = text.split(",").map(operand);
      body.filter = { field: field, op: op, value: value };
    }
    area.value = JSON.stringify(body, null, 2);
    area.focus();
  });
})();
