"""Error types raised by medallion's resources and assets: one base class, specific subclasses."""


class MedallionError(Exception):
    """Base class for every error medallion raises on purpose."""


class InvalidPartitionKey(MedallionError, ValueError):
    """A partition key is not a strict ``YYYY-MM-DD`` calendar date."""


class InvalidTableName(MedallionError, ValueError):
    """A table name is not ``layer/name`` in lower-case snake case."""


class EngineConfigError(MedallionError, ValueError):
    """The Spark engine configuration is incomplete or names an unknown mode."""
