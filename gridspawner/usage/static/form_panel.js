// The spawn form's cost estimate: price per hour of the current choice, updated as the user
// changes it (prices from #gs-usage-prices, made by gridspawner/usage/pricing.py).
(function () {
  "use strict";
  var out = document.getElementById("gs-usage-cost");
  var dataEl = document.getElementById("gs-usage-prices");
  if (!out || !dataEl) return;
  var prices = JSON.parse(dataEl.textContent);
  var form = document.getElementById("gs-form") || document;
  function val(name) {
    var sel = form.querySelector("select[name='" + name + "']");
    return sel && !sel.disabled ? sel.value : "";
  }
  function num(name) { var v = parseFloat(val(name)); return isFinite(v) ? v : 0; }
  function perGpu() {
    var types = prices.gpuTypes[val("backend")] || {};
    var t = val("gpu_type");
    if (t && types[t] !== undefined) return types[t];
    var gb = val("gpu_memory") || "0";
    if (prices.perGpu[gb] !== undefined) return prices.perGpu[gb];
    return prices.perGpu["0"] || 0;
  }
  function money(x) {
    var digits = x > 0 && x < 0.01 ? 4 : 2;
    return (x.toFixed(digits) + " " + (prices.currency || "")).trim();
  }
  function update() {
    var rate = num("gpus") * perGpu() + num("cpu") * prices.cpuHour + num("memory") * prices.memoryGbHour;
    out.textContent = money(rate) + " per hour";
    out.setAttribute("data-rate", String(rate));
  }
  form.addEventListener("change", function () { window.setTimeout(update, 0); });
  update();
})();
