// Starts Swagger UI on /docs. A static file rather than an inline script, so the page's
// Content-Security-Policy can say script-src 'self' (src/mentatlab/server/routes/docs.py).
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    oauth2RedirectUrl: window.location.origin + root.dataset.oauth2RedirectUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // the default badge would call validator.swagger.io
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
