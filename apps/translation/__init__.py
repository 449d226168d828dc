"""The translation app (apps/translation/app.py: `TranslationApp`)."""
