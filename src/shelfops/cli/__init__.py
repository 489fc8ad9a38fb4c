"""The ``shelfops`` command line."""
