// Light or dark theme: the choice stored in localStorage, else the system's
// (prefers-color-scheme); and the remembered display time zone (below). Loaded in <head> so the page never flashes the other theme.
// The toggle sets data-theme on <html> and tells charts through a "mentat:theme" event.
(function () {
  "use strict";
  var KEY = "mentat-theme";
  var root = document.documentElement;
  var stored = null;
  try {
    stored = window.localStorage.getItem(KEY);
  } catch (e) {
    stored = null; // storage disabled: follow the system
  }
  if (stored === "light" || stored === "dark") {
    root.dataset.theme = stored;
  }

  // The display time zone chosen in the bar (shell.js stores "browser" or a zone name):
  // a URL without ?tz= opens in it. The server renders <html data-tz> from the URL, so
  // the page is asked for again with tz= before anything is drawn; a URL naming a zone
  // (a shared link) is shown in that zone and changes nothing stored.
  var zoneChoice = null;
  try {
    zoneChoice = window.localStorage.getItem("mentat-tz");
  } catch (e) {
    zoneChoice = null;
  }
  if (zoneChoice && window.location.search.indexOf("tz=") === -1) {
    var zone = zoneChoice === "browser"
      ? Intl.DateTimeFormat().resolvedOptions().timeZone : zoneChoice;
    var url = new URL(window.location.href);
    if (zone && zone !== (root.dataset.tz || "UTC") && !url.searchParams.has("tz")) {
      url.searchParams.set("tz", zone);
      window.location.replace(url.href);
    }
  }

  function current() {
    if (root.dataset.theme) {
      return root.dataset.theme;
    }
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (!button) {
      return;
    }
    var show = function () {
      button.setAttribute("aria-pressed", String(current() === "dark"));
    };
    show();
    button.addEventListener("click", function () {
      var next = current() === "dark" ? "light" : "dark";
      root.dataset.theme = next;
      try {
        window.localStorage.setItem(KEY, next);
      } catch (e) {
        // not stored: the choice lasts for this page only
      }
      show();
      document.dispatchEvent(new CustomEvent("mentat:theme", { detail: next }));
    });
  });
})();
