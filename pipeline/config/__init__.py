"""Loading the resources operators write in YAML."""

from pipeline.config.loader import load_directory, validate_directory
from pipeline.model.resources import Resources

__all__ = ["Resources", "load_directory", "validate_directory"]
