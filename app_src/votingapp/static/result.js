// Live tally: server-sent events; the browser reconnects by itself, and polling takes over
// when no event stream can be held open (a proxy that buffers, for instance). The page arrives
// with every number rendered; this only rewrites the same elements.
(function () {
  "use strict";
  var script = document.getElementById("result-js");
  var live = document.getElementById("live");
  var pollTimer = null;

  // The same arithmetic as result.share() on the server, so the two never disagree.
  function share(count, total) {
    return total ? Math.round((100 * count) / total) : 0;
  }

  function votes(n) {
    return n === 1 ? " vote" : " votes";
  }

  // Only what changed is rewritten: the list is a live region, and a screen reader would
  // otherwise announce every figure on every event.
  function setText(el, text) {
    if (el.textContent !== text) { el.textContent = text; }
  }

  function render(tally) {
    var total = tally.total;
    var rows = document.querySelectorAll("#tally .row");
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var option = row.getAttribute("data-option");
      var count = tally.options[option] || 0;
      var pct = share(count, total);
      var bar = row.querySelector(".bar");
      setText(row.querySelector(".count"), String(count));
      setText(row.querySelector(".unit"), votes(count));
      setText(row.querySelector(".share"), pct + "%");
      bar.value = pct;
      setText(bar, pct + "%");
      // the bar's text alternative, worded as in result.html
      bar.setAttribute("aria-label", option + ": " + pct + "%, " + count + " of " + total + " votes");
    }
    setText(document.getElementById("total"), String(total));
    setText(document.getElementById("total-unit"), votes(total));
    var unavailable = document.getElementById("unavailable");
    if (unavailable) { unavailable.hidden = true; }
  }

  function state(name, text) {
    live.setAttribute("data-state", name);
    live.textContent = text;
  }

  function poll() {
    fetch(script.getAttribute("data-tally"), { cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(render)
      .catch(function () { state("reconnecting", "offline, retrying…"); });
  }

  live.hidden = false;
  if (!window.EventSource) {
    state("polling", "updating every second");
    setInterval(poll, 1000);
    return;
  }
  var retryTimer = null;
  function connect() {
    var source = new EventSource(script.getAttribute("data-stream"));
    source.onopen = function () {
      state("live", "live");
      if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    };
    source.onmessage = function (event) { render(JSON.parse(event.data)); };
    source.onerror = function () {
      state("reconnecting", "reconnecting…");
      if (!pollTimer) { pollTimer = setInterval(poll, 2000); }
      // The browser retries a dropped stream by itself, but gives up for good on an answer that
      // is not an event stream (a proxy's 502 while the service restarts): open a new one then.
      if (source.readyState === EventSource.CLOSED && !retryTimer) {
        // jittered, so the pages of a crowd do not all come back in the same instant
        retryTimer = setTimeout(function () { retryTimer = null; connect(); }, 2000 + Math.random() * 2000);
      }
    };
  }
  connect();
})();
