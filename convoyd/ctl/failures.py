"""How convoyctl tells a failed command: once, on stderr, as lines for people or one JSON object,
and the exit code that goes with it (docs/cli.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import grpc

from convoyd.client import ConvoydClientError, UnavailableError
from convoyd.ctl.render import Output

EXIT_OK = 0
EXIT_SERVER = 1  # the server refused or failed the request
EXIT_USAGE = 2  # bad flags (argparse's own code)
EXIT_UNAVAILABLE = 3  # the daemon could not be reached
EXIT_BROKEN_PIPE = 141  # the reader of the output went away (128 + SIGPIPE, as `yes | head`)

ANONYMOUS_HINT = "no token found: use --token, $CONVOYD_TOKEN or --data-dir"
# How gRPC's channel words a call that never reached a server (as opposed to a server that
# answered UNAVAILABLE itself, e.g. while shutting down).
_NOT_CONNECTED = ("failed to connect to all addresses", "errors resolving", "DNS resolution failed")
_LAST_ERROR = "last error: "


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """One failed command as it is told."""

    code: str
    """A gRPC status code name: the server's, or the closest one for a local failure."""
    message: str
    field_violations: tuple[tuple[str, str], ...] = ()
    """(field, description) pairs of the server's google.rpc.BadRequest detail."""
    hint: str = ""
    """What the user can do about it, when convoyctl knows."""
    label: str | None = None
    """What text output puts before the message: the code when None (the server said it);
    "error" for bad flags; nothing ("") when convoyd was not reached."""
    exit_code: int = EXIT_SERVER

    def lines(self) -> list[str]:
        """For people: the message once, then each field violation the message does not
        already say (the server's message often is those violations joined)."""
        label = self.code if self.label is None else self.label
        head = f"{label}: {self.message}" if label else self.message
        lines = [f"convoyctl: {head}"]
        lines += [
            f"  {field}: {description}"
            for field, description in self.field_violations
            if f"{field}: {description}" not in self.message
        ]
        if self.hint:
            lines.append(f"  ({self.hint})")
        return lines

    def as_json(self) -> dict[str, Any]:
        """For tools: code, message, then fieldViolations and hint when there are any, named as
        google.rpc.BadRequest's JSON mapping names them."""
        shown: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field_violations:
            shown["fieldViolations"] = [
                {"field": field, "description": description}
                for field, description in self.field_violations
            ]
        if self.hint:
            shown["hint"] = self.hint
        return shown


def _unreachable(exc: ConvoydClientError, target: str) -> Failure | None:
    """The Failure of a call that never reached convoyd at ``target``; None for any other."""
    if not isinstance(exc, UnavailableError) or not exc.message.startswith(_NOT_CONNECTED):
        return None
    if "Connection refused" in exc.message:
        message = (
            f"convoyd is not running at {target}; start it with `make run` (or `convoyd serve`)"
            " or pass --target"
        )
    else:
        detail = exc.message.partition(_LAST_ERROR)[2].removeprefix("UNKNOWN: ") or exc.message
        message = f"cannot connect to convoyd at {target}: {detail}; check --target"
    return Failure(code=exc.code.name, message=message, label="", exit_code=EXIT_UNAVAILABLE)


def from_client_error(exc: ConvoydClientError, *, target: str, token_found: bool) -> Failure:
    """The Failure of a failed call to ``target`` (``token_found``: whether one was sent)."""
    unreachable = _unreachable(exc, target)
    if unreachable is not None:
        return unreachable
    no_token = exc.code == grpc.StatusCode.UNAUTHENTICATED and not token_found
    return Failure(
        code=exc.code.name,
        message=exc.message,
        field_violations=tuple(exc.field_violations),
        hint=ANONYMOUS_HINT if no_token else "",
        exit_code=EXIT_UNAVAILABLE if isinstance(exc, UnavailableError) else EXIT_SERVER,
    )


def usage(message: str) -> Failure:
    """Flags that do not fit together, or a file a flag names that cannot be read."""
    return Failure(code="INVALID_ARGUMENT", message=message, label="error", exit_code=EXIT_USAGE)


def tell(failure: Failure, out: Output) -> int:
    """Prints ``failure`` on ``out.err`` the way ``out`` prints results; returns its exit code."""
    if out.as_json:
        print(json.dumps(failure.as_json()), file=out.err)
    else:
        print("\n".join(failure.lines()), file=out.err)
    return failure.exit_code
