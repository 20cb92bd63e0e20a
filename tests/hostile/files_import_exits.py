"""A module that calls sys.exit while it is imported (a `files-` row imports it)."""

import sys

sys.exit(3)
