// bk web UI: progressive enhancement only; every page works without it.
(function () {
  "use strict";

  // Show UTC times in the browser's time zone, the zone named (the page
  // without the script names UTC).
  function shownTime(d) {
    return d.toLocaleString(undefined, { timeZoneName: "short" });
  }
  function localTimes() {
    document.querySelectorAll("time[datetime]").forEach(function (t) {
      var iso = t.getAttribute("datetime");
      var d = new Date(iso);
      if (iso && !isNaN(d.getTime())) {
        t.textContent = shownTime(d);
        t.title = iso;
      }
    });
    document.querySelectorAll("option[data-time]").forEach(function (o) {
      var d = new Date(o.getAttribute("data-time"));
      if (!isNaN(d.getTime())) {
        o.textContent = "#" + o.getAttribute("data-id") + " · " + shownTime(d);
      }
    });
  }

  // "State before" is typed in the browser's time zone: send it as UTC.
  function beforeField() {
    var form = document.getElementById("restore");
    if (!form) return;
    form.addEventListener("submit", function () {
      var date = form.elements["before_date"].value;
      var time = form.elements["before_time"].value || "00:00";
      if (time.length === 5) time += ":00";
      var out = form.elements["before_utc"];
      out.value = "";
      if (date) {
        var d = new Date(date + "T" + time);
        if (!isNaN(d.getTime())) out.value = d.toISOString();
      }
    });
  }

  // Live job progress through server-sent events.
  function liveJob() {
    var box = document.querySelector("[data-job-events]");
    if (!box || !window.EventSource) return;
    var es = new EventSource(box.getAttribute("data-job-events"));
    function update(ev) {
      var v = JSON.parse(ev.data);
      box.querySelectorAll("[data-field]").forEach(function (f) {
        var k = f.getAttribute("data-field");
        if (v[k] === undefined || v[k] === null) return;
        if ((k === "files_total" || k === "bytes_total_h") && !v.planned) return;
        f.textContent = v[k] === "" ? "…" : v[k];
      });
      var bar = box.querySelector("progress");
      if (bar) { bar.value = v.percent; bar.textContent = v.percent + "%"; }
    }
    es.addEventListener("progress", update);
    es.addEventListener("done", function (ev) {
      update(ev);
      es.close();
      window.location.reload();
    });
    es.onerror = function () {
      // The server went away or the job is gone: fall back to reloading.
      es.close();
      setTimeout(function () { window.location.reload(); }, 2000);
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes();
    beforeField();
    liveJob();
  });
})();
