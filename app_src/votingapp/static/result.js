// Live tally: server-sent events; the browser reconnects by itself, and polling takes over
// when no event stream can be held open (a proxy that buffers, for instance).
(function () {
  "use strict";
  var script = document.getElementById("result-js");
  var live = document.getElementById("live");
  var pollTimer = null;

  function render(tally) {
    var counts = document.querySelectorAll(".count");
    for (var i = 0; i < counts.length; i++) {
      var option = counts[i].getAttribute("data-option");
      counts[i].textContent = String(tally.options[option] || 0);
    }
    document.getElementById("total").textContent = String(tally.total);
  }

  function poll() {
    fetch(script.getAttribute("data-tally"), { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(render)
      .catch(function () { live.textContent = "offline, retrying"; });
  }

  if (!window.EventSource) {
    live.textContent = "polling";
    setInterval(poll, 1000);
    return;
  }
  var source = new EventSource(script.getAttribute("data-stream"));
  source.onopen = function () {
    live.textContent = "live";
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  };
  source.onmessage = function (event) { render(JSON.parse(event.data)); };
  source.onerror = function () {
    live.textContent = "reconnecting";
    if (!pollTimer) { pollTimer = setInterval(poll, 2000); }
  };
})();
