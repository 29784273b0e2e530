"""The live dashboard (SPEC §4, GET /dashboard): a static page (index.html, app.js, app.css;
no build step, no CDN) and resource.py, the routes that serve it."""
