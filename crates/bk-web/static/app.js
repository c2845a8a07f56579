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
  // Minutes are enough; seconds are optional.
  function beforeUtc(form) {
    var date = form.elements["before_date"].value;
    var time = form.elements["before_time"].value || "00:00";
    if (time.length === 5) time += ":00";
    if (!date) return "";
    var d = new Date(date + "T" + time);
    return isNaN(d.getTime()) ? "" : d.toISOString();
  }

  function beforeField() {
    var form = document.getElementById("restore");
    if (!form || !form.elements["before_date"]) return;
    form.querySelectorAll(".nojs-zone").forEach(function (e) { e.hidden = true; });
    form.addEventListener("submit", function () {
      form.elements["before_utc"].value =
        form.querySelector("input[name=which][value=before]:checked") ? beforeUtc(form) : "";
    });
    // Picking a backup or typing a date chooses that way of choosing.
    form.querySelectorAll("input[name=id]").forEach(function (r) {
      r.addEventListener("change", function () {
        var w = form.querySelector("input[name=which][value=id]");
        if (w) w.checked = true;
      });
    });
    // The backup that a date and time picks, shown as they are typed.
    var hint = document.getElementById("which-backup");
    var url = hint && hint.getAttribute("data-which-url");
    var seq = 0;
    function which() {
      var w = form.querySelector("input[name=which][value=before]");
      if (w) w.checked = true;
      var utc = beforeUtc(form);
      if (!utc || !url || !window.fetch) return;
      var mine = ++seq;
      fetch(url + "&which=before&before_utc=" + encodeURIComponent(utc), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (v) {
          if (mine !== seq) return;
          hint.textContent = "";
          if (v.id === null || v.id === undefined) { hint.textContent = v.message; return; }
          var t = new Date(v.time);
          hint.textContent = "Backup #" + v.id + " of " + t.toLocaleString() + " (your time) will be recovered: " +
            v.files + " files, " + v.size + ".";
        })
        .catch(function () {});
    }
    ["before_date", "before_time"].forEach(function (n) {
      form.elements[n].addEventListener("change", which);
      form.elements[n].addEventListener("input", which);
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

  // Steps that can take seconds (an FTP login, starting a job, listing a
  // folder on the FTP server) say that they work: a form with data-busy
  // disables its button and shows that text on submit; a link inside an
  // element with data-busy is marked busy on click and not followed twice.
  function busySigns() {
    document.querySelectorAll("form[data-busy]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (ev.defaultPrevented) return;
        var text = form.getAttribute("data-busy");
        var b = ev.submitter || form.querySelector("button[type=submit], button:not([type])");
        if (!b) return;
        if (b.name) {
          // A disabled button is not sent: keep its name and value.
          var keep = document.createElement("input");
          keep.type = "hidden";
          keep.name = b.name;
          keep.value = b.value;
          form.appendChild(keep);
        }
        b.setAttribute("data-idle-text", b.textContent);
        b.textContent = text;
        b.disabled = true;
        form.setAttribute("aria-busy", "true");
      });
    });
    document.querySelectorAll("[data-busy]:not(form)").forEach(function (box) {
      box.addEventListener("click", function (ev) {
        var a = ev.target.closest ? ev.target.closest("a[href]") : null;
        if (!a || !box.contains(a) || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
        if (a.classList.contains("busy")) { ev.preventDefault(); return; }
        a.classList.add("busy");
        a.setAttribute("aria-disabled", "true");
        a.setAttribute("data-busy-shown", box.getAttribute("data-busy"));
        box.setAttribute("aria-busy", "true");
      });
    });
    // Back to a page kept by the browser's cache: it is idle again.
    window.addEventListener("pageshow", function (ev) {
      if (!ev.persisted) return;
      document.querySelectorAll("[data-idle-text]").forEach(function (b) {
        b.textContent = b.getAttribute("data-idle-text");
        b.disabled = false;
      });
      document.querySelectorAll("a.busy").forEach(function (a) {
        a.classList.remove("busy");
        a.removeAttribute("aria-disabled");
      });
      document.querySelectorAll("[aria-busy]").forEach(function (x) {
        x.removeAttribute("aria-busy");
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes();
    beforeField();
    liveJob();
    busySigns();
  });
})();
