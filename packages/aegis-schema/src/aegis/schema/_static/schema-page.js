// Draws every <pre class="mermaid"> diagram of the page with the vendored Mermaid.
// A file of its own (no inline script): the page's Content-Security-Policy allows only scripts
// that carry the response's nonce, or, in the static site, scripts from the site itself.
"use strict";
(function () {
  var mermaid = window.mermaid;
  mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
  mermaid.run({ querySelector: "pre.mermaid" }).then(
    function () {
      document.body.setAttribute("data-diagrams", "rendered");
    },
    function (error) {
      document.body.setAttribute("data-diagrams", "failed");
      console.error("aegis-schema: a diagram could not be drawn", error);
    }
  );
})();
