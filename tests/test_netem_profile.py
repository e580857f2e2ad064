"""Network profiles: presets, overrides, per-direction specs, the wire form, and bad values refused with the field
named. The README's presets table is checked against the presets themselves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mediamute.media.netem import (
    PRESET_LIST,
    PRESET_NAMES,
    PRESETS,
    PROFILE_FIELDS,
    NetworkProfile,
    NetworkSpec,
    ProfileError,
    parse_network,
    parse_profile,
)

README = Path(__file__).resolve().parent.parent / "README.md"


def test_a_preset_name_sets_both_directions_and_presets_may_differ_per_direction():
    spec = parse_network("4g")
    assert spec.uplink is not None and spec.downlink is not None
    assert (spec.uplink.preset, spec.downlink.preset) == ("4g", "4g")
    assert (spec.uplink.jitter_ms, spec.downlink.jitter_ms) == (15, 5)  # more jitter up than down
    assert parse_network("off") == parse_network("perfect")
    assert all(p.is_perfect for p in (parse_network("perfect").uplink, parse_network(" off ").downlink))


def test_fields_override_a_preset_or_a_perfect_network():
    spec = parse_network('{"preset": "wifi", "loss": 0.05, "seed": 3}')
    wifi = PRESETS["wifi"].uplink
    assert spec.uplink == NetworkProfile(
        preset="wifi", delay_ms=wifi.delay_ms, jitter_ms=wifi.jitter_ms, jitter_correlation=wifi.jitter_correlation,
        burst_loss=wifi.burst_loss, burst_length=wifi.burst_length, loss=0.05, seed=3,
    )
    custom = parse_profile({"delayMs": 80, "queuePackets": 7.0}, "uplink")
    assert custom.delay_ms == 80 and custom.queue_packets == 7 and custom.preset is None and not custom.is_perfect


def test_per_direction_specs_leave_the_other_direction_unchanged():
    assert parse_network({"uplink": {"loss": 0.1}}) == NetworkSpec(uplink=NetworkProfile(loss=0.1), downlink=None)
    spec = parse_network('{"downlink": "lossy", "uplink": null}')
    assert spec.uplink is None and spec.downlink == PRESETS["lossy"].downlink


def test_the_wire_form_parses_back_to_the_same_profile():
    for preset in PRESET_LIST:
        for profile in (preset.uplink, preset.downlink):
            seeded = parse_profile({**profile.wire(), "seed": 42}, "uplink")
            assert seeded.wire() == {**profile.wire(), "seed": 42}
    assert list(NetworkProfile().wire()) == ["preset", *(f.wire for f in PROFILE_FIELDS), "seed"]


@pytest.mark.parametrize(
    ("spec", "field", "says"),
    [
        ('{"uplink": {"loss": 1.5}}', "network.uplink.loss", "at most 1"),
        ('{"delayMs": -1}', "network.delayMs", "at least 0"),
        ('{"jitterMs": true}', "network.jitterMs", "must be a number"),
        ('{"loss": "0.1"}', "network.loss", "must be a number"),
        ('{"burstLoss": 0.6}', "network.burstLoss", "at most 0.5"),
        ('{"queuePackets": 2.5}', "network.queuePackets", "whole number"),
        ('{"seed": -1}', "network.seed", "whole number"),
        ('{"lossy": 1}', "network.lossy", "not a profile field"),
        ('{"preset": "wifi6"}', "network.preset", "unknown network preset 'wifi6'"),
        ('{"uplink": "lossy", "loss": 0.1}', "network.loss", "either one profile"),
        ('{"downlink": 3}', "network.downlink", "preset name or an object"),
        ("satellite", "network", "unknown network preset 'satellite'"),
        ("{not json", "network", "not valid JSON"),
        ('{"rateKbps": 1e400}', "network.rateKbps", "finite"),
    ],
)
def test_bad_values_are_refused_naming_the_field(spec, field, says):
    with pytest.raises(ProfileError) as refused:
        parse_network(spec)
    assert refused.value.field == field
    assert says in refused.value.message
    assert str(refused.value).startswith(f"{field}: ")


def test_preset_names_are_exact():
    with pytest.raises(ProfileError):
        parse_profile("WIFI", "uplink")  # what the OpenAPI enum says is what the parser takes
    assert set(PRESET_NAMES) == {*PRESETS, "off"}


def test_every_preset_is_in_the_readme_table_with_its_figures():
    text = README.read_text(encoding="utf-8")
    for preset in PRESET_LIST:
        row = next((line for line in text.splitlines() if line.startswith(f"| `{preset.name}` |")), None)
        assert row is not None, f"README has no row for the {preset.name} preset"
        for profile in (preset.uplink, preset.downlink):
            for value in (profile.delay_ms, profile.jitter_ms):
                if value:
                    assert re.search(rf"\b{value:g} ms", row), f"{preset.name}: {value:g} ms missing in {row}"
            for share in (profile.loss, profile.burst_loss):
                if share:
                    assert f"{100 * share:g} %" in row, f"{preset.name}: {100 * share:g} % missing in {row}"
            if profile.rate_kbps:
                assert f"{profile.rate_kbps:g}" in row.replace(",", "").replace(" ", ""), f"{preset.name}: rate missing"
    assert json.loads(json.dumps(PRESETS["wifi"].uplink.wire()))["preset"] == "wifi"
