"""Coded-mask geometry: the mask, shadows, decoding back to the source, sky coordinates."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from nrt.telemetry import codedmask as cm


def test_mura_is_balanced_and_has_flat_autocorrelation() -> None:
    a = cm.mura(cm.MURA_ORDER).astype(int)
    p = cm.MURA_ORDER
    assert a.sum() == (p * p - 1) // 2
    g = 2 * a - 1
    g[0, 0] = 1
    # cyclic correlation of A with its decoding array G is a delta (MURA property)
    corr = np.real(np.fft.ifft2(np.fft.fft2(a) * np.conj(np.fft.fft2(g))))
    assert corr[0, 0] == pytest.approx((p * p - 1) / 2)
    off = corr.copy()
    off[0, 0] = 0
    assert np.abs(off).max() < 1e-6
    with pytest.raises(ValueError):
        cm.mura(65)


def test_geometry_constants() -> None:
    mask = cm.mask_pattern()
    assert mask.shape == (266, 266) and not mask.flags.writeable
    assert 0.49 < cm.open_fraction() < 0.51
    assert mask.shape[0] * cm.PIXEL_PITCH_MM / (cm.DETECTOR_PIXELS * cm.PIXEL_PITCH_MM) > 2
    assert 5.5 < cm.FCFOV_DEG < 6 and 15 < cm.ZERO_RESPONSE_DEG < 16.5
    # elements are 2x2 pixels
    assert np.array_equal(mask[::2, ::2], mask[1::2, 1::2])


def test_shadow_on_axis_is_the_mask_centre() -> None:
    s = cm.shadow(0.0, 0.0)
    c = cm.CENTER_SHIFT
    np.testing.assert_array_equal(s, cm.mask_pattern()[c : c + 128, c : c + 128])


def test_shadow_shifts_with_angle_and_is_fractional() -> None:
    one_pixel = np.degrees(np.arctan(cm.TAN_PER_PIXEL))
    c = cm.CENTER_SHIFT
    shifted = cm.shadow(3 * one_pixel, -2 * one_pixel)
    expected = cm.mask_pattern()[c + 3 : c + 131, c - 2 : c + 126]
    np.testing.assert_allclose(shifted, expected, atol=1e-4)  # atan/tan round-off only
    half = cm.shadow(0.5 * one_pixel, 0.0)
    np.testing.assert_allclose(half, 0.5 * (cm.shadow(0, 0) + cm.shadow(one_pixel, 0)), atol=1e-4)
    assert set(np.unique(np.round(half, 3))) == {0.0, 0.5, 1.0}


def test_shadow_outside_fov_and_partial_coding() -> None:
    assert cm.shadow(cm.ZERO_RESPONSE_DEG + 0.5, 0).sum() == 0
    assert not cm.in_field_of_view(cm.ZERO_RESPONSE_DEG + 0.5, 0)
    partial = cm.shadow(10.0, 0.0)
    # a source towards +Y: high-Y pixels look past the mask's edge into the shield
    assert 0.1 < partial.mean() < 0.4 and partial[-20:].sum() == 0 and partial[:20].sum() > 0
    assert cm.fully_coded(5.0, -5.0) and not cm.fully_coded(6.0, 0.0)
    assert cm.projected_area(0, 0) == 1 and cm.projected_area(10, 0) == pytest.approx(
        np.cos(np.radians(10))
    )


@pytest.mark.parametrize(("y", "z"), [(0.0, 0.0), (2.3, -1.7), (-5.0, 4.5), (0.21, 0.07)])
def test_decoding_finds_the_source(y: float, z: float) -> None:
    rng = np.random.default_rng(42)
    image = rng.poisson(cm.shadow(y, z) * cm.projected_area(y, z) * 2.0 + 5.0)
    sky = cm.decode(image)
    assert sky.flux.shape == (cm.SKY_PIXELS, cm.SKY_PIXELS)
    py, pz, significance = sky.peak()
    assert significance > 20
    assert abs(py - y) < 0.05 and abs(pz - z) < 0.05  # a tenth of the 9.9' resolution
    # the flux per open pixel comes back (split between sky pixels off the pixel grid)
    expected = 2.0 * cm.projected_area(y, z)
    assert 0.5 * expected < sky.flux.max() < 1.25 * expected


def test_flat_background_decodes_to_nothing() -> None:
    rng = np.random.default_rng(1)
    sky = cm.decode(rng.poisson(20.0, (128, 128)))
    sig = sky.significance
    assert abs(sig.mean()) < 0.1 and 0.8 < sig.std() < 1.3 and sig.max() < 6
    with pytest.raises(ValueError):
        cm.decode(np.zeros((64, 64)))


def test_shadowgram_from_events() -> None:
    img = cm.shadowgram(np.array([0, 0, 127, 5]), np.array([0, 0, 3, 127]))
    assert img.shape == (128, 128) and img[0, 0] == 2 and img[127, 3] == 1 and img.sum() == 4


@pytest.mark.parametrize(
    "attitude", [(83.63, 22.01, 0.0), (266.4, -28.9, 137.0), (10.0, 85.0, 300.0)]
)
def test_sky_round_trip(attitude) -> None:
    y = np.array([0.0, 2.0, -4.5, 9.0])
    z = np.array([0.0, -1.0, 3.3, -12.0])
    ra, dec = cm.instrument_to_radec(y, z, attitude)
    back_y, back_z = cm.radec_to_instrument(ra, dec, attitude)
    np.testing.assert_allclose(back_y, y, atol=1e-9)
    np.testing.assert_allclose(back_z, z, atol=1e-9)
    assert ra[0] == pytest.approx(attitude[0]) and dec[0] == pytest.approx(attitude[1])
    # angular distance from the pointing agrees with the instrument angles
    sep = SkyCoord(ra[1], dec[1], unit="deg").separation(SkyCoord(*attitude[:2], unit="deg"))
    expected = np.degrees(np.arccos(cm.projected_area(2.0, -1.0)))
    assert sep.deg == pytest.approx(expected, abs=1e-9)


def test_roll_is_the_position_angle_of_z() -> None:
    ra0, dec0 = 83.63, 22.01
    north = (ra0, dec0 + 1.0)
    y, z = cm.radec_to_instrument(*north, (ra0, dec0, 0.0))
    assert z == pytest.approx(1.0, abs=1e-3) and abs(y) < 1e-6
    # at ROLL = 90 deg the +Z axis points east
    east = SkyCoord(ra0, dec0, unit="deg").directional_offset_by(90 * u.deg, 1 * u.deg)
    y, z = cm.radec_to_instrument(east.ra.deg, east.dec.deg, (ra0, dec0, 90.0))
    assert z == pytest.approx(1.0, abs=1e-3) and abs(y) < 1e-6
    behind = cm.radec_to_instrument(ra0 + 180, -dec0, (ra0, dec0, 0.0))
    assert np.isnan(behind[0]) and np.isnan(behind[1])
