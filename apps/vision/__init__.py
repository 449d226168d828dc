"""The vision app (apps/vision/app.py: `VisionApp`)."""
