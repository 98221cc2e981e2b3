import os
import sys


def total_value(items):
    """The summed price * quantity of all items."""
    total = 0
    for item in items:
        count = item["quantity"]
        total += item["price"] * item["quantity"]
    return total


def find(items, name):
    for item in items:
        if item["name"] == name:
            return item
    return None


def is_missing(items, name):
    return find(items, name) == None
