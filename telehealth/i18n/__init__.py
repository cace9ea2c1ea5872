"""The interface's languages: catalogs tooling, the language switcher, local dates and numbers."""
