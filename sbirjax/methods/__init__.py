"""The methods: the registry and one module per method. Importing this package registers every
method."""
from sbirjax.methods import masbir, stylemeup, triplet_sn  # noqa: F401  (registers the methods)
from sbirjax.methods.registry import (  # noqa: F401
    Method, get, names, register)
