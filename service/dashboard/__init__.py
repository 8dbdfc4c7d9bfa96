"""The web dashboard: a static single-page app (HTML, CSS, JavaScript modules) served by the API at `/`.

It talks to the API like any client, with the API key the user signs in with; nothing here reads the
database. No build step: the files under static/ are what the browser loads.
"""
