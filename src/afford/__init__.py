"""afford: is a pretrained model affordable for your job? Exact compute and memory from a meta-device trace."""

from afford.assess import Assessment, assess
from afford.errors import AffordError

__all__ = ["AffordError", "Assessment", "assess"]
__version__ = "0.1.0"
