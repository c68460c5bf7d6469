"""Stand-ins for the hardware libraries (lgpio, RPi.GPIO, spidev), so that gpiozero's and
luma's real code paths run on a machine without GPIO. Each test puts one into
sys.modules with the fixtures in tests/drivers/conftest.py."""
