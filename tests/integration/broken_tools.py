"""A tool module that fails to import: the workers must report it and keep serving the others."""

raise ImportError("this module is broken on purpose (tests)")
