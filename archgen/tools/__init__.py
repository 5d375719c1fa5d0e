"""The read-only tools on the IR: tables (``summary``), diagrams (``graph``), differences between
two networks (``diff``) and new specs from a shipped one (``new``); the words they use for layers
and parts are ``archgen.describe``'s. They import no framework and nothing of the runtime."""
