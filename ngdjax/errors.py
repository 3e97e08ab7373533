"""The one exception type for bad user input.

Anything the user can fix (a file, a config key, a mesh) raises :class:`InputError` at the
boundary, before any long computation. Command-line entry points turn it into one line per
problem on stderr and exit code 2.
"""


class InputError(ValueError):
    """Bad user input: a file, field or argument that is missing, malformed or inconsistent.

    Args:
        problems: one human-readable line per problem, each naming the file/field at fault.
    """

    def __init__(self, *problems: str):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))
