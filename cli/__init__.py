"""The `dockercise` command line: the click group, its commands and the console.

The engine (runner/), the bot (bot/) and the pages (pages/) know nothing of
click or rich; this package is the only place that turns their values into
what a terminal or a pipe shows, and their errors into exit codes
(`cli.main.main`).
"""
