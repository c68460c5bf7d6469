"""The fake hardware libraries of tests/fakes, put into sys.modules for one test, so that
gpiozero's and luma's real code above them runs on this machine."""
from __future__ import annotations

import importlib
import sys

import pytest

from tests.fakes import lgpio as fake_lgpio
from tests.fakes import spidev as fake_spidev
from tests.fakes.RPi import GPIO as fake_gpio


@pytest.fixture
def lgpio(monkeypatch):
    """The fake lgpio as `lgpio`, and gpiozero's lgpio backend imported on top of it.
    Returns (fake module, gpiozero.pins.lgpio)."""
    fake_lgpio.reset()
    monkeypatch.setitem(sys.modules, "lgpio", fake_lgpio)
    monkeypatch.delitem(sys.modules, "gpiozero.pins.lgpio", raising=False)
    backend = importlib.import_module("gpiozero.pins.lgpio")
    yield fake_lgpio, backend
    sys.modules.pop("gpiozero.pins.lgpio", None)  # never left bound to the fake


@pytest.fixture
def spi_libs(monkeypatch):
    """Fake RPi.GPIO and spidev: (GPIO, spidev)."""
    fake_gpio.lines.clear()
    fake_spidev.buses.clear()
    monkeypatch.setitem(sys.modules, "RPi", importlib.import_module("tests.fakes.RPi"))
    monkeypatch.setitem(sys.modules, "RPi.GPIO", fake_gpio)
    monkeypatch.setitem(sys.modules, "spidev", fake_spidev)
    return fake_gpio, fake_spidev
