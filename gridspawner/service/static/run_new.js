/* gridspawner "Run a notebook": lists the parameters of the chosen notebook (its cell tagged
   "parameters", read here from the file: an .ipynb is JSON) as typed inputs, binds a
   parameter to a data mount of the form below, and sends the form with fetch so that the
   chosen file survives field errors: on 400 the server's answer puts each error next to its
   field (the spawn form part comes back rendered by the server, errors included). The
   server reads the notebook's parameters again and checks every value: this script only
   helps. No dependencies. */
(function () {
  "use strict";
  var form = document.getElementById("gs-run-form");
  if (!form) return;
  var fileInput = document.getElementById("gs-notebook");
  var nameInput = document.getElementById("gs-run-name");
  var rowsBox = document.getElementById("gs-params-rows");
  var none = document.getElementById("gs-params-none");
  var tpl = document.getElementById("gs-param-template");
  var addBtn = document.getElementById("gs-param-add");
  var errorsBox = document.getElementById("gs-run-errors");
  var sending = document.getElementById("gs-run-sending");
  var maxBytes = parseInt(form.getAttribute("data-gs-max-bytes"), 10) || 0;
  var TYPED = ["bucket", "prefix", "path", "target", "user", "access_key", "secret_key", "password"];
  var counter = 0, autoName = true;
  addBtn.hidden = false;

  // ------------------------------------------------------------ the notebook's parameters
  function source(cell) { return Array.isArray(cell.source) ? cell.source.join("") : String(cell.source || ""); }
  function pyValue(text) {
    var t = text.trim();
    if (/^[+-]?\d+$/.test(t)) return { type: "int", value: t };
    if (/^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$/.test(t)) return { type: "float", value: t };
    if (t === "True" || t === "False") return { type: "bool", value: t === "True" };
    var m = /^(?:[rRuU])?("([^"\\]|\\.)*"|'([^'\\]|\\.)*')$/.exec(t);
    if (m) return { type: "str", value: t.replace(/^[rRuU]/, "").slice(1, -1) };
    if (/^[\[(]/.test(t)) {
      var json = t.replace(/^\(/, "[").replace(/\)$/, "]").replace(/'/g, '"')
        .replace(/\bTrue\b/g, "true").replace(/\bFalse\b/g, "false").replace(/\bNone\b/g, "null");
      try { return { type: "list", value: JSON.stringify(JSON.parse(json)) }; } catch (e) { /* below */ }
      return { type: "list", value: t };
    }
    return { type: "str", value: t };
  }
  function declared(nb) {
    var cells = (nb && nb.cells) || [];
    for (var i = 0; i < cells.length; i++) {
      var c = cells[i], tags = (c.metadata && c.metadata.tags) || [];
      if (c.cell_type !== "code" || tags.indexOf("parameters") < 0) continue;
      var out = [];
      source(c).split("\n").forEach(function (line) {
        var m = /^([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*[^=]+)?=\s*(.*?)\s*(#.*)?$/.exec(line);
        if (m && m[2] !== "") out.push({ name: m[1], def: m[2], parsed: pyValue(m[2]) });
      });
      return out;
    }
    return [];
  }

  // ------------------------------------------------------------ parameter rows
  function mountRows() { return Array.prototype.slice.call(document.querySelectorAll("#gs-mounts [data-gs-rows] [data-gs-mount]")); }
  function refreshSources(row) {
    var sel = row.querySelector("[data-gs-param-source]");
    var keep = sel.value;
    while (sel.options.length > 1) sel.remove(1);
    mountRows().forEach(function (m, i) {
      var o = document.createElement("option");
      o.value = m.getAttribute("data-gs-mount");
      o.textContent = "data mount " + (i + 1);
      sel.appendChild(o);
    });
    sel.value = keep;
    if (sel.value !== keep) sel.value = "";
    showSource(row);
  }
  function showSource(row) {
    var bound = row.querySelector("[data-gs-param-source]").value !== "";
    row.querySelector("[data-gs-path-box]").hidden = !bound;
    row.querySelector("[data-gs-value-box]").hidden = bound;
  }
  function setValueInput(row, type, value) {
    var box = row.querySelector("[data-gs-value-box]");
    var old = box.querySelector("[data-gs-param-value]");
    var input = document.createElement("input");
    input.setAttribute("data-gs-param-value", "");
    input.id = old.id;
    input.autocomplete = "off";
    if (type === "bool") {
      input.type = "checkbox";
      input.className = "form-check-input d-block mt-2";
      input.checked = value === true || value === "true" || value === "True";
    } else {
      input.type = type === "int" || type === "float" ? "number" : "text";
      if (type === "int") input.step = "1";
      if (type === "float") input.step = "any";
      input.className = "form-control form-control-sm" + (type === "list" || type === "str" ? " font-monospace" : "");
      input.spellcheck = false;
      input.value = value === undefined || value === null ? "" : String(value);
    }
    old.replaceWith(input);
  }
  function addRow(p) {
    counter += 1;
    var row = tpl.content.firstElementChild.cloneNode(true);
    var id = "gs-param-" + counter;
    row.setAttribute("data-gs-param", id);
    ["name", "type", "value", "source", "path"].forEach(function (k) {
      var input = row.querySelector("[data-gs-param-" + k + "]");
      input.id = id + "-" + k;
      row.querySelector("[data-gs-for='" + k + "']").setAttribute("for", input.id);
    });
    var errId = id + "-error";
    row.querySelector("[data-gs-param-error]").id = errId;
    var nameEl = row.querySelector("[data-gs-param-name]");
    nameEl.setAttribute("aria-describedby", errId);
    var typeEl = row.querySelector("[data-gs-param-type]");
    if (p) {
      nameEl.value = p.name;
      nameEl.readOnly = true;
      row.setAttribute("data-gs-declared", p.name);
      typeEl.value = p.parsed.type;
      row.querySelector("[data-gs-param-default]").textContent = "Notebook: " + p.def;
      row.querySelector("[data-gs-param-remove]").hidden = true;
      row.querySelector("[data-gs-param-legend]").textContent = "Parameter " + p.name;
    }
    setValueInput(row, typeEl.value, p ? p.parsed.value : "");
    typeEl.addEventListener("change", function () {
      var v = row.querySelector("[data-gs-param-value]");
      setValueInput(row, typeEl.value, v.type === "checkbox" ? v.checked : v.value);
    });
    var src = row.querySelector("[data-gs-param-source]");
    src.addEventListener("focus", function () { refreshSources(row); });
    src.addEventListener("change", function () { showSource(row); });
    row.querySelector("[data-gs-param-remove]").addEventListener("click", function () {
      row.remove();
      none.hidden = !!rowsBox.children.length;
      addBtn.focus();
    });
    rowsBox.appendChild(row);
    refreshSources(row);
    none.hidden = true;
    return row;
  }
  addBtn.addEventListener("click", function () { addRow(null).querySelector("[data-gs-param-name]").focus(); });

  function fieldError(key, message) {
    var box = form.querySelector("[data-gs-run-field='" + key + "']");
    if (!box) return false;
    var input = box.querySelector("input");
    input.classList.toggle("is-invalid", !!message);
    if (message) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    box.querySelector(".invalid-feedback").textContent = message || "";
    return true;
  }

  fileInput.addEventListener("change", function () {
    fieldError("notebook", "");
    Array.prototype.slice.call(rowsBox.querySelectorAll("[data-gs-declared]")).forEach(function (r) { r.remove(); });
    var file = fileInput.files[0];
    if (!file) return;
    if (autoName || !nameInput.value) { nameInput.value = file.name.replace(/\.ipynb$/i, ""); autoName = true; }
    if (maxBytes && file.size > maxBytes) { fieldError("notebook", "The file is larger than the limit."); return; }
    file.text().then(function (text) {
      var params;
      try { params = declared(JSON.parse(text)); } catch (e) { fieldError("notebook", "This file is not a notebook (.ipynb is JSON)."); return; }
      var first = rowsBox.firstChild;
      params.forEach(function (p) { rowsBox.insertBefore(addRow(p), first); });
      none.textContent = "This notebook has no cell tagged “parameters”; you can still add parameters.";
      none.hidden = !!rowsBox.children.length;
    });
  });
  nameInput.addEventListener("input", function () { autoName = false; });

  // ------------------------------------------------------------ sending
  function typed(type, input) {
    if (type === "bool") return input.checked;
    var t = input.value;
    if (type === "int" && /^[+-]?\d+$/.test(t.trim())) return parseInt(t, 10);
    if (type === "float" && t.trim() !== "" && isFinite(Number(t))) return Number(t);
    if (type === "list") { try { var v = JSON.parse(t); if (Array.isArray(v)) return v; } catch (e) { /* the server says why */ } }
    return t;  // the server names what is wrong with it
  }
  function usedMountIndex(rowKey) {
    var index = -1, found = null;
    mountRows().forEach(function (m) {
      var n = m.getAttribute("data-gs-mount");
      var used = TYPED.some(function (k) {
        var el = m.querySelector("[name='mounts-" + n + "-" + k + "']");
        return el && el.value.trim() !== "" && !el.closest("[hidden]");
      });
      if (used) index += 1;
      if (n === rowKey) found = used ? index : null;
    });
    return found;
  }
  function collect() {
    var params = {}, bindings = {};
    Array.prototype.slice.call(rowsBox.children).forEach(function (row) {
      var name = row.querySelector("[data-gs-param-name]").value.trim();
      if (!name) return;
      var src = row.querySelector("[data-gs-param-source]").value;
      if (src !== "") {
        var idx = usedMountIndex(src);
        bindings[name] = { mount: idx === null ? -1 : idx, path: row.querySelector("[data-gs-param-path]").value.trim() };
      } else {
        params[name] = typed(row.querySelector("[data-gs-param-type]").value, row.querySelector("[data-gs-param-value]"));
      }
    });
    document.getElementById("gs-parameters").value = JSON.stringify(params);
    document.getElementById("gs-bindings").value = JSON.stringify(bindings);
  }
  function showErrors(errors, formShown) {
    var rest = [];
    form.querySelectorAll("[data-gs-param-error]").forEach(function (e) { e.textContent = ""; });
    form.querySelectorAll("[data-gs-param] .is-invalid").forEach(function (e) { e.classList.remove("is-invalid"); e.removeAttribute("aria-invalid"); });
    fieldError("notebook", ""); fieldError("name", "");
    Object.keys(errors).forEach(function (key) {
      var msg = errors[key], m = /^(parameters|bindings)\.(.+)$/.exec(key);
      if (key === "notebook" || key === "name") { fieldError(key, msg); return; }
      if (m) {
        var row = Array.prototype.slice.call(rowsBox.children).filter(function (r) {
          return r.querySelector("[data-gs-param-name]").value.trim() === m[2];
        })[0];
        if (row) {
          row.querySelector("[data-gs-param-error]").textContent = msg;
          var input = row.querySelector(m[1] === "bindings" ? "[data-gs-param-path]" : "[data-gs-param-value]");
          input.classList.add("is-invalid");
          input.setAttribute("aria-invalid", "true");
          input.setAttribute("aria-describedby", row.querySelector("[data-gs-param-error]").id);
          return;
        }
      }
      // the spawn form's fields: the server rendered the form again with these errors in it
      if (formShown && !/^(notebook|name|parameters|bindings)(\.|$)/.test(key)) return;
      rest.push([key, msg]);
    });
    errorsBox.textContent = "";
    rest.forEach(function (kv) {
      var div = document.createElement("div"), code = document.createElement("code");
      code.textContent = kv[0];
      div.appendChild(code);
      div.appendChild(document.createTextNode(": " + kv[1]));
      errorsBox.appendChild(div);
    });
    errorsBox.hidden = !rest.length;
    var first = form.querySelector("[aria-invalid='true']") || (rest.length ? errorsBox : null);
    if (first) { if (first === errorsBox) errorsBox.setAttribute("tabindex", "-1"); first.focus(); }
  }
  function replaceOptions(html) {
    var box = document.getElementById("gs-run-options");
    box.innerHTML = html;  // the server's own rendering (autoescaped); its inline script is inert here
    var s = document.createElement("script");
    s.src = form.getAttribute("data-gs-runs-url") + "/form.js";
    box.appendChild(s);
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    collect();
    var btn = document.getElementById("gs-execute");
    btn.disabled = true;
    sending.textContent = "Sending…";
    var data = new FormData(form);
    fetch(form.action, { method: "POST", body: data, credentials: "same-origin",
                         headers: { "Accept": "application/json", "X-XSRFToken": data.get("_xsrf") } })
      .then(function (r) {
        return r.json().catch(function () { return { message: "status " + r.status }; }).then(function (j) {
          if (r.status === 201 && j.id) {
            sending.textContent = "Submitted.";
            window.location.assign(form.getAttribute("data-gs-runs-url") + "?submitted=" + encodeURIComponent(j.id));
            return;
          }
          btn.disabled = false;
          sending.textContent = "";
          if (j.form) replaceOptions(j.form);
          showErrors(j.errors || { "": j.message || ("status " + r.status) }, !!j.form);
        });
      })
      .catch(function (e) {
        btn.disabled = false;
        sending.textContent = "";
        showErrors({ "": "The run was not sent: " + e.message }, false);
      });
  });
})();
