"""The one local API client of every command (config/cli/local.py `client`): where host,
port and token come from, without a terminal to ask."""
from __future__ import annotations

import argparse

import pytest

from config.cli import local
from config.errors import ConfigError
from config.settings import defaults

TOKEN = "a-token-of-the-settings-file-0123456789"


@pytest.fixture(autouse=True)
def no_environment(monkeypatch):
    for name in ("PINGJIA_PORT", "PINGJIA_TOKEN", "PINGJIA_CACERT"):
        monkeypatch.delenv(name, raising=False)


def settings(**api):
    return defaults().with_values({"api": {"port": 8500, "token": TOKEN, **api}})


def test_options_win_over_everything(monkeypatch):
    monkeypatch.setenv("PINGJIA_PORT", "8600")
    monkeypatch.setenv("PINGJIA_TOKEN", "from-the-environment")
    args = argparse.Namespace(config="F", host="10.0.0.9", port=8700, token="from-the-option")
    c = local.client(args, settings())
    assert (c.base_url, c.token) == ("http://10.0.0.9:8700", "from-the-option")


def test_a_named_file_wins_over_the_environment_and_the_environment_over_the_default_file(
        monkeypatch):
    monkeypatch.setenv("PINGJIA_PORT", "8600")
    monkeypatch.setenv("PINGJIA_TOKEN", "from-the-environment")
    named = local.client(argparse.Namespace(config="F"), settings())
    assert (named.base_url, named.token) == ("http://127.0.0.1:8500", TOKEN)
    found = local.client(argparse.Namespace(), settings())
    assert (found.base_url, found.token) == ("http://127.0.0.1:8600", "from-the-environment")


def test_without_a_settings_file_the_environment_then_the_default_port(monkeypatch):
    monkeypatch.setenv("PINGJIA_TOKEN", "from-the-environment")
    c = local.client(argparse.Namespace(), None)
    assert c.base_url == f"http://127.0.0.1:{defaults().api.port}"
    monkeypatch.delenv("PINGJIA_TOKEN")
    with pytest.raises(ConfigError, match="no API token"):
        local.client(argparse.Namespace(), None)


def test_host_from_the_bind_address_and_https_from_the_settings():
    c = local.client(argparse.Namespace(), settings(bind="192.168.10.7"))
    assert c.base_url == "http://192.168.10.7:8500"
    c = local.client(argparse.Namespace(cacert="/etc/ssl/hall-ca.pem"), settings())
    assert c.base_url.startswith("https://") and c.verify == "/etc/ssl/hall-ca.pem"


def test_a_named_file_without_a_token_leaves_it_to_the_environment(monkeypatch):
    args = argparse.Namespace(config="F")
    with pytest.raises(ConfigError, match="api.token"):
        local.client(args, settings(token=""))
    monkeypatch.setenv("PINGJIA_TOKEN", "from-the-environment")
    assert local.client(args, settings(token="")).token == "from-the-environment"


@pytest.mark.parametrize("raw", ["eighty", "0", "70000"])
def test_a_bad_port_in_the_environment_is_a_config_error(monkeypatch, raw):
    monkeypatch.setenv("PINGJIA_PORT", raw)
    with pytest.raises(ConfigError, match="not a port number"):
        local.client(argparse.Namespace(token="t"), settings())
