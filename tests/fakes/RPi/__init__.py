"""A fake RPi package; its GPIO module records each line's direction and level."""
