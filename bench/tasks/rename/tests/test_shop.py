import unittest

from shop.orders import order_line
from shop.report import greeting
from shop.users import get_user


class ShopTest(unittest.TestCase):
    def test_get_user(self):
        self.assertEqual(get_user(2), "grace")

    def test_order_line(self):
        self.assertEqual(order_line(1, "tea"), "ada ordered tea")

    def test_greeting(self):
        self.assertEqual(greeting(1), "Hello, Ada")


if __name__ == "__main__":
    unittest.main()
