// The models view: unpriced models of the range (/api/v1/unpriced) with a pricing.toml
// snippet each, and the prices in force (/api/v1/prices). `?q=` narrows both tables.
import { fetchApi, formatCount } from "./chart.js";
import { cell, message, moneyCell, when } from "./table.js";

const view = document.getElementById("models");
const { api, start, end, filter, search, sort } = view.dataset;
const needle = (search || "").toLowerCase();

function matches(...names) {
  return !needle || names.some((n) => String(n || "").toLowerCase().includes(needle));
}

// TOML basic strings: quote and backslash escaped
function tomlString(text) {
  return `"${String(text).replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

// the API answers most spans first; the page may ask for another order (?sort=)
const ORDERS = {
  spans: () => 0,
  model: (a, b) => `${a.provider}/${a.model}`.localeCompare(`${b.provider}/${b.model}`),
  last_seen: (a, b) => b.last_seen.localeCompare(a.last_seen),
};

function fillUnpriced(models) {
  const body = view.querySelector("#unpriced tbody");
  const shown = models.filter((m) => matches(m.provider, m.model))
    .sort(ORDERS[sort] || ORDERS.spans);
  document.getElementById("all-priced").hidden = models.length > 0;
  document.getElementById("how-to-price").hidden = shown.length === 0;
  if (shown.length === 0) {
    message(body, models.length ? "No unpriced model matches the search." : "None.", 7);
    return;
  }
  body.replaceChildren();
  const snippets = [];
  for (const m of shown) {
    const tr = document.createElement("tr");
    cell(tr, m.provider || "(none)", m.provider ? "" : "muted");
    cell(tr, m.model, "name", m.model);
    cell(tr, formatCount(m.num_spans), "num");
    cell(tr, formatCount(m.input_tokens), "num");
    cell(tr, formatCount(m.output_tokens), "num wide-only");
    cell(tr, when(m.first_seen), "wide-only");
    cell(tr, when(m.last_seen), "wide-only");
    body.append(tr);
    snippets.push([
      "[[models]]",
      `provider = ${tomlString(m.provider || "*")}`,
      `model = ${tomlString(m.model)}`,
      'input_per_mtok = "0.00"   # USD per million input tokens',
      'output_per_mtok = "0.00"  # USD per million output tokens',
    ].join("\n"));
  }
  document.getElementById("pricing-snippet").textContent = snippets.join("\n\n");
}

function fillPrices(prices) {
  const currency = (prices.currency && prices.currency.code) || "USD";
  const tokens = prices.token_prices || {};
  document.getElementById("token-source").textContent =
    `Token prices: ${tokens.price_source || tokens.source || "—"}` +
    (tokens.snapshot ? ` (saved snapshot ${tokens.snapshot})` : " (the data bundled with it)") +
    `, overridden by ${prices.pricing_file || "pricing.toml"} where it names a model.`;
  document.getElementById("pricing-file").textContent = prices.pricing_file || "pricing.toml";
  const body = view.querySelector("#model-prices tbody");
  const models = (prices.models || []).filter((m) => matches(m.provider, m.model));
  if (models.length === 0) {
    message(body, prices.models && prices.models.length
      ? "No price of yours matches the search." : "None: every token price comes from genai-prices.", 7);
  } else {
    body.replaceChildren();
    for (const m of models) {
      const tr = document.createElement("tr");
      cell(tr, m.provider);
      cell(tr, m.model, "name", m.model);
      moneyCell(tr, m.input_per_mtok, "USD");
      moneyCell(tr, m.output_per_mtok, "USD");
      moneyCell(tr, m.cache_read_per_mtok, "USD", "num wide-only");
      moneyCell(tr, m.cache_write_per_mtok, "USD", "num wide-only");
      moneyCell(tr, m.per_request, "USD", "num wide-only");
      body.append(tr);
    }
  }
  const infra = prices.infrastructure || {};
  const defaults = infra.defaults || {};
  document.getElementById("infra-source").textContent = infra.priced === false
    ? "Infrastructure is not charged (every rate is 0)."
    : `Shipped defaults ${defaults.in_use ? `in use (${defaults.price_source})` : "off"}; ` +
      `displayed in ${currency}, rates are USD.`;
  const rates = [...(infra.rates || []), ...(infra.gpu_models || [])];
  const rateBody = view.querySelector("#infra-rates tbody");
  rateBody.replaceChildren();
  for (const r of rates) {
    const tr = document.createElement("tr");
    cell(tr, r.key, "name", r.match ? `matches ${r.match.join(", ")}` : r.key);
    moneyCell(tr, r.value, r.currency || "USD");
    cell(tr, r.unit);
    const source = cell(tr, "", "name wide-only");
    if (r.source && r.source.provider) {
      source.textContent = `${r.source.provider}, ${r.source.taken || ""}`;
      source.title = [r.source.product, r.source.region, r.source.url].filter(Boolean).join(" · ");
    } else {
      source.textContent = r.origin || "—";
    }
    rateBody.append(tr);
  }
  if (rates.length === 0) {
    message(rateBody, "No infrastructure rate.", 4);
  }
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = `Could not load the models: ${error.message}`;
  box.hidden = false;
  for (const body of view.querySelectorAll("tbody")) {
    body.replaceChildren();
  }
  document.getElementById("token-source").textContent = "";
}

async function load() {
  const [unpriced, prices] = await Promise.all([
    fetchApi(api, "/unpriced", { start, end, filter }),
    fetchApi(api, "/prices", {}),
  ]);
  fillUnpriced(unpriced.rows);
  fillPrices(prices);
}

load()
  .catch(showError)
  .finally(() => view.setAttribute("aria-busy", "false"));
