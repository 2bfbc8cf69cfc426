// Sorting and filtering for the claims table. The table is complete without this script; it only adds controls.
(function () {
  "use strict";
  var table = document.getElementById("claims-table");
  if (!table || !table.tBodies.length) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  // "only where we differ" only when the input gave verdicts to differ from (data-changed is empty otherwise)
  var comparable = rows.some(function (r) { return r.getAttribute("data-changed") !== ""; });

  // filter controls
  var controls = document.createElement("div");
  controls.className = "controls";
  controls.setAttribute("role", "search");
  controls.innerHTML =
    '<label>Filter <input type="search" id="claims-filter" placeholder="words in claim or evidence"></label>' +
    '<label>Verdict <select id="claims-verdict">' +
    '<option value="">all</option><option value="SUPPORTED">✔ supported</option>' +
    '<option value="CONTRADICTED">✘ contradicted</option><option value="NOT_ENOUGH_INFO">? not enough info</option>' +
    '<option value="NONE">not checked</option></select></label>' +
    (comparable ? '<label><input type="checkbox" id="claims-changed"> only where we differ from the report</label>' : '') +
    '<span id="claims-count" class="muted" aria-live="polite"></span>';
  table.parentNode.parentNode.insertBefore(controls, table.parentNode);
  var text = document.getElementById("claims-filter");
  var verdict = document.getElementById("claims-verdict");
  var changed = document.getElementById("claims-changed");
  var count = document.getElementById("claims-count");

  function applyFilter() {
    var q = text.value.trim().toLowerCase();
    var v = verdict.value;
    var shown = 0;
    rows.forEach(function (r) {
      var ok = (!q || r.textContent.toLowerCase().indexOf(q) !== -1) &&
        (!v || r.getAttribute("data-verdict") === v) &&
        (!changed || !changed.checked || r.getAttribute("data-changed") === "1");
      r.hidden = !ok;
      if (ok) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " claims shown";
  }
  [text, verdict, changed].filter(Boolean).forEach(function (el) {
    el.addEventListener("input", applyFilter);
    el.addEventListener("change", applyFilter);
  });

  // sortable headers
  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  headers.forEach(function (th, col) {
    var kind = th.getAttribute("data-sort");
    if (!kind) { return; }
    var btn = document.createElement("button");
    btn.type = "button";
    btn.className = "sort";
    btn.setAttribute("aria-label", "sort by " + th.textContent.trim());
    th.appendChild(btn);
    th.style.cursor = "pointer";
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var keyed = rows.map(function (r, i) {
        var cell = r.cells[col];
        var raw = cell.getAttribute("data-value");
        if (raw === null) { raw = cell.textContent.trim(); }
        var key = kind === "num" ? (raw === "" ? -Infinity : parseFloat(raw)) : raw.toLowerCase();
        return { r: r, k: key, i: i };
      });
      keyed.sort(function (a, b) {
        if (a.k < b.k) { return asc ? -1 : 1; }
        if (a.k > b.k) { return asc ? 1 : -1; }
        return a.i - b.i;
      });
      keyed.forEach(function (x) { body.appendChild(x.r); });
    });
  });
  applyFilter();
})();
