"""Model zoo. Importing this package registers every method."""
from sbirjax.models import triplet_sn  # noqa: F401  (registers 'triplet_sn')
from sbirjax.models.registry import Method, get, names, register  # noqa: F401
