"""nnlab as a library: a user's own training loop writes a run into the store
(nnlab.library.writer), or a Lightning callback does (nnlab.library.lightning)."""
