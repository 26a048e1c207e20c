"""The one error type of search: a user's input (a path, a file, a flag) that cannot be served.

A user error (sbirjax/errors.py): the command line prints its message as one line and exits with
status 2; a bug raises anything else and keeps its traceback."""
from sbirjax.errors import UserError


class SearchError(UserError):
    """A bad input: the message names the file and the fix."""
