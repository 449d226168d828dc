"""The input-data error every pipeline raises; TensorFlow-free, so the commands that need no model
(`dlsuite language ngram`) can import the text pipeline without it."""


class DataError(ValueError):
    """Input data that cannot be used as given; the message names the file and the fix."""
