/* sundial dashboard: times in the viewer's zone (and the schedule's), trigger fields that
   follow the chosen type, and no polling while the tab is hidden. No build step.
   <time class="ts" datetime=ISO [data-zone=ZONE] data-style=both|rel|abs>: "both" shows
   the relative time, the viewer's absolute time and, if given and different, ZONE's. */
(function () {
  "use strict";

  var viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  var relFmt = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "long" });
  var absFmt = new Intl.DateTimeFormat(undefined, {
    weekday: "short", year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
  });
  var zoneFmts = {};
  var UNITS = [
    ["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
    ["hour", 3600], ["minute", 60], ["second", 1]
  ];

  function zoneFmt(zone) {
    if (!zoneFmts[zone]) {
      try {
        zoneFmts[zone] = new Intl.DateTimeFormat(undefined, {
          timeZone: zone, month: "short", day: "numeric", hour: "2-digit",
          minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short"
        });
      } catch (e) {
        zoneFmts[zone] = absFmt;
      }
    }
    return zoneFmts[zone];
  }

  function relative(date, now) {
    var seconds = (date.getTime() - now) / 1000;
    var size = Math.abs(seconds);
    if (size < 1) { return "now"; }
    for (var i = 0; i < UNITS.length; i++) {
      if (size >= UNITS[i][1] || UNITS[i][0] === "second") {
        return relFmt.format(Math.round(seconds / UNITS[i][1]), UNITS[i][0]);
      }
    }
    return "";
  }

  function part(cls, text) {
    var span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    return span;
  }

  function render(el, now) {
    var date = new Date(el.getAttribute("datetime"));
    if (isNaN(date.getTime())) { return; }
    var zone = el.getAttribute("data-zone");
    var style = el.getAttribute("data-style") || "both";
    var parts = [];
    if (style !== "abs") { parts.push(part("rel", relative(date, now))); }
    if (style !== "rel") { parts.push(part("abs", absFmt.format(date))); }
    if (style === "both" && zone && zone !== viewerZone) {
      parts.push(part("zone", zone + " · " + zoneFmt(zone).format(date)));
    }
    el.replaceChildren.apply(el, parts);
    el.title = "Your time (" + viewerZone + "): " + absFmt.format(date) +
      (zone ? "\n" + zone + ": " + zoneFmt(zone).format(date) : "") +
      "\nUTC: " + el.getAttribute("datetime");
  }

  function renderAll() {
    var now = Date.now();
    document.querySelectorAll("time.ts").forEach(function (el) { render(el, now); });
  }

  function followTriggerType() {
    document.querySelectorAll("[data-trigger-select]").forEach(function (select) {
      var fieldset = select.closest("fieldset");
      var apply = function () { fieldset.setAttribute("data-trigger-type", select.value); };
      select.addEventListener("change", apply);
      apply();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.documentElement.classList.add("js");
    document.querySelectorAll("[data-viewer-zone]").forEach(function (el) {
      el.textContent = "times in " + viewerZone;
    });
    renderAll();
    followTriggerType();
    setInterval(renderAll, 10000);
  });

  document.addEventListener("htmx:afterSettle", renderAll);

  // A hidden tab does not poll; it catches up on the next tick after it is shown again.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var trigger = event.detail.elt.getAttribute("hx-trigger") || "";
    if (document.hidden && trigger.indexOf("every") === 0) { event.preventDefault(); }
  });
})();
