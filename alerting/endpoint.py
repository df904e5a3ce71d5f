"""Where an outgoing HTTP call goes and how it authenticates: the part of configuration shared by
notification receivers, retraining hooks and autoscaling webhooks.

Secrets come only from the environment or from files (:class:`Secret`). They are read when the
configuration is loaded, so a missing one fails start-up naming its key. They are held as
:class:`pydantic.SecretStr`, so printing or logging the configuration shows ``**********``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class Secret(BaseModel):
    """A secret named by where it lives: ``{env: NAME}`` (an environment variable) or
    ``{file: PATH}`` (a file whose content, without surrounding whitespace, is the secret; a
    Kubernetes secret volume, for example).

    Raises:
        ValueError: (at validation) both or neither source given, the variable unset or empty,
            or the file unreadable or empty. The message names the variable or file, never the
            value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: Path | None = None
    value: SecretStr = Field(SecretStr(""), exclude=True, description="resolved at load; never set in config")

    @model_validator(mode="before")
    @classmethod
    def _one_source(cls, data: object) -> object:
        if not isinstance(data, (dict, Secret)):
            # the value itself is never echoed: it may be the secret
            raise ValueError("a secret is never written in the config file: give {env: NAME} (an environment "
                             "variable holding it) or {file: PATH} (a file holding it)")
        if isinstance(data, dict):
            if "value" in data:
                raise ValueError("a secret is given by env or file, never inline")
            if (data.get("env") is None) == (data.get("file") is None):
                raise ValueError("give exactly one of env (a variable name) or file (a path)")
            data = dict(data)
            if data.get("env") is not None:
                text = os.environ.get(str(data["env"]), "")
                if not text:
                    raise ValueError(f"environment variable {data['env']} is unset or empty")
            else:
                try:
                    text = Path(data["file"]).read_text().strip()
                except OSError as exc:
                    raise ValueError(f"cannot read secret file {data['file']}: {exc.strerror}") from None
                if not text:
                    raise ValueError(f"secret file {data['file']} is empty")
            data["value"] = SecretStr(text)
        return data

    def get(self) -> str:
        """The secret's text (never log it)."""
        return self.value.get_secret_value()


class Endpoint(BaseModel):
    """An HTTP endpoint inferwatch calls.

    Attributes:
        url: base URL, ``http://`` or ``https://``; an :class:`~alerting.events.OutgoingRequest`'s
            ``path`` is appended to it. A URL that is itself a credential (a Slack incoming
            webhook, a URL with a password) is given as a :class:`Secret` (``{env: NAME}`` or
            ``{file: PATH}``) and never logged.
        timeout_seconds: connect, read and write timeout of each call (> 0).
        headers: extra request headers (not secret; use ``bearer_token`` for credentials).
        bearer_token: sent as ``Authorization: Bearer <token>``.
        signing_secret: when set, each request is signed with HMAC-SHA256 by the Standard
            Webhooks convention (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
    """

    model_config = ConfigDict(extra="forbid")

    url: str | Secret
    timeout_seconds: float = Field(5.0, gt=0, le=300)
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token: Secret | None = None
    signing_secret: Secret | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str | Secret) -> str | Secret:
        text = v if isinstance(v, str) else v.get()
        if not text.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/") if isinstance(v, str) else v

    def base_url(self) -> str:
        """The URL calls go to (a secret URL's text: never log it)."""
        return self.url.rstrip("/") if isinstance(self.url, str) else self.url.get().rstrip("/")

    @property
    def display_url(self) -> str:
        """The URL for logs: a secret URL shows only where it comes from."""
        if isinstance(self.url, str):
            return self.url
        return f"<url from {'env ' + self.url.env if self.url.env else 'file ' + str(self.url.file)}>"

    @field_validator("headers")
    @classmethod
    def _no_credentials(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if name.lower() in ("authorization", "proxy-authorization"):
                raise ValueError(f"header {name} holds a credential: use bearer_token (from env or file)")
        return v
