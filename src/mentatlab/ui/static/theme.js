// Light or dark theme: the choice stored in localStorage, else the system's
// (prefers-color-scheme). Loaded in <head> so the page never flashes the other theme.
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
