"""Pingjia: open firmware for 好差评 window evaluators and self-service kiosks."""
from setuptools import find_packages, setup

setup(
    name="pingjia",
    version="0.1.0",
    description="Firmware for government-service window evaluators (窗口评价器) and kiosk rating modules",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    package_dir={"": "."},  # flat layout: the editable install is a plain .pth, no finder
    packages=find_packages(include=["terminal", "terminal.*", "agent", "agent.*",
                                    "drivers", "drivers.*", "config", "config.*"]),
    include_package_data=True,
    package_data={
        "config": ["*.toml"],
        "terminal": ["*.json"],
        "terminal.web": ["*.js"],
        "agent": ["*.json"],
        "drivers": ["sound_clips/*.wav"],
    },
    install_requires=[
        "pyserial>=3.5",
        "gpiozero>=2.0.1.post3",
        "luma.oled>=3.13",
        "sqlite-utils>=3.35",
        "requests>=2.31",
        "tenacity>=8.2",
        "tomlkit>=0.12",
        "tomli>=2.0; python_version < '3.11'",
        "Pillow>=9.4",
        "jsonschema>=4.18",
        "referencing>=0.28",
        "fastjsonschema>=2.19",
        "segno>=1.5",
    ],
    extras_require={
        "sim": ["luma.emulator>=1.5"],
        # RPi.GPIO for an SPI panel's DC/RST lines on current kernels (Debian: python3-rpi-lgpio)
        "pi": ["rpi-lgpio>=0.4"],
        # playwright drives the system's Chromium (Debian package chromium, scripts/dev.sh)
        "test": ["pytest>=7.4", "hypothesis>=6.130.12", "schemathesis>=4.0,<5",
                 "luma.emulator>=1.5", "playwright>=1.40",
                 "zxing-cpp>=2.2"],
    },
    entry_points={"console_scripts": ["pingjia = config.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: System :: Hardware",
    ],
)
