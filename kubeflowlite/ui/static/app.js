// kubeflowlite UI: the only script besides htmx. It colours grid cells from the server's
// events, re-fetches the grid when its runs change, opens a cell's task instance on click,
// checks a trigger form's JSON before it is sent, and submits the tag filter on change.
// Nothing here builds HTML from data: states only ever become class names.
(function () {
  "use strict";
  var source = null;
  var STATE = /^[a-z_]+$/;

  function setState(el, state) {
    if (!el || !STATE.test(state)) return;
    var current = el.getAttribute("class") || "";  // SVG elements too
    el.setAttribute("class", /\bst-[a-z_]+/.test(current) ? current.replace(/\bst-[a-z_]+/, "st-" + state) : current + " st-" + state);
    if (el.tagName === "TD") el.title = "";
  }

  // A run page's graph: node colours and the run's state follow the run.
  function followRun() {
    var graph = document.getElementById("graph");
    if (!graph || !graph.dataset.events || !window.EventSource) return;
    var nodes = {};
    graph.querySelectorAll("g.node.task").forEach(function (g) {
      var title = g.querySelector("title");
      if (title) nodes[title.textContent] = g;
    });
    var runSource = new EventSource(graph.dataset.events);
    runSource.addEventListener("tasks", function (event) {
      var data = JSON.parse(event.data);
      Object.keys(data.tasks).forEach(function (task) { setState(nodes[task], data.tasks[task]); });
      var head = document.getElementById("run-state");
      if (head && STATE.test(data.state)) { setState(head, data.state); head.textContent = data.state; }
    });
    window.addEventListener("beforeunload", function () { runSource.close(); });
  }

  // Where each run's column and each task's row is, read once per grid fragment.
  function layout(grid) {
    var table = grid.querySelector("table.grid");
    var map = { columns: {}, rows: {}, table: table };
    if (!table) return map;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (th.dataset.run) map.columns[th.dataset.run] = i;
    });
    Array.prototype.forEach.call(table.tBodies[0].rows, function (tr) { map.rows[tr.dataset.task] = tr; });
    return map;
  }

  function follow() {
    var grid = document.getElementById("grid");
    var url = grid && grid.dataset.events;
    if (source && source.url.endsWith(url || "-")) return;  // already following this page of runs
    if (source) { source.close(); source = null; }
    if (!url || !window.EventSource) return;
    var map = layout(grid);
    source = new EventSource(url);
    source.addEventListener("cells", function (event) {
      var data = JSON.parse(event.data);
      Object.keys(data.cells).forEach(function (run) {
        var column = map.columns[run];
        if (column === undefined) return;
        var states = data.cells[run];
        Object.keys(states).forEach(function (task) {
          var row = map.rows[task];
          if (row) setState(row.cells[column], states[task]);
        });
      });
      Object.keys(data.runs).forEach(function (run) {
        var column = map.columns[run];
        if (column !== undefined) setState(map.table.tHead.rows[0].cells[column].firstElementChild, data.runs[run]);
      });
    });
    source.addEventListener("structure", function () {
      source.close(); source = null;
      htmx.ajax("GET", grid.dataset.fragment, { target: "#grid", swap: "outerHTML" });
    });
  }

  // A running try's log: the tail, then what the container writes, appended as text.
  var LOG_LIMIT = 4 * 1024 * 1024;
  var logSource = null;
  function followLog() {
    var panel = document.getElementById("log");
    var url = panel && panel.dataset.stream;
    if (logSource && logSource.url.endsWith(url || "-")) return;
    if (logSource) { logSource.close(); logSource = null; }
    if (!url || !window.EventSource) return;
    var pre = panel.querySelector("pre.logtext");
    var status = panel.querySelector(".log-status");
    var stop = function (event, css) {
      logSource.close(); logSource = null;
      status.textContent = event && event.data ? JSON.parse(event.data) : "the log stream stopped";
      if (css) status.className = "log-status " + css;
      var following = panel.querySelector(".following");
      if (following) following.textContent = "stopped";
    };
    logSource = new EventSource(url);
    logSource.addEventListener("log", function (event) {
      pre.appendChild(document.createTextNode(JSON.parse(event.data)));
      if (pre.textContent.length > LOG_LIMIT) pre.textContent = pre.textContent.slice(-LOG_LIMIT / 2);
    });
    logSource.addEventListener("end", function (event) { stop(event, "muted"); });
    logSource.addEventListener("failed", function (event) { stop(event, "log-error bad"); });
    logSource.onerror = function () { if (logSource) stop(null, "muted"); };
  }

  function cellOf(event) {
    var td = event.target.closest && event.target.closest("table.grid td");
    if (!td) return null;
    var table = td.closest("table");
    var run = table.tHead.rows[0].cells[td.cellIndex].dataset.run;
    return { td: td, run: run, task: td.parentElement.dataset.task };
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
    followRun();
    document.body.addEventListener("htmx:afterSettle", function () { follow(); followLog(); });
    document.body.addEventListener("click", function (event) {
      var cell = cellOf(event);
      var grid = document.getElementById("grid");
      if (cell && grid) {
        window.location.href = grid.dataset.runs + encodeURIComponent(cell.run) + "/tasks/" + encodeURIComponent(cell.task);
      }
    });
    document.body.addEventListener("mouseover", function (event) {
      var cell = cellOf(event);
      if (cell && !cell.td.title) {
        var state = (cell.td.className.match(/\bst-([a-z_]+)/) || [])[1];
        cell.td.title = cell.task + " · " + cell.run + " · " + state;
      }
    });
    document.querySelectorAll("form[data-json-field]").forEach(function (form) {
      form.addEventListener("submit", function (event) { if (!checkJson(form)) event.preventDefault(); });
    });
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  });
  window.addEventListener("beforeunload", function () { if (source) source.close(); });
})();
