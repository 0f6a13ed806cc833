"""Linux desktop integration (packaging/linux/, resources/icons/): the .desktop file, the MIME types, the icon
set, and `make install-desktop` into a throw-away HOME. Fast; the tools it uses are skipped when missing."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
LINUX = ROOT / "packaging" / "linux"
DESKTOP = LINUX / "keras-explorer.desktop"
MIME_XML = LINUX / "keras-explorer.xml"
ICONS = ROOT / "resources" / "icons"
SIZES = (16, 32, 48, 64, 128, 256)
TYPES = ("application/x-keras", "application/x-hdf5-keras")
NS = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}


def desktop_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def mime_types() -> dict[str, ET.Element]:
    root = ET.parse(MIME_XML).getroot()
    assert root.tag == f"{{{NS['m']}}}mime-info"
    return {element.get("type"): element for element in root.findall("m:mime-type", NS)}


def test_desktop_file_keys():
    entry = desktop_entry(DESKTOP)
    assert entry["Type"] == "Application"
    assert entry["Exec"] == "keras-explorer %f"
    assert entry["Icon"] == "keras-explorer"
    assert entry["Categories"] == "Development;Science;"
    assert entry["MimeType"] == "application/x-keras;application/x-hdf5-keras;"
    assert set(entry["MimeType"].strip(";").split(";")) <= set(mime_types())  # every type is defined


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_desktop_file_validates():
    result = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error:" not in result.stdout + result.stderr


def test_mime_globs_and_magic():
    types = mime_types()
    keras = types["application/x-keras"]
    assert [g.get("pattern") for g in keras.findall("m:glob", NS)] == ["*.keras"]
    assert keras.find("m:sub-class-of", NS).get("type") == "application/zip"
    zip_match = keras.find("m:magic/m:match", NS)
    assert zip_match.get("value") == r"PK\003\004" and zip_match.get("offset") == "0"
    assert zip_match.find("m:match", NS).get("value") == "metadata.json"  # first member of a Keras 3 archive
    # The demo model really is laid out like that (what the magic rule relies on)
    assert (ROOT / "resources" / "demo_model.keras").read_bytes()[30:43] == b"metadata.json"

    h5 = types["application/x-hdf5-keras"]
    globs = h5.findall("m:glob", NS)
    assert [g.get("pattern") for g in globs] == ["*.h5"]
    assert int(globs[0].get("weight", "50")) < 50  # the name alone still says HDF (default weight 50)
    assert h5.find("m:sub-class-of", NS).get("type") == "application/x-hdf"
    for element in types.values():
        assert element.find("m:comment", NS).text
        assert element.find("m:icon", NS).get("name") == "keras-explorer"


def test_icon_set():
    svg = ET.parse(ICONS / "keras-explorer.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    for size in SIZES:
        path = ICONS / f"keras-explorer-{size}.png"
        assert path.exists(), f"{path} missing: run make icons"
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.size == (size, size)
            assert image.mode == "RGBA"
            alpha = image.getchannel("A")
            assert alpha.getpixel((0, 0)) == 0  # transparent corner (rounded tile)
            assert alpha.getpixel((size // 2, size // 2)) == 255


def test_make_icons_renders_every_size(tmp_path):
    # In a subprocess: its QGuiApplication must not become the QApplication the GUI tests later expect.
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, str(ROOT / "packaging" / "make_icons.py"), "--out", str(tmp_path),
                             "--sizes", "16,48"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keras-explorer-16.png", "keras-explorer-48.png"]
    with Image.open(tmp_path / "keras-explorer-48.png") as image:
        assert image.size == (48, 48)
    # Same renderer, same SVG: the committed PNGs are up to date (compared as pixels, not PNG bytes)
    with Image.open(tmp_path / "keras-explorer-48.png") as fresh, Image.open(ICONS / "keras-explorer-48.png") as kept:
        assert fresh.tobytes() == kept.tobytes(), "resources/icons is stale: run make icons"


@pytest.fixture
def home(tmp_path):
    """A scratch HOME with the XDG variables that would override it removed."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "MAKEFLAGS")}
    env["HOME"] = str(home)
    return home, env


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_install_desktop(home, tmp_path):
    home, env = home
    opened = tmp_path / "opened.txt"
    fake_app = tmp_path / "fake-keras-explorer"  # stands in for .venv/bin/keras-explorer: records its arguments
    fake_app.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{opened}"\n')
    fake_app.chmod(0o755)
    result = subprocess.run(["make", "-s", "-C", str(ROOT), "install-desktop", f"DESKTOP_APP={fake_app}"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

    data = home / ".local" / "share"
    launcher = home / ".local" / "bin" / "keras-explorer"
    assert os.access(launcher, os.X_OK)
    assert str(fake_app) in launcher.read_text()
    installed = data / "applications" / "keras-explorer.desktop"
    assert desktop_entry(installed)["Exec"] == f"{launcher} %f"
    assert desktop_entry(installed)["MimeType"] == desktop_entry(DESKTOP)["MimeType"]
    assert (data / "mime" / "packages" / "keras-explorer.xml").read_bytes() == MIME_XML.read_bytes()
    for size in SIZES:
        icon = data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "keras-explorer.png"
        assert icon.read_bytes() == (ICONS / f"keras-explorer-{size}.png").read_bytes()
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "keras-explorer.svg").exists()

    # The launcher passes the file on
    subprocess.run([str(launcher), "/some/model.keras"], check=True, timeout=30)
    assert opened.read_text().splitlines() == ["/some/model.keras"]
    opened.unlink()

    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(installed)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
    if shutil.which("update-mime-database"):
        globs = (data / "mime" / "globs2").read_text()
        assert "application/x-keras:*.keras" in globs
        assert "40:application/x-hdf5-keras:*.h5" in globs
        assert "application/x-hdf5-keras application/x-hdf" in (data / "mime" / "subclasses").read_text()
    if shutil.which("gio") and shutil.which("update-mime-database"):
        # What the file manager does on a double-click: detect the type from name and content, open it
        # with the default application.
        model = ROOT / "resources" / "demo_model.keras"
        info = subprocess.run(["gio", "info", "-a", "standard::content-type", str(model)], env=env,
                              capture_output=True, text=True, timeout=30).stdout
        assert "application/x-keras" in info
        subprocess.run(["gio", "open", str(model)], env=env, check=True, timeout=30)
        deadline = time.monotonic() + 20
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)  # let the fake app finish writing
        assert opened.read_text().splitlines() == [str(model)]

    result = subprocess.run(["make", "-s", "-C", str(ROOT), "uninstall-desktop"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not launcher.exists() and not installed.exists()
    assert not (data / "mime" / "packages" / "keras-explorer.xml").exists()
    assert not list((data / "icons").rglob("keras-explorer.*"))
