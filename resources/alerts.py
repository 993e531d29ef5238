"""Alert delivery: a JSON POST to a webhook whose URL comes from ``dagster.EnvVar``; always logged too.

Webhook URLs carry their token in the path (Slack, Teams): only the scheme and host are ever logged, and no
secret the project reads is left in the alert body (:func:`resources.errors.scrub`).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import urllib.request
from typing import Any

import dagster as dg

from resources.errors import redact_url, scrub, url_secrets

LOG = logging.getLogger("medallion.alerts")
WEBHOOK_VAR = "MEDALLION_ALERT_WEBHOOK"


class AlertWebhook(dg.ConfigurableResource):
    """Posts alerts as JSON to ``url``; with no URL the alert is only logged."""

    url: str | None = None
    timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> AlertWebhook:
        return cls(url=dg.EnvVar(WEBHOOK_VAR)) if os.environ.get(WEBHOOK_VAR) else cls()

    def send(self, payload: dict[str, Any]) -> bool:
        """Log the alert and POST it; True when the webhook answered 2xx. Never raises."""
        secrets = url_secrets(self.url)
        body = scrub(json.dumps(payload, default=str, sort_keys=True), secrets)
        LOG.error("medallion alert: %s", body)
        if not self.url:
            return False
        try:
            request = urllib.request.Request(
                self.url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                return 200 <= response.status < 300
        except (OSError, ValueError, http.client.HTTPException) as exc:
            LOG.error("alert webhook %s failed: %s", redact_url(self.url), scrub(str(exc), secrets))
            return False
