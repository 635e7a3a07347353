"""The error every input reader raises for data it cannot use.

The run summary reports it as bad input (nothing trained, nothing pushed);
its message names the file, and the record or line, and the feature.
"""


class InputDataError(ValueError):
    """The input data cannot be read as the data set's spec says."""
