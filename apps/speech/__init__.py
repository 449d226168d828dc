"""The speech app (apps/speech/app.py: `SpeechApp`)."""
