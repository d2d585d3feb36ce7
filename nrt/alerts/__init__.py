"""Burst alerts: the model, GCN JSON and VOEvent renderings, the outbox and publisher.

DESIGN.md section 7 is the contract; see README "Alerts" for formats and topics.
"""

from nrt.alerts.model import Alert, AlertFormatError, Localization
from nrt.alerts.mqtt import BrokerError, MqttConfig, PublishRefused
from nrt.alerts.outbox import Outbox
from nrt.alerts.publisher import AlertsConfig, DeliveryTimeout, Publisher
from nrt.alerts.text import summary
from nrt.alerts.voevent import to_voevent

__all__ = [
    "Alert",
    "AlertFormatError",
    "AlertsConfig",
    "BrokerError",
    "DeliveryTimeout",
    "Localization",
    "MqttConfig",
    "Outbox",
    "PublishRefused",
    "Publisher",
    "summary",
    "to_voevent",
]
