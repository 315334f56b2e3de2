"""Errors that the command line turns into a clear message and exit code 2."""

from __future__ import annotations


class InputError(Exception):
    """Bad input from the user: names the file, the row (1-based line for JSONL) and the field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.row = row
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class StageFailed(RuntimeError):
    """Work failed for a reason that is not bad input (a crashed training, a failed sweep cell):
    the command line prints the message without a traceback and exits with 1; what finished is
    kept and the same command resumes."""


class ConfigError(InputError):
    """A bad option or configuration value."""


def config_error(e: Exception, what: str = "") -> ConfigError:
    """A ``ConfigError`` naming every bad field of a pydantic ``ValidationError``.

    ``what`` names the config in the message ("invalid training config: beta: ...").
    """
    errors = getattr(e, "errors", None)
    if callable(errors):
        text = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in errors()
        )
    else:
        text = str(e)
    return ConfigError(f"invalid {what} config: {text}" if what else text)


def worker_error(e: BaseException) -> str:
    """``Type: message`` of the error a worker raised, found inside Ray's wrappings of it
    (``RayTaskError``, Ray Data's ``UserCodeException``), else of ``e`` itself."""
    import re

    seen: set[int] = set()
    c: BaseException | None = e
    while c is not None and id(c) not in seen:
        seen.add(id(c))
        wrapper = type(c).__module__.startswith("ray") or type(c).__name__ == "UserCodeException"
        if not wrapper:
            return f"{type(c).__name__}: {c}"
        c = getattr(c, "cause", None) or c.__cause__
    found = re.findall(r"^\s*([A-Za-z_]\w*(?:Error|Exception)): (.+)$", str(e), re.M)
    if found:
        return f"{found[-1][0]}: {found[-1][1].strip()}"
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[-1]}"
