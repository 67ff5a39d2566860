// Table helpers shared by the dashboard's views: cells, a one-row message, times.
import { formatInstant, formatMoney } from "./chart.js";

// Append a <td> with `text` (never HTML), an optional class and hover title.
export function cell(row, text, className = "", title = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) {
    td.className = className;
  }
  if (title) {
    td.title = title;
  }
  row.append(td);
  return td;
}

// Replace a table body with one row spanning `span` columns saying `text`.
export function message(body, text, span) {
  const tr = document.createElement("tr");
  cell(tr, text, "muted").colSpan = span;
  body.replaceChildren(tr);
}

// An ISO-8601 instant as "YYYY-MM-DD HH:MM" in the display time zone (<html data-tz>,
// UTC by default; chart.js displayZone); "—" when absent. `seconds` adds ":SS".
export function when(iso, seconds = false) {
  if (!iso) {
    return "—";
  }
  return formatInstant(iso, seconds);
}

// A money cell: the amount with its currency, the exact decimal on hover.
export function moneyCell(row, value, currency, className = "num") {
  const shown = formatMoney(value, currency);
  return cell(row, shown.text, className, shown.title);
}
