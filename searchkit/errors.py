"""Every error searchkit raises: one base class, messages that name the bad value and the fix."""

from __future__ import annotations


class SearchkitError(Exception):
    """Base class of every searchkit error."""


class InputError(SearchkitError, ValueError):
    """A bad argument: wrong type, shape, value or range."""


class QueryError(InputError):
    """A query that breaks the valid-query rule; ``code``, ``template`` and ``params`` let each surface keep its form."""

    def __init__(self, code: str, template: str, **params: object) -> None:
        self.code, self.template, self.params = code, template, params
        super().__init__(template.format(**params))


class ModelNotFoundError(SearchkitError):
    """No embedding model could be found where we looked."""


class DatasetError(SearchkitError):
    """A corpus, query file or judgment file is missing or malformed."""


class SearchIndexError(SearchkitError):
    """An index is missing, damaged, untrained or built for another model."""


class ClusterError(SearchkitError):
    """A Ray cluster could not be started, reached or joined."""


class ExerciseError(SearchkitError, AssertionError):
    """An exercise answer is not right yet; the message says why."""

    def _render_traceback_(self) -> list[str]:
        """Return what IPython shows instead of a traceback: the one line that says what is wrong."""
        return [f"{type(self).__name__}: {self}"]


class NotReadyError(SearchkitError):
    """The service cannot answer yet: its index is still loading, or loading failed."""


class ExperimentError(SearchkitError):
    """An online experiment is misconfigured, or a click names an impression or document it cannot match."""


class UnknownImpressionError(ExperimentError, LookupError):
    """A click names an impression id the event store has never recorded."""


class NotShownError(ExperimentError, InputError):
    """A click names a document that its impression did not show."""


__all__ = [
    "SearchkitError",
    "InputError",
    "QueryError",
    "ModelNotFoundError",
    "DatasetError",
    "SearchIndexError",
    "ClusterError",
    "ExerciseError",
    "NotReadyError",
    "ExperimentError",
    "UnknownImpressionError",
    "NotShownError",
]
