"""The one exception type that means "the user's input is wrong", not "the program is wrong"."""


class InputError(ValueError):
    """Bad input that the user can fix. The message is one line naming the file/row/key and the problem.

    Stage scripts catch it and print the message alone (no stack trace) with a non-zero exit.
    """
