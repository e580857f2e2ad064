"""A regular (wheel) install carries what the main job needs: the samples are package data, found through
importlib.resources, and the wheel's file list holds every one of them. (.ci/run also installs the wheel into a
fresh venv and runs `mediamute demo` from a temporary directory; this is the cheap check that would have caught
`site-packages/samples/default-scenario.toml: No such file or directory`.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import resources
from pathlib import Path

from mediamute.demo.scenario import DEFAULT_SCENARIO, load_scenario
from mediamute.sources import SAMPLES, SAMPLES_DIR, source_from_spec

ROOT = Path(__file__).resolve().parents[1]


def scenario_wav_names(text: str) -> set[str]:
    """The WAV names a scenario's participants and actions play."""
    data = tomllib.loads(text)
    specs = [p.get("source", "") for p in data.get("participants", [])]
    specs += [a.get("source", "") for a in data.get("actions", [])]
    return {s for s in specs if s.endswith(".wav")}


def test_default_scenario_and_its_voices_resolve_through_importlib_resources():
    scenario = resources.files("mediamute").joinpath("samples", "default-scenario.toml")
    assert scenario.is_file()
    names = scenario_wav_names(scenario.read_text(encoding="utf-8"))
    assert {"alice.wav", "bob.wav", "carol.wav", "dave.wav", "prompt.wav"} <= names
    for name in names:
        assert SAMPLES.joinpath(name).is_file(), name
    # the demo's default and the API's appSource names land on the same package data
    assert DEFAULT_SCENARIO == SAMPLES_DIR / "default-scenario.toml" and DEFAULT_SCENARIO.is_file()
    assert all(Path(p.source).parent == SAMPLES_DIR for p in load_scenario().participants)
    assert source_from_spec("prompt.wav", SAMPLES_DIR).describe == "wav prompt.wav"


def test_top_level_samples_is_the_package_directory_not_a_copy():
    assert (ROOT / "samples").is_symlink()
    assert (ROOT / "samples").resolve() == (ROOT / "mediamute" / "samples").resolve()


def test_the_built_wheel_ships_every_sample(tmp_path):
    # build from a copy holding only what the build reads, so a stale build/ in the checkout cannot hide a gap
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "mediamute", src / "mediamute", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"), str(src)],
        check=True, timeout=120, capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("mediamute-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    wanted = {"default-scenario.toml"} | scenario_wav_names(DEFAULT_SCENARIO.read_text(encoding="utf-8"))
    wanted |= {p.name for p in SAMPLES_DIR.glob("*.wav")}
    missing = {f"mediamute/samples/{name}" for name in wanted} - shipped
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert {"mediamute/web/index.html", "mediamute/web/js/main.js", "mediamute/py.typed"} <= shipped
