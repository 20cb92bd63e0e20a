"""A module whose import fails with something other than ImportError (a `files-` row imports it)."""

raise RuntimeError("import-time failure on purpose")
