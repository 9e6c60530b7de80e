/* gridspawner notebook runs: the results page's live updates, and cancel and delete without a reload.
   Live updates poll runs/rows?since=<cursor>: the server answers with the rows of the runs
   that changed since (and of every run still active: their durations grow), rendered by the
   same template as the page, and a new cursor; this script only swaps those <tbody>s in.
   Polling, not a push channel: one bounded GET every few seconds per open page, through the
   hub's proxy like any request, nothing held open; it pauses while the page is hidden (and
   polls at once when it shows again), waits longer while nothing is active or after errors,
   and each request is aborted after 15 s. No dependencies. */
(function () {
  "use strict";
  var table = document.getElementById("gs-runs");
  if (!table) return;
  var ACTIVE_MS = 2000, IDLE_MS = 15000, MAX_BACKOFF_MS = 60000, TIMEOUT_MS = 15000;
  var url = table.getAttribute("data-gs-rows-url");
  var xsrf = table.getAttribute("data-gs-xsrf");
  var cursor = table.getAttribute("data-gs-cursor");
  var live = document.getElementById("gs-runs-live");
  var errorBox = document.getElementById("gs-runs-error");
  var empty = document.getElementById("gs-runs-empty");
  var timer = null, inFlight = null, failures = 0;

  function anyActive() { return !!table.querySelector("tbody[data-gs-active='1']"); }
  function updateEmpty() { empty.hidden = !!table.querySelector("tbody[data-gs-run]"); }
  function showError(text) { errorBox.textContent = text; errorBox.hidden = !text; }

  function headers(extra) {
    var h = { "X-XSRFToken": xsrf, "Accept": "application/json" };
    for (var k in extra || {}) h[k] = extra[k];
    return h;
  }
  function request(method, target) {
    var ctrl = new AbortController();
    var t = setTimeout(function () { ctrl.abort(); }, TIMEOUT_MS);
    return fetch(target, { method: method, headers: headers(), credentials: "same-origin", signal: ctrl.signal })
      .finally(function () { clearTimeout(t); });
  }

  function apply(rows) {
    var changed = [];
    Object.keys(rows).forEach(function (id) {
      var tpl = document.createElement("template");
      tpl.innerHTML = rows[id];
      var fresh = tpl.content.querySelector("tbody[data-gs-run]");
      if (!fresh) return;
      var old = table.querySelector("tbody[data-gs-run='" + CSS.escape(id) + "']");
      if (old) {
        if (old.getAttribute("data-gs-status") !== fresh.getAttribute("data-gs-status")) changed.push(fresh);
        // keep the focus on the same control when its row is swapped
        var focused = old.contains(document.activeElement) ? document.activeElement.getAttribute("data-gs-action") : null;
        old.replaceWith(fresh);
        if (focused) { var again = fresh.querySelector("[data-gs-action='" + focused + "']"); if (again) again.focus(); }
      } else if (table.getAttribute("data-gs-insert") === "1") {  // a new run: on the first page only
        var first = table.querySelector("tbody[data-gs-run]");
        table.insertBefore(fresh, first || empty);
        changed.push(fresh);
      }
    });
    if (changed.length) {
      live.textContent = changed.map(function (t) {
        var name = t.querySelector(".gs-run-name");
        return (name ? name.firstChild.textContent.trim() : "run") + ": " +
          t.querySelector("[data-gs-status-text]").textContent;
      }).join("; ");
    }
    updateEmpty();
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = null;
    if (!document.hidden) timer = setTimeout(poll, ms);
  }
  function poll() {
    if (inFlight || document.hidden) return;
    var sep = url.indexOf("?") < 0 ? "?" : "&";
    inFlight = request("GET", url + sep + "since=" + encodeURIComponent(cursor))
      .then(function (r) {
        if (!r.ok) throw new Error("the runs could not be read (" + r.status + ")");
        return r.json();
      })
      .then(function (data) {
        failures = 0;
        showError("");
        cursor = data.cursor;
        apply(data.rows || {});
      })
      .catch(function (e) {
        failures += 1;
        if (failures > 2) showError("Live updates paused: " + (e.name === "AbortError" ? "no answer" : e.message) + "; retrying.");
      })
      .finally(function () {
        inFlight = null;
        var base = anyActive() ? ACTIVE_MS : IDLE_MS;
        schedule(Math.min(MAX_BACKOFF_MS, base * Math.pow(2, failures)));
      });
  }

  // cancel and delete are plain form posts (they work without this script); here they
  // become REST calls and the row changes in place, without a reload
  table.addEventListener("submit", function (ev) {
    var btn = ev.target.querySelector("[data-gs-action]");
    if (!btn) return;
    ev.preventDefault();
    if (btn.disabled) return;
    var action = btn.getAttribute("data-gs-action");
    var body = btn.closest("tbody[data-gs-run]");
    var name = body.querySelector(".gs-run-name").firstChild.textContent.trim();
    if (action === "delete" && !window.confirm("Delete the run " + name + " and its notebook?")) return;
    btn.disabled = true;
    request(action === "delete" ? "DELETE" : "POST", btn.getAttribute("data-gs-url"))
      .then(function (r) {
        if (!r.ok) {
          return r.json().catch(function () { return {}; }).then(function (j) {
            throw new Error(j.message || ("status " + r.status));
          });
        }
        showError("");
        if (action === "delete") {
          body.remove();
          live.textContent = name + ": deleted";
          updateEmpty();
          var next = table.querySelector("[data-gs-action]") || document.getElementById("gs-new-run");
          if (next) next.focus();
        } else {
          schedule(0);
        }
      })
      .catch(function (e) {
        btn.disabled = false;
        showError("Could not " + action + " " + name + ": " + e.message);
      });
  });

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { clearTimeout(timer); timer = null; }
    else schedule(0);
  });
  schedule(anyActive() ? ACTIVE_MS : IDLE_MS);
})();
