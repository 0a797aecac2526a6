"""The `threadline` command: the top layer, above the services and the storage layer.

It runs the services (`serve`, `up`), drives them for offline jobs (`import`), and composes
the storage layer, the parser and analysis for reads, reports and maintenance (`reparse`,
evaluations). Nothing below it imports it.
"""
