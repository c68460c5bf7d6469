"""Shared fixtures: a gpiozero mock pin factory swapped in for one test and put back."""
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin


@pytest.fixture
def mock_factory():
    """A fresh `MockFactory` (PWM-capable pins) as `Device.pin_factory` for one test.

    Drive inputs with `mock_factory.pin(17).drive_low()` / `.drive_high()`; the mock pin
    does not debounce, so tests control edge timing with a fake clock.
    """
    saved = Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        # close() releases pins a test left open; reset() drops the reservations so a
        # leaked device cannot make the next test's pins "busy".
        factory.close()
        factory.reset()
        Device.pin_factory = saved
