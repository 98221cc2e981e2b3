import unittest

from inventory import find, is_missing, total_value

ITEMS = [{"name": "pen", "price": 2, "quantity": 3}, {"name": "ink", "price": 5, "quantity": 1}]


class InventoryTest(unittest.TestCase):
    def test_total(self):
        self.assertEqual(total_value(ITEMS), 11)

    def test_find(self):
        self.assertEqual(find(ITEMS, "ink")["price"], 5)

    def test_missing(self):
        self.assertTrue(is_missing(ITEMS, "cap"))
        self.assertFalse(is_missing(ITEMS, "pen"))


if __name__ == "__main__":
    unittest.main()
