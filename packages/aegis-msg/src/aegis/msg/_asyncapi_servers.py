"""The ``servers`` of the AsyncAPI document: the Kafka brokers and how clients authenticate."""

from __future__ import annotations

from typing import Any, Final

from aegis.msg._kafka import KafkaSettings

# AsyncAPI's security scheme types for the SASL mechanisms librdkafka names.
_SASL_SCHEMES: Final = {
    "PLAIN": "plain",
    "SCRAM-SHA-256": "scramSha256",
    "SCRAM-SHA-512": "scramSha512",
    "GSSAPI": "gssapi",
}


def servers(settings: KafkaSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """One server per bootstrap address, and the ``securitySchemes`` they name."""
    secure = settings.security_protocol in {"SSL", "SASL_SSL"}
    server: dict[str, Any] = {"protocol": "kafka-secure" if secure else "kafka"}
    security: dict[str, Any] = {}
    scheme = _SASL_SCHEMES.get((settings.sasl_mechanism or "").upper())
    if settings.security_protocol.startswith("SASL") and scheme is not None:
        security["kafka-sasl"] = {"type": scheme}
        server["security"] = [{"$ref": "#/components/securitySchemes/kafka-sasl"}]
    hosts = [
        address.strip().rpartition("://")[2]
        for address in settings.bootstrap_servers.split(",")
        if address.strip()
    ]
    if len(hosts) == 1:
        return {"kafka": {"host": hosts[0], **server}}, security
    return {
        f"kafka-{number}": {"host": host, **server} for number, host in enumerate(hosts, 1)
    }, security
