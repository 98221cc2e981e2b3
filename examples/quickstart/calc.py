"""A tiny calculator with two bugs for the quickstart."""


def add(a, b):
    return a - b


def multiply(a, b):
    return a + b
