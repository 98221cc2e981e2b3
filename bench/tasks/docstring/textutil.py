"""Small text helpers."""


def slugify(title):
    """Return a URL slug for `title`: lowercase, the words joined by single hyphens, and every
    character that is not a letter, a digit or a space dropped.

    >>> slugify("Hello, World!")
    'hello-world'
    >>> slugify("  Many   spaces here ")
    'many-spaces-here'
    """
    raise NotImplementedError
