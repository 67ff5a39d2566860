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

  // The display time zone chosen in the bar (shell.js stores "browser" or a zone name, and
  // the zone in the mentat_tz cookie the server renders a URL without ?tz= in). "browser"
  // follows the browser: the cookie is brought up to date for the next page.
  var zoneChoice = null;
  try {
    zoneChoice = window.localStorage.getItem("mentat-tz");
  } catch (e) {
    zoneChoice = null;
  }
  if (zoneChoice === "browser") {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("mentat_tz=" + zone) === -1) {
      document.cookie = "mentat_tz=" + zone
        + "; path=/; max-age=31536000; samesite=lax";
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
