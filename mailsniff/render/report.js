"use strict";
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.srow"));
  // (found at each filtering: folded groups unpacked later add rows)
  function others() { return Array.prototype.slice.call(document.querySelectorAll("[data-s]:not(tr.srow)")); }
  var q = document.getElementById("q"), proto = document.getElementById("f-proto"),
      client = document.getElementById("f-client"), addr = document.getElementById("f-addr"),
      find = document.getElementById("f-find"), shown = document.getElementById("shown");
  // Big reports: rows past the first ones come in compressed blocks, added after the page has
  // loaded; filtering and opening a session wait for them.
  var tbody = document.querySelector("table.index tbody");
  var rowsLoaded = !document.querySelector("script.rows");
  var rowsReady = rowsLoaded ? Promise.resolve() : new Promise(function (done) {
    function more() {
      var blocks = Array.prototype.slice.call(document.querySelectorAll("script.rows"));
      blocks.reduce(function (p, holder) {
        return p.then(function () {
          var block = document.createDocumentFragment();  // one insertion per block
          return inflate(holder.id, function (el) { block.appendChild(el); rows.push(el); }, "rows")
            .then(function () { tbody.appendChild(block); });
        });
      }, Promise.resolve()).then(function () { rowsLoaded = true; done(); });
    }
    if (document.readyState === "complete") { more(); } else { window.addEventListener("load", more); }
  });
  function apply() { if (rowsLoaded) { applyNow(); } else { rowsReady.then(applyNow); } }
  function applyNow() {
    var text = q.value.trim().toLowerCase(), p = proto.value, c = client.value,
        a = addr.value.trim().toLowerCase(), f = find.value, visible = {}, n = 0;
    rows.forEach(function (r) {
      var d = r.dataset;
      var ok = (!p || d.proto === p) && (!c || d.client === c) &&
        (!a || d.addr.indexOf(a) >= 0) && (!f || (" " + d.find + " ").indexOf(" " + f + " ") >= 0) &&
        (!text || [d.search, d.addr, d.find, d.client, d.proto].join(" ").indexOf(text) >= 0);
      r.hidden = !ok;
      if (ok) { visible[d.s] = true; n += 1; }
    });
    var all = n === rows.length;
    others().forEach(function (e) {
      var on = all || e.getAttribute("data-s").split(" ").some(function (k) { return visible[k]; });
      if (e instanceof SVGElement) { e.classList.toggle("dimmed", !on); } else { e.hidden = !on; }
    });
    shown.textContent = String(n);
  }
  // a session's bar or mark on the timeline opens it
  document.getElementById("timeline") && document.getElementById("timeline").addEventListener("click", function (ev) {
    var hit = ev.target.closest("[data-s]");
    if (hit) { location.hash = "#" + hit.getAttribute("data-s"); }
  });
  ["input", "change"].forEach(function (ev) { document.getElementById("filters").addEventListener(ev, apply); });
  document.getElementById("filters").addEventListener("reset", function () { setTimeout(apply, 0); });
  document.getElementById("filters").addEventListener("submit", function (ev) { ev.preventDefault(); });

  Array.prototype.forEach.call(document.querySelectorAll("button.showall"), function (b) {
    var svg = document.getElementById(b.getAttribute("data-target"));
    if (!svg || svg.getAttribute("data-h-all") === svg.getAttribute("data-h-shown")) { return; }
    b.hidden = false;
    b.addEventListener("click", function () {
      var more = svg.getAttribute("data-more");
      if (more) {  // the lanes past the first ones, stored compressed: drawn on first use
        svg.removeAttribute("data-more");
        inflate(more, function (el) { svg.appendChild(el); }, "svg").then(function () {
          apply(); b.click();
        });
        return;
      }
      var capped = svg.classList.toggle("capped");
      svg.setAttribute("height", svg.getAttribute(capped ? "data-h-shown" : "data-h-all"));
      b.textContent = capped ? b.textContent.replace("show fewer", "show all") : b.textContent.replace("show all", "show fewer");
    });
  });

  // Session details stored gzip-compressed (large captures): unpacked when a session is opened.
  var unpacked = {};
  // markup of a compressed block: the report's own escaped HTML (rendered with the page), parsed
  // inertly; its elements are handed to `place` one by one
  function inflate(id, place, kind) {
    var holder = document.getElementById(id);
    var bin = atob(holder.textContent.trim()), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(function (markup) {
      var wrap = {rows: ["<table><tbody>", "</tbody></table>"], svg: ["<svg>", "</svg>"]}[kind] ||
        ["<div>", "</div>"];
      var doc = new DOMParser().parseFromString(wrap[0] + markup + wrap[1], "text/html");
      var box = kind === "rows" ? doc.querySelector("tbody") : doc.body.firstChild;
      Array.prototype.slice.call(box.children).forEach(function (el) {
        place(document.adoptNode(el));
      });
    });
  }
  function unpack(chunk) {
    if (!unpacked[chunk]) {
      var target = document.getElementById("details");
      unpacked[chunk] = inflate(chunk, function (el) { target.appendChild(el); });
    }
    return unpacked[chunk];
  }
  // Long findings groups and credentials tables: folded, unpacked the first time they open.
  Array.prototype.forEach.call(document.querySelectorAll("div.packed[data-z]"), function (spot) {
    var fold = spot.closest("details");
    fold.addEventListener("toggle", function () {
      if (!fold.open || spot.getAttribute("data-busy")) { return; }
      spot.setAttribute("data-busy", "1");
      inflate(spot.getAttribute("data-z"), function (el) { spot.parentNode.insertBefore(el, spot); })
        .then(function () { spot.remove(); apply(); });
    });
  });
  function show() {
    rowsReady.then(function () {
      var key = decodeURIComponent(location.hash.slice(1)).split("-t")[0].split("-m")[0];
      var row = document.querySelector('tr.srow[data-s="' + key.replace(/[^a-z0-9-]/g, "") + '"]');
      if (!row || !row.dataset.z) { return; }
      unpack(row.dataset.z).then(function () {
        var el = document.getElementById(location.hash.slice(1));
        if (el) { el.scrollIntoView(); }
      });
    });
  }
  if (document.querySelector("tr.srow[data-z]")) { window.addEventListener("hashchange", show); show(); }
})();
