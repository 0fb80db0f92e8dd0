"""The one registry mechanism of the package, :class:`Registry` (task families, sandbox kinds,
grader and judge backends, base-model sources). Its code is stdlib-only and lives in
:mod:`autorl_gym.interactive.registry` so that the sandbox SDK's engines and search backends,
copied into every sandbox, use the same class."""

from autorl_gym.interactive.registry import NAME_RE, Registry, UnknownName

__all__ = ["NAME_RE", "Registry", "UnknownName"]
