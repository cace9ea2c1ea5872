"""Case notes across languages: note language, translations, requests, machine translation."""
