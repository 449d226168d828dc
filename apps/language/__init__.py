"""The language app (apps/language/app.py: `LanguageApp`)."""
