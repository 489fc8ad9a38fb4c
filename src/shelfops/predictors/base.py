"""What every Predictor shares: loading a model from a folder or from the BentoML registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar


class _Loadable(Protocol):
    @classmethod
    def load(cls, path: Path) -> Any: ...


ModelT = TypeVar("ModelT")


class RegistryPredictor(Generic[ModelT]):
    """A loaded model plus the registry tag it came from."""

    service: ClassVar[str]
    default_tag: ClassVar[str]
    model_type: ClassVar[type[_Loadable]]

    def __init__(self, model: ModelT, tag: str | None = None) -> None:
        """Wrap a loaded model (use :meth:`from_registry` or :meth:`from_path`)."""
        self.model = model
        self.tag = tag

    @classmethod
    def from_path(cls, path: Path) -> Self:
        """Load from a model folder (as written by the model's ``save``).

        Args:
            path: The folder.

        Returns:
            The predictor.
        """
        return cls(cls.model_type.load(path))

    @classmethod
    def from_registry(cls, tag: str | None = None) -> Self:
        """Load from the BentoML model store (BENTOML_HOME must already be set).

        Args:
            tag: ``name:version`` or ``name:latest`` (default: the newest of this model).

        Returns:
            The predictor.
        """
        from shelfops.registry import model_path

        tag = tag or cls.default_tag
        predictor = cls.from_path(model_path(tag))
        predictor.tag = tag
        return predictor
