"""A short GCN-circular-style summary of an alert, for the console and the logs."""

from __future__ import annotations

from nrt.alerts.model import SECONDS_PER_DAY, Alert


def _num(value: float, digits: int = 3) -> str:
    return f"{value:,.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"


def summary(alert: Alert) -> str:
    """A few plain-English lines: what, when, how significant, where, and why it changed."""
    tense = "" if alert.alert_tense == "current" else f" [{alert.alert_tense.upper()}]"
    head = (
        f"{alert.mission} {alert.instrument} trigger {alert.id}: "
        f"{alert.alert_type} notice, record {alert.record_number}{tense}"
    )
    when = alert.trigger_time.replace("T", " ").rstrip("Z")[:23] + " UTC"
    lines = [head]
    if alert.alert_type == "retraction":
        lines.append(f"The trigger at {when} is RETRACTED: {alert.additional_info}.")
        return "\n".join(lines)
    sentence = f"At {when} the {alert.instrument} rate trigger found"
    if alert.rate_snr is not None and alert.rate_duration is not None:
        sentence += (
            f" an excess of {alert.rate_snr:.1f} sigma on the {_num(alert.rate_duration)} s"
            " timescale"
        )
    else:
        sentence += " an excess"
    if alert.rate_energy_range is not None:
        lo, hi = alert.rate_energy_range
        sentence += f" in {lo:g}-{hi:g} keV"
    if alert.far is not None:
        sentence += f" (false-alarm rate {_num(alert.far * SECONDS_PER_DAY, 2)} per day)"
    lines.append(sentence + ".")
    if alert.net_count_rate is not None and alert.background_count_rate is not None:
        lines.append(
            f"Net rate {_num(alert.net_count_rate)} count/s over a background of "
            f"{_num(alert.background_count_rate)} count/s."
        )
    if alert.localization is not None:
        loc = alert.localization
        lines.append(
            f"Localization: RA {loc.ra:.3f}, Dec {loc.dec:+.3f} (ICRS, deg), error radius "
            f"{_num(loc.ra_dec_error)} deg ({loc.containment:.0%} containment)."
        )
    extras = []
    if alert.pointing:
        extras.append(f"pointing {alert.pointing}")
    if alert.flags:
        extras.append("flags " + ", ".join(alert.flags))
    if extras:
        lines.append("; ".join(extras).capitalize() + ".")
    if alert.additional_info:
        lines.append(alert.additional_info)
    return "\n".join(lines)
