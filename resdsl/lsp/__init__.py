"""`resdsl lsp`: the language server (pygls) for .res files.

analysis.py checks one editor buffer as `resdsl check` would, every network it defines, and keeps
what the editor features need: the syntax tree, the library of `use`d files, the checked networks
and the diagnostics. The server (server.py) and the features answer from that analysis.
"""
