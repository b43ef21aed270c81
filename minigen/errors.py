"""The one exception type the CLI turns into a single line on stderr and exit code 2."""


class UserError(Exception):
    """Bad input or a missing prerequisite: the user can fix it, so no traceback."""
