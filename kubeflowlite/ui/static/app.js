// kubeflowlite UI: the only script besides htmx. It colours grid cells from the server's
// events (cell id -> state), re-fetches the grid when its runs change, checks a trigger
// form's JSON before it is sent, and submits the tag filter on change. Nothing here
// builds HTML from data: states only ever become class names and attributes.
(function () {
  "use strict";
  var source = null;
  var STATE = /^[a-z_]+$/;

  function setState(id, state) {
    var el = document.getElementById(id);
    if (!el || !STATE.test(state)) return;
    el.className = el.className.replace(/\bst-[a-z_]+/, "st-" + state);
    el.dataset.state = state;
  }

  function follow() {
    var grid = document.getElementById("grid");
    var url = grid && grid.dataset.events;
    if (source && source.url.endsWith(url || "-")) return;  // already following this page of runs
    if (source) { source.close(); source = null; }
    if (!url || !window.EventSource) return;
    source = new EventSource(url);
    source.addEventListener("cells", function (event) {
      var cells = JSON.parse(event.data);
      Object.keys(cells).forEach(function (id) { setState(id, cells[id]); });
    });
    source.addEventListener("structure", function () {
      source.close(); source = null;
      htmx.ajax("GET", grid.dataset.fragment, { target: "#grid", swap: "outerHTML" });
    });
  }

  function checkJson(form) {
    var field = form.elements[form.dataset.jsonField];
    var output = form.querySelector(".form-error");
    var text = field.value.trim();
    var message = "";
    if (text) {
      try {
        var value = JSON.parse(text);
        if (value === null || typeof value !== "object" || Array.isArray(value)) message = "conf must be a JSON object";
      } catch (error) { message = "conf is not valid JSON: " + error.message; }
    }
    if (output) output.textContent = message;
    return !message;
  }

  document.addEventListener("DOMContentLoaded", function () {
    follow();
    document.body.addEventListener("htmx:afterSettle", follow);
    document.querySelectorAll("form[data-json-field]").forEach(function (form) {
      form.addEventListener("submit", function (event) { if (!checkJson(form)) event.preventDefault(); });
    });
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  });
  window.addEventListener("beforeunload", function () { if (source) source.close(); });
})();
