/* gridspawner spawn form: progressive enhancement only; the form works without it.
   Hides images that do not run on the chosen backend, shows that backend's capacity,
   disables GPU counts / VRAM classes that cannot fit there now (saying why), offers the
   chosen backend's GPU types and hosts only, fills and locks the fields a chosen profile sets, and
   runs the data mounts editor (add/remove rows, inputs for the chosen type).
   Which selects there are and what each is (its widget) come from the server's field
   registry, and so do the words that say why GPUs do not fit (data.fields, data.backends,
   data.noFit): this script has no field list and no capacity wording of its own.
   No dependencies. */
(function () {
  "use strict";
  var root = document.getElementById("gs-form");
  var dataEl = document.getElementById("gs-form-data");
  if (!root || !dataEl || root.getAttribute("data-gs-ready")) return;
  root.setAttribute("data-gs-ready", "1");
  var data = JSON.parse(dataEl.textContent);
  var FIELDS = data.fields.map(function (f) { return f.name; });
  var el = {};
  FIELDS.forEach(function (f) { el[f] = root.querySelector("select[name='" + f + "']"); });
  // the field of each of these widgets: its name (`nameOf`), its select (`the`; null when not shown)
  var nameOf = {};
  data.fields.forEach(function (f) { if (!(f.widget in nameOf)) nameOf[f.widget] = f.name; });
  var the = {
    backend: el[nameOf.backend] || null,
    image: el[nameOf.image] || null,
    gpus: el[nameOf.gpu_count] || null,
    memory: el[nameOf.gpu_memory] || null
  };
  var perBackendFields = data.fields.filter(function (f) { return f.perBackend; });
  var saved = {};

  function choice() {
    var r = root.querySelector("input[name='profile']:checked");
    var key = r ? r.value : data.initial;
    return data.choices[key] || data.choices[""] || { fixed: [], values: {}, maxGpus: 0 };
  }
  function has(sel, value) {
    for (var i = 0; i < sel.options.length; i++) if (sel.options[i].value === value) return true;
    return false;
  }
  function setValue(sel, value) { if (sel && value !== undefined && has(sel, value)) sel.value = value; }
  function part(f, selector) {
    var box = root.querySelector("[data-gs-field='" + f + "']");
    return box ? box.querySelector(selector) : null;
  }
  function selectedOption(sel) { return sel && sel.selectedIndex >= 0 ? sel.options[sel.selectedIndex] : null; }

  function applyChoice(initial) {
    var c = choice();
    FIELDS.forEach(function (f) {
      var sel = el[f];
      if (!sel) return;
      var locked = c.fixed.indexOf(f) >= 0;
      if (locked) {
        if (!isLocked(sel)) saved[f] = sel.value;
        setValue(sel, c.values[f]);
        lock(sel, true);
      } else {
        if (isLocked(sel)) {
          lock(sel, false);
          if (f in saved) setValue(sel, saved[f]);
        }
        if (!initial && f in c.values) setValue(sel, c.values[f]);
      }
      var note = part(f, "[data-gs-lock]");
      if (note) note.hidden = !locked;
    });
    filter(c);
  }

  // A field the chosen profile sets is locked, not disabled: it stays focusable and its
  // value is read out ("Set by the chosen profile" in its description); it is submitted,
  // and the server ignores a profile's fields (the _fixed.* inputs). Keys other than Tab
  // and pointer clicks cannot change it; a change that gets through is undone.
  function isLocked(sel) { return sel.getAttribute("aria-disabled") === "true"; }
  function lock(sel, on) {
    if (on) { sel.setAttribute("aria-disabled", "true"); sel.classList.add("gs-locked"); }
    else { sel.removeAttribute("aria-disabled"); sel.classList.remove("gs-locked"); }
  }
  root.addEventListener("keydown", function (e) {
    if (e.target.tagName === "SELECT" && isLocked(e.target) && e.key !== "Tab") e.preventDefault();
  });
  root.addEventListener("mousedown", function (e) {
    if (e.target.tagName === "SELECT" && isLocked(e.target)) e.preventDefault();
  });

  function show(opt, visible) {
    if (opt.getAttribute("data-invalid")) return;  // a rejected value stays visible
    opt.hidden = !visible;
    opt.disabled = !visible;
  }
  function ensureVisible(sel) {
    var cur = selectedOption(sel);
    if (!cur || !cur.hidden || isLocked(sel)) return;
    for (var i = 0; i < sel.options.length; i++) {
      if (!sel.options[i].hidden) { sel.selectedIndex = i; return; }
    }
  }

  function filter(c) {
    c = c || choice();
    var kind = null;
    if (the.backend) {
      var bv = c.values[nameOf.backend];
      Array.prototype.forEach.call(the.backend.options, function (o) {
        show(o, o.getAttribute("data-policy") === "1" || o.value === bv);
      });
      ensureVisible(the.backend);
      var b = selectedOption(the.backend);
      kind = b ? b.getAttribute("data-kind") : null;
      var cap = part(nameOf.backend, "[data-gs-capacity]");
      if (cap && b) {
        cap.textContent = b.getAttribute("data-summary") || "";
        cap.setAttribute("data-state", b.getAttribute("data-state") || "");
      }
      var help = part(nameOf.backend, "[data-gs-help]");
      if (help && b) help.textContent = b.getAttribute("data-description") || "";
      var sep = part(nameOf.backend, ".gs-sep");
      if (sep) sep.hidden = !(b && b.getAttribute("data-description"));
      data.fields.forEach(function (f) {  // where the backend does not enforce a choice (CPU, memory)
        if (!f.limitsNote) return;
        var h = part(f.name, "[data-gs-help]");
        if (h && b) h.textContent = b.getAttribute("data-limits-note") || "";
      });
    }
    if (the.image) {
      var iv = c.values[nameOf.image];
      Array.prototype.forEach.call(the.image.options, function (o) {
        var kinds = (o.getAttribute("data-kinds") || "").split(" ");
        var allowed = o.getAttribute("data-policy") === "1" || o.value === iv;
        show(o, allowed && (kind === null || kinds.indexOf(kind) >= 0));
      });
      ensureVisible(the.image);
      var img = selectedOption(the.image);
      var ihelp = part(nameOf.image, "[data-gs-help]");
      if (ihelp) ihelp.textContent = img ? img.getAttribute("data-description") || "" : "";
    }
    perBackendAll(c);
    fit(c);
  }

  // The options of a per-backend field (GPU type, host) belong to one backend each
  // (data-backend); its "Any …" option (value "") to all.
  function currentBackend(c) {
    if (the.backend) return the.backend.value;
    if (c.values[nameOf.backend]) return c.values[nameOf.backend];
    var keys = Object.keys(data.backends);
    return keys.length === 1 ? keys[0] : null;
  }
  function gpuCount(c) {
    return the.gpus ? parseInt(the.gpus.value, 10) : parseInt(c.values[nameOf.gpu_count] || "0", 10);
  }
  // Show the options of `sel` that belong to the chosen backend (and those of none);
  // returns how many of the backend's own there are.
  function perBackend(sel, c) {
    var backend = currentBackend(c);
    var offered = 0;
    Array.prototype.forEach.call(sel.options, function (o) {
      var b = o.getAttribute("data-backend");
      var mine = !b || b === backend;
      if (b && mine) offered++;
      show(o, mine);
      if (!o.getAttribute("data-invalid")) o.textContent = o.getAttribute("data-label") || o.textContent;
    });
    var cur = selectedOption(sel);
    if (cur && cur.hidden && !isLocked(sel)) {
      // the same key on the chosen backend, else the first ("Any ...")
      for (var i = 0; i < sel.options.length; i++) {
        var o = sel.options[i];
        if (!o.hidden && o.value === cur.value) { sel.selectedIndex = i; break; }
      }
      ensureVisible(sel);
    }
    return offered;
  }
  function perBackendAll(c) {
    c = c || choice();
    var count = gpuCount(c);
    perBackendFields.forEach(function (f) {
      var s = el[f.name];
      if (!s) return;
      var offered = perBackend(s, c);
      var box = root.querySelector("[data-gs-field='" + f.name + "']");
      // hidden where the backend offers no such choice (or it means nothing without GPUs),
      // unless it carries an error to show
      if (box) box.hidden = (!offered || (f.onlyWithGpus && !(count > 0))) && !s.classList.contains("is-invalid");
    });
  }

  // Why `count` GPUs of memory class `ci` do not fit backend `b`: the server's words
  // (Capacity.fits), for every count that does not fit; "" where it fits or is not known.
  function reason(b, count, ci) {
    if (!b || count <= 0 || ci < 0 || !b.reasons[ci]) return "";
    return b.reasons[ci][count] || "";
  }
  function mark(opt, why) {
    if (opt.getAttribute("data-invalid")) return;
    var label = opt.getAttribute("data-label") || opt.textContent;
    // the selected option's reason is shown below the fields (a closed select cuts it off)
    opt.textContent = why && !opt.selected ? label + " \u2014 " + why : label;
    opt.disabled = !!why && !opt.selected;  // never drop the current value from the submission
  }

  function fit(c) {
    c = c || choice();
    var b = the.backend ? data.backends[the.backend.value] : null;
    if (!b && the.backend === null) {
      var keys = Object.keys(data.backends);
      if (c.values[nameOf.backend]) b = data.backends[c.values[nameOf.backend]];
      else if (keys.length === 1) b = data.backends[keys[0]];
    }
    var count = gpuCount(c);
    if (isNaN(count)) count = 0;
    var gb = the.memory ? parseInt(the.memory.value, 10) : parseInt(c.values[nameOf.gpu_memory] || "0", 10);
    var ci = data.classes.indexOf(isNaN(gb) ? 0 : gb);
    if (ci < 0) ci = 0;
    var note = "";
    if (the.gpus) {
      Array.prototype.forEach.call(the.gpus.options, function (o) {
        var n = parseInt(o.value, 10);
        var over = n > c.maxGpus;
        var why = over ? "more than the " + c.maxGpus + " allowed here" : reason(b, n, ci);
        mark(o, why);
        // (the value the server refused has its message next to the field already)
        if (o.selected && why && !o.getAttribute("data-invalid")) {
          note = over ? "At most " + c.maxGpus + " GPU" + (c.maxGpus !== 1 ? "s are" : " is") +
            " allowed for this choice." : data.noFit + why;
        }
      });
    }
    // a GPU count the server refused has its message next to its field already
    var refused = the.gpus && selectedOption(the.gpus) && selectedOption(the.gpus).getAttribute("data-invalid");
    if (the.memory) {
      Array.prototype.forEach.call(the.memory.options, function (o) {
        var why = reason(b, count, data.classes.indexOf(parseInt(o.value, 10)));
        mark(o, why);
        if (o.selected && why && !note && !refused) note = data.noFit + why;
      });
    }
    var noteEl = root.querySelector("[data-gs-note]");
    if (noteEl) {
      noteEl.hidden = !note;
      noteEl.textContent = note;
    }
  }

  root.addEventListener("change", function (e) {
    var t = e.target;
    if (t.tagName === "SELECT" && isLocked(t)) { setValue(t, choice().values[t.name]); return; }
    if (t.name === "profile") applyChoice(false);
    else if (t === the.backend || t === the.image) filter();
    else if (t === the.gpus || t === the.memory) { perBackendAll(); fit(); }
  });
  applyChoice(true);

  // ---- data mounts editor: show the inputs of each row's type and credential choice,
  // add rows (from the <template>, up to the limit) and remove them. Without the script
  // every input is shown and unused rows are simply left empty.
  var mroot = document.getElementById("gs-mounts");
  if (mroot) {
    var rowsEl = mroot.querySelector("[data-gs-rows]");
    var tmpl = document.getElementById("gs-mount-template");
    var limit = parseInt(mroot.getAttribute("data-gs-limit"), 10) || 0;
    var next = rowsEl.children.length;
    Array.prototype.forEach.call(mroot.querySelectorAll(".gs-js-only"), function (e) { e.hidden = false; });

    var field = function (row, key) { return row.querySelector("[name$='-" + key + "']"); };
    // (not named `part`: a `var` here is hoisted to the whole script and would replace the
    // field helper part() that the choice/capacity code above keeps calling)
    var showNodes = function (nodes, visible) {
      Array.prototype.forEach.call(nodes, function (n) {
        n.hidden = !visible;
        Array.prototype.forEach.call(n.querySelectorAll("input,select"), function (i) { i.disabled = !visible; });
      });
    };
    var allow = function (sel, words) {
      if (!sel || sel.tagName !== "SELECT") return;
      Array.prototype.forEach.call(sel.options, function (o) {
        var ok = words === null || words.indexOf(o.value) >= 0 || o.getAttribute("data-invalid");
        o.hidden = !ok; o.disabled = !ok;
      });
      var cur = sel.options[sel.selectedIndex];
      if (cur && cur.hidden) {
        for (var i = 0; i < sel.options.length; i++) if (!sel.options[i].hidden) { sel.selectedIndex = i; break; }
      }
    };
    var refresh = function (row) {
      var t = field(row, "type");
      var type = t ? t.value : "";
      showNodes(row.querySelectorAll(".gs-s3"), type === "s3");
      showNodes(row.querySelectorAll(".gs-ssh"), type === "ssh");
      var ep = field(row, "endpoint");
      var epo = ep && ep.tagName === "SELECT" ? ep.options[ep.selectedIndex] : null;
      allow(field(row, "credentials"), epo ? (epo.getAttribute("data-credentials") || "").split(" ") : null);
      var host = field(row, "host");
      var ho = host && host.tagName === "SELECT" ? host.options[host.selectedIndex] : null;
      allow(field(row, "auth"), ho ? (ho.getAttribute("data-auth") || "").split(" ") : null);
      var cred = field(row, "credentials");
      showNodes(row.querySelectorAll(".gs-keys"), type === "s3" && (!cred || cred.value === "keys"));
      var auth = field(row, "auth");
      showNodes(row.querySelectorAll(".gs-password"), type === "ssh" && !!auth && auth.value === "password");
      var prefix = field(row, "prefix");
      if (prefix && epo && epo.getAttribute("data-prefix")) prefix.placeholder = epo.getAttribute("data-prefix") + "\u2026";
    };
    var rows = function () { return rowsEl.querySelectorAll("[data-gs-mount]"); };
    var addBtn = mroot.querySelector("[data-gs-add]");
    var update = function () {
      Array.prototype.forEach.call(rows(), refresh);
      if (addBtn) addBtn.disabled = rows().length >= limit;
      var key = mroot.querySelector(".gs-ssh-any");
      if (key) {
        var anySsh = false;
        Array.prototype.forEach.call(rows(), function (r) { var t = field(r, "type"); if (t && t.value === "ssh") anySsh = true; });
        key.hidden = !anySsh;
      }
    };
    if (addBtn) addBtn.addEventListener("click", function () {
      if (rows().length >= limit || !tmpl) return;
      var html = tmpl.innerHTML.replace(/__i__/g, String(next++));
      var box = document.createElement("div");
      box.innerHTML = html;
      var row = box.firstElementChild;
      rowsEl.appendChild(row);
      Array.prototype.forEach.call(row.querySelectorAll(".gs-js-only"), function (e) { e.hidden = false; });
      update();
      var first = row.querySelector("select,input:not([type=hidden])");
      if (first) first.focus();
    });
    mroot.addEventListener("click", function (e) {
      var btn = e.target.closest ? e.target.closest("[data-gs-remove]") : null;
      if (!btn) return;
      var row = btn.closest("[data-gs-mount]");
      if (row) row.parentNode.removeChild(row);
      update();
    });
    mroot.addEventListener("change", function (e) {
      var row = e.target.closest ? e.target.closest("[data-gs-mount]") : null;
      if (row) { refresh(row); update(); }
    });
    update();
  }
})();
