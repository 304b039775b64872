"""The results website (issue 4): run lists and run pages read from any ResultReader.

`links` (pure URLs, what commit statuses point to), `graph` (the DAG as SVG,
pure), `reading` (store -> page values), `blueprint` (the /results routes),
`app` (a Flask app of its own), `local` (the site for a local store).
Nothing is imported here, so `pages.links` costs no Flask import.
"""
