"""pipeline: a monitoring event pipeline in the Sensu tradition, on trio."""

__version__ = "0.1.0"
