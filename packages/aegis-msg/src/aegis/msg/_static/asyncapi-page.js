// Renders the AsyncAPI document embedded in the page with the vendored AsyncAPI React component.
// A file of its own (no inline script): the page's Content-Security-Policy allows only scripts
// that carry the response's nonce, or, in the static one-file page, that match a hash.
"use strict";
(function () {
  var source = document.getElementById("aegis-asyncapi-document");
  var target = document.getElementById("aegis-asyncapi");
  var schema = JSON.parse(source.textContent);
  window.AsyncApiStandalone.render(
    { schema: schema, config: { show: { sidebar: true, errors: true } } },
    target
  );
})();
