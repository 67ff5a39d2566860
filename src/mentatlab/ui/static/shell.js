// The shell's bar: the display time zone control (UTC, the browser's, or a named IANA
// zone; remembered in localStorage, see theme.js) and the filter disclosure, which starts
// closed on a phone unless a filter is on.
const TZ_KEY = "mentat-tz";

// Remember the choice ("browser" or a zone name): in localStorage like the theme, and the
// zone in a cookie, so the server renders a URL without ?tz= in it (theme.js keeps the
// cookie of "browser" up to date).
function remember(choice, zone) {
  try {
    window.localStorage.setItem(TZ_KEY, choice);
  } catch (e) {
    // storage disabled: the URL still carries the zone
  }
  document.cookie = `mentat_tz=${zone}; path=/; max-age=31536000; samesite=lax`;
}

function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

function knownZone(name) {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    return true;
  } catch (e) {
    return false;
  }
}

function setUpZone() {
  const form = document.getElementById("tz-form");
  if (!form) {
    return;
  }
  const input = form.elements.tz;
  const list = document.getElementById("tz-zones");
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  for (const zone of zones) {
    if (zone !== "UTC") {
      const option = document.createElement("option");
      option.value = zone;
      list.append(option);
    }
  }
  const browser = document.getElementById("tz-browser");
  browser.textContent = `Browser's zone (${browserZone()})`;
  input.addEventListener("input", () => input.setCustomValidity(""));
  form.addEventListener("submit", (event) => {
    const name = input.value.trim();
    if (!knownZone(name)) {
      event.preventDefault();
      input.setCustomValidity(`Not a time zone: ${name}. Try UTC, Europe/Berlin or Asia/Kolkata.`);
      input.reportValidity();
      return;
    }
    input.value = name;
    remember(form.dataset.choice === "browser" ? "browser" : name, name);
  });
  document.getElementById("tz-utc").addEventListener("click", () => {
    input.value = "UTC";
    form.requestSubmit();
  });
  browser.addEventListener("click", () => {
    input.value = browserZone();
    form.dataset.choice = "browser";
    form.requestSubmit();
  });
}

function setUpDisclosure() {
  const more = document.getElementById("bar-more");
  if (!more) {
    return;
  }
  const filtered = [...more.querySelectorAll(".filters:not(.custom-range):not(.tz-form) input:not([type=hidden]), .filters select")]
    .some((e) => e.value);
  if (window.matchMedia("(max-width: 700px)").matches && !filtered) {
    more.open = false;
  }
}

setUpZone();
setUpDisclosure();
