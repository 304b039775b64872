// The live update of a running run's page (the rest of the site needs no
// JavaScript): poll the run's JSON every 2 s, reload the page when anything
// changed, and stop once the run is no longer running.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script.getAttribute("data-poll");
  var version = script.getAttribute("data-version");

  function later() {
    window.setTimeout(poll, 2000);
  }

  function poll() {
    fetch(url, { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 404) return null; // the run is gone: stop
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (state) {
        if (state === null) return;
        if (state.version !== version) {
          window.location.reload();
        } else if (state.run && state.run.status === "running") {
          later();
        }
      })
      .catch(later); // a network hiccup: try again
  }

  later();
})();
