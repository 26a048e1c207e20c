"""Model zoo. Importing this package registers every method."""
from sbirjax.models import masbir, stylemeup, triplet_sn  # noqa: F401  (registers the methods)
from sbirjax.models.registry import (  # noqa: F401
    Method, get, names, register)
